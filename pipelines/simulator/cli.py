"""Command-line arguments of the simulator, shared by `fleet simulate` and `python -m pipelines.simulator`."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from .demand import load_tasks
from .faults import FaultConfig
from .layouts import large_warehouse, load_site_map, small_warehouse
from .runner import SimConfig, run_simulation
from .vda5050_mqtt import VdaSimConfig, run_vda5050

__all__ = [
    "DESCRIPTION",
    "EPILOG",
    "add_arguments",
    "config_from_args",
    "run_from_args",
    "vda_config_from_args",
]

logger = logging.getLogger(__name__)

DESCRIPTION = """\
Drive a simulated fleet of warehouse robots on a warehouse: the demo one (190 nodes: aisles, cross-aisles,
docks, chargers, parking), a generated shelf-block warehouse (--layout small|large) or your own
(--site-map FILE). Publishes the site map to site.maps, one registration per robot to robot.registry,
then one RobotTelemetry record per robot per tick to robot.telemetry (Avro in Confluent framing, key
robot_id). Robots wander between aisles and docks and recharge themselves (they plan their own way:
registered managed_by SELF, so traffic monitors them), or, with --follow, do what the scheduler decides
(scheduler.decisions: ASSIGN, UNASSIGN, CHARGE, and traffic's GRANTs: they drive only onto nodes granted
to them) and report their task's phase, which closes the loop through dispatch, traffic and the tasks
topology. --tasks-per-minute or --tasks FILE creates tasks on task.commands. Faults and execution noise
can be injected deterministically from --seed."""

EPILOG = """\
examples:
  fleet simulate --site demo --robots 50 --rate 2
  fleet simulate --robots 20 --duration 60 --drop-prob 0.001 --duplicate-prob 0.01 --malformed 5
  fleet simulate --robots 100 --rate 5 --max-rate --ticks 2000      # throughput run
  fleet simulate --robots 20 --follow --tasks-per-minute 30          # closed loop with dispatch/traffic
  fleet simulate --site w1 --layout small --robots 100 --follow --tasks docs/examples/tasks.csv
  fleet simulate --site mine --site-map my-site.json --robots 30 --follow --tasks my-tasks.csv
  fleet simulate --robots 5 --protocol vda5050 --vda-version 3.0.0   # VDA 5050 vehicles for `fleet run vda5050`

