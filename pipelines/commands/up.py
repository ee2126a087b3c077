"""``fleet up`` / ``fleet down``: the whole pipeline on this machine, for `make run`.

``fleet up`` starts the local stack (unless told not to), applies topics, registers schemas, migrates
Postgres, then runs every processor, the gateway and a simulated fleet as child processes, restarts a
child that dies, prints where to look, and on Ctrl-C/SIGTERM stops every process it started (and the
services it started). ``fleet down`` stops a ``fleet up`` running elsewhere.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.commands.stack import SERVICES, STACK_SCRIPT
from pipelines.logsetup import setup_logging
from pipelines.processors import PROCESSORS
from pipelines.settings import load_settings

__all__ = ["add_parser"]

logger = logging.getLogger("fleet.up")

ROOT = STACK_SCRIPT.parents[2]
LOCAL = Path(os.environ.get("FLEET_LOCAL_DIR", ROOT / ".local"))
PIDFILE = LOCAL / "run" / "fleet-up.pid"
METRICS_BASE_PORT = (
    9400  # processor i serves /metrics on base + i (--metrics-base-port, FLEET_METRICS_BASE_PORT)
)
# The port each local service listens on: the variable deploy/local/stack.sh reads, and its default.
SERVICE_PORTS = {
    "kafka": ("FLEET_KAFKA_PORT", 19092),
    "registry": ("FLEET_REGISTRY_PORT", 18081),
    "postgres": ("FLEET_POSTGRES_PORT", 15432),
    "redis": ("FLEET_REDIS_PORT", 16379),
    "influxdb": ("FLEET_INFLUX_PORT", 18086),
    "mosquitto": ("FLEET_MQTT_PORT", 11883),
}
# What the processors connect to: the variable, the service it should name, and the processors' default.
CLIENT_SETTINGS = {
    "FLEET_KAFKA_BOOTSTRAP_SERVERS": ("kafka", "127.0.0.1:19092"),
    "FLEET_SCHEMA_REGISTRY_URL": ("registry", "http://127.0.0.1:18081/apis/ccompat/v7"),
    "FLEET_POSTGRES_DSN": ("postgres", "postgresql://fleet@127.0.0.1:15432/fleetstream"),
    "FLEET_REDIS_URL": ("redis", "redis://127.0.0.1:16379/0"),
    "FLEET_INFLUX_URL": ("influxdb", "http://127.0.0.1:18086"),
}
# The local broker's development accounts (deploy/local/stack.sh, deploy/local/mosquitto/acl).
DEV_MQTT_PASSWORD = "fleetstream-dev"
# Processors that do not scale by consumer-group instances: the gateway scales by --workers, the planner
# serves gRPC on one port.
SINGLE_INSTANCE = {"gateway", "planner"}
# Processors a bare `--instances N` leaves at one: the vda5050 bridge's MQTT ingress would receive every
# vehicle message once per instance; `--instances vda5050=N` runs N that split the vehicles through an
# MQTT shared subscription (FLEET_VDA_MQTT_SHARED_GROUP, set for them unless given).
EXPLICIT_INSTANCES = {"vda5050"}
VDA_SHARED_GROUP = "fleet-vda5050"
# The /_internal token of `--with-rmf` when FLEET_RMF_WS_TOKEN is unset (development only).
DEV_RMF_WS_TOKEN = "fleetstream-dev-rmf-token"


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = None
    restarts: int = 0
    next_start: float = 0.0
    history: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=ROOT,
        )
        out.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)


def _fleet(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipelines.cli", *args]


def _services_up() -> set[str]:
    out = subprocess.run([str(STACK_SCRIPT), "status"], capture_output=True, text=True, check=False).stdout
    return {
        line.split()[0] for line in out.splitlines()[1:] if len(line.split()) > 2 and line.split()[2] == "up"
    }


def _started_by_this_run(before: set[str], after: set[str]) -> list[str]:
    """The services that answer now and did not before (in :data:`SERVICES` order): the ones this run
    stops when it ends. Not those that were already up, nor the optional ones ``stack.sh up`` leaves off."""
    return [s for s in SERVICES if s in after and s not in before]


def _setup_step(title: str, argv: list[str]) -> None:
    logger.info("%s ...", title)
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"fleet up: '{' '.join(argv[3:])}' failed (exit {result.returncode})")


def _canonical(name: str) -> str:
    return name.replace("_", "-")


def parse_instances(values: list[str], names: list[str]) -> dict[str, int]:
    """``["2"]`` or ``["telemetry=2,tasks=3"]`` (repeatable, later wins) -> instances per processor of
    ``names``; a bare count applies to every processor that scales by instances (not the vda5050 bridge:
    name it). Processor names may be written with ``-`` or ``_``."""
    by_canonical = {_canonical(n): n for n in names}
    counts = dict.fromkeys(names, 1)
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            name, sep, count = item.rpartition("=")
            if not count.strip().isdigit() or int(count) < 1:
                raise SystemExit(f"fleet up: bad --instances {item!r}: expected N or PROCESSOR=N, N >= 1")
            if not sep:
                bare = SINGLE_INSTANCE | EXPLICIT_INSTANCES
                counts.update({n: int(count) for n in names if _canonical(n) not in bare})
                continue
            key = by_canonical.get(_canonical(name.strip()))
            if key is None:
                raise SystemExit(f"fleet up: --instances {item!r}: no processor {name!r} in this run")
            if _canonical(key) in SINGLE_INSTANCE and int(count) != 1:
                raise SystemExit(f"fleet up: {key} runs as one instance (the gateway scales by --workers)")
            counts[key] = int(count)
    return counts


def instance_env(base: dict[str, str], index: int, count: int) -> dict[str, str]:
    """The environment of instance ``index`` (1-based) of ``count`` of one processor: the first keeps the
    state directory it always had, the others get one each (RocksDB locks its directory), and with more
    than one, every instance gets a stable instance id (static group membership where supported)."""
    env = dict(base)
    if count > 1:
        env["FLEET_INSTANCE_ID"] = f"{socket.gethostname()}-{index}"
        if index > 1:
            state = Path(base.get("FLEET_STATE_DIR", ".local/state"))
            env["FLEET_STATE_DIR"] = str(state / f"instance-{index}")
    return env


def _processor_child(
    args: argparse.Namespace, name: str, index: int, count: int, base_env: dict[str, str], port: int
) -> Child:
    env = instance_env({**base_env, "FLEET_METRICS_PORT": str(port)}, index, count)
    if name == "gateway":
        env["FLEET_HTTP_PORT"] = str(args.gateway_port)
        env["FLEET_METRICS_PORT"] = "0"  # the gateway serves /metrics itself
        if args.with_rmf:
            env.setdefault("FLEET_RMF_WS_TOKEN", DEV_RMF_WS_TOKEN)
    if name == "rmf-ingest":  # RMF robots join the simulated tenant and site unless told otherwise
        env.setdefault("FLEET_RMF_TENANT_ID", args.tenant)
        env.setdefault("FLEET_RMF_SITE_ID", args.site)
    if name == "vda5050":  # VDA 5050 vehicles join the simulated tenant and site unless told otherwise
        env.setdefault("FLEET_VDA_TENANT_ID", args.tenant)
        env.setdefault("FLEET_VDA_SITE_ID", args.site)
        env.update(_mqtt_env("fleetstream-bridge"))
        if count > 1:  # replicas split the vehicles instead of each receiving every message
            env.setdefault("FLEET_VDA_MQTT_SHARED_GROUP", VDA_SHARED_GROUP)
    label = name if count == 1 else f"{name}.{index}"
    return Child(label, _fleet("run", name), env, LOCAL / "logs" / f"{label}.log")


def _children(args: argparse.Namespace) -> list[Child]:
    base_env = {**os.environ, "FLEET_LOG_FORMAT": os.environ.get("FLEET_LOG_FORMAT", "json")}
    logs = LOCAL / "logs"
    children: list[Child] = []
    args.with_vda5050 = getattr(args, "with_vda5050", False) or args.vda_robots > 0
    # Processors that need something outside this machine's stack run only when asked for (--with-rmf,
    # --with-vda5050 or simulated VDA vehicles).
    names = [p.name for p in PROCESSORS.values() if p.optional is None or getattr(args, p.optional)]
    counts = parse_instances(args.instances, names)
    base_port = args.metrics_base_port
    port = base_port
    for name in names:
        for index in range(1, counts[name] + 1):
            children.append(
                _processor_child(args, name, index, counts[name], base_env, port if base_port else 0)
            )
            port += 1
    if args.robots > 0 and (ROOT / "pipelines" / "commands" / "simulate.py").exists():
        sim = _fleet(
            "simulate",
            "--site",
            args.site,
            "--tenant",
            args.tenant,
            "--robots",
            str(args.robots),
            "--rate",
            str(args.rate),
        )
        if args.tasks_per_minute > 0:  # the closed loop: robots do what dispatch and traffic decide
            sim += ["--follow", "--tasks-per-minute", str(args.tasks_per_minute)]
        children.append(Child("simulator", sim, base_env, logs / "simulator.log"))
    if args.vda_robots > 0:  # VDA 5050 vehicles on the broker, driven through the vda5050 bridge
        vda = _fleet("simulate", "--protocol", "vda5050", "--site", args.site, "--tenant", args.tenant,
                     "--robots", str(args.vda_robots), "--vda-skip", str(max(args.robots, 0)), "--rate", "2")  # fmt: skip
        env = {**base_env, **_mqtt_env("fleetstream-sim")}
        children.append(Child("vda5050-simulator", vda, env, logs / "vda5050-simulator.log"))
    return children


def _mqtt_env(account: str) -> dict[str, str]:
    """The local broker and one of its development accounts, unless FLEET_MQTT_* say otherwise."""
    port = os.environ.get("FLEET_MQTT_PORT", "11883")
    return {
        "FLEET_MQTT_URL": os.environ.get("FLEET_MQTT_URL", f"mqtt://127.0.0.1:{port}"),
        "FLEET_MQTT_USERNAME": os.environ.get("FLEET_MQTT_USERNAME", account),
        "FLEET_MQTT_PASSWORD": os.environ.get("FLEET_MQTT_PASSWORD", DEV_MQTT_PASSWORD),
    }


def _banner(children: list[Child], args: argparse.Namespace) -> str:
    lines = ["", "fleetstream is running. Where to look:"]
    if any(c.name == "gateway" for c in children):
        lines += [
            f"  dashboard      http://127.0.0.1:{args.gateway_port}/?site={args.site}&token={_dev_token(args)}",
            f"  API docs       http://127.0.0.1:{args.gateway_port}/docs",
            f"  live stream    http://127.0.0.1:{args.gateway_port}/v1/stream",
        ]
        if args.with_rmf:
            token = os.environ.get("FLEET_RMF_WS_TOKEN", DEV_RMF_WS_TOKEN)
            lines.append(f"  RMF server_uri ws://127.0.0.1:{args.gateway_port}/_internal?token={token}")
    for c in children:
        port = c.env.get("FLEET_METRICS_PORT", "0")
        metrics = f"  metrics :{port}/metrics" if port != "0" else ""
        lines.append(
            f"  {c.name:<14} pid {c.proc.pid if c.proc else '-':<7} log {c.log.relative_to(ROOT)}{metrics}"
        )
    lines += [
        *_services_lines(),
        "  dead letters   topics dlq.<processor>",
        "Ctrl-C stops everything this command started.",
        "",
    ]
    return "\n".join(lines)


def service_ports(env: Mapping[str, str] | None = None) -> dict[str, int]:
    """The port of each local service, as deploy/local/stack.sh reads them from the environment."""
    values = os.environ if env is None else env
    return {name: int(values.get(var) or default) for name, (var, default) in SERVICE_PORTS.items()}


def _services_lines(env: Mapping[str, str] | None = None) -> list[str]:
    """Where the services are (this run's FLEET_*_PORT), and any client setting that points elsewhere."""
    env = os.environ if env is None else env
    ports = service_ports(env)
    lines = [
        "  services       fleet stack status   ("
        + ", ".join(f"{name} 127.0.0.1:{port}" for name, port in ports.items())
        + ")"
    ]
    for var, (service, default) in CLIENT_SETTINGS.items():
        value = env.get(var) or default
        if f":{ports[service]}" not in value:
            shown = f"{var}={value}" if env.get(var) else f"{var} (unset: {value})"
            lines.append(f"  warning        {shown} is not the local {service} (port {ports[service]})")
    return lines


def _dev_token(args: argparse.Namespace) -> str:
    """An admin token for the simulated tenant, so the printed dashboard link works as it is."""
    from gateway.cli import mint_token
    from gateway.settings import GatewaySettings

    return mint_token(
        load_settings(GatewaySettings), tenant=args.tenant, roles=["admin"], ttl_seconds=12 * 3600
    )


def _up(args: argparse.Namespace) -> int:
    setup_logging("INFO", "text", processor="up")
    PIDFILE.parent.mkdir(parents=True, exist_ok=True)
    if PIDFILE.exists():
        old = int(PIDFILE.read_text().strip() or 0)
        if old and _alive(old):
            logger.error("fleet up is already running (pid %d); `fleet down` stops it", old)
            return 1
    PIDFILE.write_text(str(os.getpid()))
    started_services: list[str] = []
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    children: list[Child] = []
    try:
        if not args.no_stack:
            before = _services_up()
            if subprocess.call([str(STACK_SCRIPT), "up"]) != 0:
                return 1
            started_services = _started_by_this_run(before, _services_up())
        _setup_step("creating topics", _fleet("topics", "apply"))
        _setup_step("registering schemas", _fleet("schemas", "register"))
        if (ROOT / "pipelines" / "commands" / "db.py").exists():
            _setup_step("migrating Postgres", _fleet("db", "migrate"))
        children = _children(args)
        for child in children:
            child.start()
        print(_banner(children, args), flush=True)  # noqa: T201 - the user asked for this screen
        while not stopping:
            time.sleep(0.5)
            for child in children:
                if child.proc and child.proc.poll() is not None and not stopping:
                    code = child.proc.returncode
                    delay = min(30.0, 2.0 ** min(child.restarts, 5))
                    logger.warning(
                        "%s exited with %s; restarting in %.0fs (log %s)", child.name, code, delay, child.log
                    )
                    child.proc, child.next_start = None, time.monotonic() + delay
                    child.restarts += 1
                if child.proc is None and time.monotonic() >= child.next_start and not stopping:
                    child.start()
        return 0
    finally:
        logger.info("stopping %d processes", len(children))
        _stop_children(children)
        if started_services:
            logger.info("stopping the services this run started: %s", ", ".join(started_services))
            subprocess.call([str(STACK_SCRIPT), "down", *started_services])
        PIDFILE.unlink(missing_ok=True)


def _stop_children(children: list[Child], grace_s: float = 15.0) -> None:
    for child in children:
        child.stop(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for child in children:
        if child.proc is None:
            continue
        try:
            child.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop in %.0fs; killing it", child.name, grace_s)
            child.stop(signal.SIGKILL)
            child.proc.wait(5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _down(_args: argparse.Namespace) -> int:
    if not PIDFILE.exists():
        return 0
    pid = int(PIDFILE.read_text().strip() or 0)
    if pid and _alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(120):
            if not _alive(pid):
                break
            time.sleep(0.25)
    PIDFILE.unlink(missing_ok=True)
    return 0


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65000:
        raise argparse.ArgumentTypeError(f"{port} is not in 0..65000")
    return port


def add_parser(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser(
        "up",
        help="run the whole pipeline locally: stack, topics, schemas, every processor, gateway, simulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    up.add_argument("--site", default="demo", help="simulated site id (default: demo)")
    up.add_argument("--tenant", default="acme", help="simulated tenant id (default: acme)")
    up.add_argument(
        "--robots", type=int, default=20, help="simulated robots; 0 runs no simulator (default: 20)"
    )
    up.add_argument(
        "--rate", type=float, default=2.0, help="telemetry records per robot per second (default: 2)"
    )
    up.add_argument(
        "--tasks-per-minute",
        type=float,
        default=2.0,
        help="delivery tasks the simulator creates per minute; the robots then follow scheduler.decisions "
        "(dispatch and traffic; above ~2/min traffic on the demo warehouse jams, docs/traffic.md); "
        "0: robots wander on their own and no task is created (default: 2)",
    )
    up.add_argument(
        "--gateway-port",
        type=int,
        default=int(os.environ.get("FLEET_HTTP_PORT", 8080)),
        help="gateway port (default: 8080 or FLEET_HTTP_PORT)",
    )
    up.add_argument(
        "--metrics-base-port",
        type=_port,
        default=os.environ.get("FLEET_METRICS_BASE_PORT", str(METRICS_BASE_PORT)),
        help="each processor serves /metrics on this port + its index (printed); 0: no metrics ports "
        f"(default: {METRICS_BASE_PORT} or FLEET_METRICS_BASE_PORT)",
    )
    up.add_argument(
        "--instances",
        action="append",
        default=[],
        metavar="N|PROCESSOR=N",
        help="instances of the Kafka processors, each in its processor's consumer group (partitions spread "
        "over them; state moves with a partition through its changelog): N for every one, or "
        "telemetry=2,tasks=3 (repeatable); the gateway and the planner run once (default: 1)",
    )
    up.add_argument("--no-stack", action="store_true", help="do not start or stop the local services")
    up.add_argument(
        "--with-rmf",
        action="store_true",
        help="also run the Open-RMF processors: rmf-ingest (RMF robots -> robot.status, in --tenant/--site) "
        "and sink-rmf (needs an RMF API server: FLEET_RMF_API_URL, FLEET_RMF_API_TOKEN, FLEET_RMF_FLEETS); "
        "the gateway's /_internal takes FLEET_RMF_WS_TOKEN (default: a development token)",
    )
    up.add_argument(
        "--vda-robots",
        type=int,
        default=4,
        help="simulated VDA 5050 vehicles on the MQTT broker (`fleet simulate --protocol vda5050`), driven by "
        "the vda5050 bridge, which then runs too; 0: none (default: 4)",
    )
    up.add_argument(
        "--with-vda5050",
        action="store_true",
        help="run the vda5050 bridge even without simulated VDA vehicles (real ones on FLEET_MQTT_URL)",
    )
    up.set_defaults(func=_up)
    down = sub.add_parser("down", help="stop a running `fleet up` and everything it started")
    down.set_defaults(func=_down)