Kafka, the registry and the topic prefix come from FLEET_KAFKA_BOOTSTRAP_SERVERS,
FLEET_SCHEMA_REGISTRY_URL and FLEET_TOPIC_PREFIX. Topics must exist (`fleet topics apply`)."""


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in 0..1")
    return value


def _positive(kind: type[int] | type[float]):  # type: ignore[no-untyped-def]
    def parse(text: str) -> int | float:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text} must be > 0")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to parser."""
    what = parser.add_argument_group("fleet")
    what.add_argument("--site", default="demo", help="site id of the simulated warehouse (default: demo)")
    what.add_argument(
        "--layout",
        choices=("demo", "small", "large"),
        default="demo",
        help="demo: the 190-node demo warehouse; small / large: a generated shelf-block warehouse of "
        "60 x 35 / 500 x 140 cells (docs/traffic.md) (default: demo)",
    )
    what.add_argument(
        "--site-map",
        metavar="FILE",
        help="your own warehouse: a SiteMap JSON file (docs/records.md); overrides --layout",
    )
    what.add_argument("--tenant", default="acme", help="tenant id on every record (default: acme)")
    what.add_argument("--fleet", default="sim", help="fleet id of the robots (default: sim)")
    what.add_argument("--robots", type=_positive(int), default=10, help="number of robots (default: 10)")
    what.add_argument("--seed", type=int, default=0, help="seed of map, behaviour and faults (default: 0)")
    what.add_argument(
        "--no-autonomy",
        dest="autonomous",
        action="store_false",
        help="robots stay idle unless told what to do (they still go charging)",
    )

    loop = parser.add_argument_group("closed loop")
    loop.add_argument(
        "--follow",
        action="store_true",
        help="carry out scheduler.decisions; robots then neither wander nor charge on their own",
    )
    loop.add_argument(
        "--tasks-per-minute",
        type=float,
        default=0.0,
        metavar="N",
        help="create N delivery tasks per simulated minute on task.commands (default: 0, none)",
    )
    loop.add_argument(
        "--tasks",
        metavar="FILE",
        help="create the tasks of a task list (CSV or JSON lines: at_s or per_min, pickup, dropoff, "
        "priority; docs/traffic.md) instead of --tasks-per-minute",
    )
    loop.add_argument(
        "--task-limit", type=_positive(int), default=None, metavar="N", help="create at most N tasks"
    )
    loop.add_argument(
        "--no-grants",
        dest="grants",
        action="store_false",
        help="with --follow: drive the whole route of an ASSIGN without waiting for traffic's GRANTs "
        "(only when no traffic processor runs)",
    )
    loop.add_argument(
        "--speed-scale",
        type=_positive(float),
        default=1.0,
        metavar="X",
        help="robots drive X times faster than real ones (1.2 m/s, lane limits), for short test runs",
    )
    loop.add_argument(
        "--work-time",
        type=float,
        default=3.0,
        metavar="S",
        help="seconds a robot works at a task's destination (default: 3)",
    )
    loop.add_argument(
        "--start-delay",
        type=float,
        default=3.0,
        metavar="S",
        help="with --follow: a standing robot given a new route sets off S seconds later, so that a traffic "
        "HOLD can still keep it where it stands (default: 3; keep it above the pipeline's latency)",
    )
    loop.add_argument(
        "--return-home",
        type=float,
        default=0.0,
        metavar="S",
        help="with --follow: an idle robot drives back to its parking spot after S seconds (default: 0, at "
        "once, so that docks are left free)",
    )

    pace = parser.add_argument_group("pace")
    pace.add_argument(
        "--rate",
        type=_positive(float),
        default=2.0,
        help="telemetry records per robot per second (default: 2)",
    )
    pace.add_argument(
        "--duration",
        type=_positive(float),
        default=None,
        metavar="S",
        help="stop after S seconds (default: never)",
    )
    pace.add_argument(
        "--ticks",
        type=_positive(int),
        default=None,
        metavar="N",
        help="stop after N ticks (N records per robot)",
    )
    pace.add_argument(
        "--speedup", type=_positive(float), default=1.0, metavar="X", help="run simulated time X times faster"
    )
    pace.add_argument("--max-rate", action="store_true", help="no pacing: produce as fast as Kafka takes it")

    faults = parser.add_argument_group("faults (deterministic from --seed)")
    faults.add_argument(
        "--stall-per-min",
        type=float,
        default=0.0,
        metavar="N",
        help="execution noise: a travelling robot stalls (1-6 s) N times a minute on average",
    )
    faults.add_argument(
        "--speed-spread",
        type=_probability,
        default=0.0,
        metavar="F",
        help="execution noise: each robot's top speed is between (1 - F) and 1 times the nominal",
    )
    faults.add_argument(
        "--drop-prob",
        type=_probability,
        default=0.0,
        metavar="P",
        help="chance per record that a robot goes silent",
    )
    faults.add_argument(
        "--dropout",
        type=_positive(float),
        default=10.0,
        metavar="S",
        help="seconds a silent robot stays silent",
    )
    faults.add_argument(
        "--duplicate-prob", type=_probability, default=0.0, metavar="P", help="chance a record is sent twice"
    )
    faults.add_argument(
        "--reorder-prob",
        type=_probability,
        default=0.0,
        metavar="P",
        help="chance a record is sent after the next",
    )
    faults.add_argument(
        "--malformed",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="send exactly N payloads that are not valid Avro (within the first minute)",
    )
    vda = parser.add_argument_group("protocol")
    vda.add_argument(
        "--protocol",
        choices=("kafka", "vda5050"),
        default="kafka",
        help="kafka: telemetry straight to robot.telemetry (default); vda5050: the robots are VDA 5050 "
        "vehicles on the MQTT broker (FLEET_MQTT_URL, _USERNAME, _PASSWORD) that fleetstream's bridge "
        "(`fleet run vda5050`) drives; --rate is then their state messages per second",
    )
    vda.add_argument(
        "--vda-version", default="2.1.0", choices=("2.0.0", "2.1.0", "3.0.0"), help="protocol version"
    )
    vda.add_argument(
        "--vda-manufacturer",
        default="fleetstream-sim",
        help="the vehicles' manufacturer (topic level; the local broker lets the simulator speak for "
        "fleetstream-sim only)",
    )
    vda.add_argument("--vda-interface", default="uagv", help="2.x topic root (default: uagv; 3.0: vda5050)")
    vda.add_argument(
        "--vda-skip",
        type=_non_negative_int,
        default=0,
        metavar="N",
        help="leave the first N parking spots to another simulator of the same --seed (as `fleet up` does)",
    )
    vda.add_argument(
        "--action-time",
        type=float,
        default=3.0,
        metavar="S",
        help="seconds a pick, drop or other action takes",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line every second")


def _site_map(args: argparse.Namespace) -> dict[str, object] | None:
    if args.site_map:
        return load_site_map(args.site_map, site_id=args.site, tenant_id=args.tenant)
    if args.layout == "small":
        return small_warehouse(site_id=args.site, tenant_id=args.tenant)
    if args.layout == "large":
        return large_warehouse(site_id=args.site, tenant_id=args.tenant)
    return None


def config_from_args(args: argparse.Namespace, **connection: object) -> SimConfig:
    """A SimConfig from parsed arguments; connection holds kafka_config, registry_config, topic_prefix."""
    faults = FaultConfig(
        drop_prob=args.drop_prob,
        dropout_ms=round(args.dropout * 1000),
        duplicate_prob=args.duplicate_prob,
        reorder_prob=args.reorder_prob,
        malformed=args.malformed,
        seed=args.seed,
    )
    return SimConfig(
        site_map=_site_map(args),
        requests=load_tasks(args.tasks) if args.tasks else None,
        grants=args.grants,
        stall_per_min=args.stall_per_min,
        speed_spread=args.speed_spread,
        site_id=args.site,
        tenant_id=args.tenant,
        fleet_id=args.fleet,
        robots=args.robots,
        rate_hz=args.rate,
        duration_s=args.duration,
        max_ticks=args.ticks,
        seed=args.seed,
        speedup=args.speedup,
        max_rate=args.max_rate,
        faults=faults,
        autonomous=args.autonomous,
        follow_decisions=args.follow,
        tasks_per_minute=args.tasks_per_minute,
        task_limit=args.task_limit,
        speed_scale=args.speed_scale,
        work_ms=round(args.work_time * 1000),
        start_delay_ms=round(args.start_delay * 1000) if args.follow else 0,
        return_home_ms=round(args.return_home * 1000),
        progress_interval_s=0.0 if args.quiet else 1.0,
        **connection,  # type: ignore[arg-type]
    )


def vda_config_from_args(args: argparse.Namespace, **connection: object) -> VdaSimConfig:
    """The run of ``--protocol vda5050``; connection holds kafka_config, registry_config, topic_prefix, mqtt."""
    return VdaSimConfig(
        site_id=args.site,
        tenant_id=args.tenant,
        robots=args.robots,
        rate_hz=args.rate,
        duration_s=args.duration,
        seed=args.seed,
        version=args.vda_version,
        manufacturer=args.vda_manufacturer,
        interface=args.vda_interface,
        skip=args.vda_skip,
        speed_scale=args.speed_scale,
        site_map=_site_map(args),
        action_ms=round(args.action_time * 1000),
        tasks_per_minute=args.tasks_per_minute,
        task_limit=args.task_limit,
        progress_interval_s=0.0 if args.quiet else 5.0,
        **connection,  # type: ignore[arg-type]
    )


def run_from_args(args: argparse.Namespace, **connection: object) -> int:
    """Run until the duration/ticks are done or SIGINT/SIGTERM arrives; exit code 1 on lost records."""
    stop = threading.Event()
    if args.protocol == "vda5050":

        def _stop_vda(signum: int, _frame: FrameType | None) -> None:
            logger.info("signal %s: stopping", signal.Signals(signum).name)
            stop.set()

        previous = {sig: signal.signal(sig, _stop_vda) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            run_vda5050(vda_config_from_args(args, **connection), stop)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0
    connection.pop("mqtt", None)
    connection.pop("client_id", None)
    config = config_from_args(args, **connection)

    def _stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %s: stopping after this tick", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stats = run_simulation(config, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 1 if stats.delivery_errors else 0
