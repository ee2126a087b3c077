"""The producer loop: publish the site map and registrations, then telemetry at a rate, until stopped.

`run_simulation(config, stop_event)` is the programmatic entry (tests, `fleet up`, benchmarks); the
CLI (`fleet simulate`, `python -m pipelines.simulator`) builds a SimConfig and calls it. Values are
Confluent-framed Avro from `schemas.AvroCodec`, keys are utf-8 ids.

Clock: simulated time advances by 1000/rate ms per tick. In real time (speedup 1) tick k is sent at
wall time start + k/rate. With --speedup X the wall schedule is X times faster; with --max-rate there
is no schedule at all. When simulated time runs faster than the wall clock and the run has a known
length (--duration, or --ticks), the simulated start is set back so that the last record's
occurred_at is the wall time at the end: no record is ever from the future.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from pipelines.settings import PRODUCER_DEFAULTS
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.ids import now_ms as wall_now_ms
from schemas.registry import RegistryClient

from .demand import TaskRequest
from .faults import FaultConfig, FaultInjector, Outgoing, malformed_payload
from .fleet import FleetConfig, FleetSim
from .follow import TASK_COMMANDS_TOPIC, DecisionFeed, FollowStats, TaskFeeder
from .warehouse import demo_site

__all__ = ["SimConfig", "SimStats", "TickHook", "run_simulation"]

logger = logging.getLogger(__name__)

TickHook = Callable[[FleetSim, int], None]
"""Called before every tick with the model and the tick's time: the place to apply decisions."""

SITE_TOPIC = catalog.SITE_MAPS
REGISTRY_TOPIC = catalog.ROBOT_REGISTRY
TELEMETRY_TOPIC = catalog.ROBOT_TELEMETRY


@dataclass(frozen=True)
class SimConfig:
    """Everything one simulator run needs, as plain values (built from settings at the entrypoint)."""

    site_id: str = "demo"
    tenant_id: str = "acme"
    fleet_id: str = "sim"
    robots: int = 10
    rate_hz: float = 2.0  # telemetry records per robot per simulated second
    duration_s: float | None = None  # wall-clock seconds; None: until stopped
    max_ticks: int | None = None  # stop after this many ticks (one record per robot each)
    seed: int = 0
    speedup: float = 1.0
    max_rate: bool = False  # no pacing: as fast as the producer takes it
    faults: FaultConfig = field(default_factory=FaultConfig)
    start_ms: int | None = None  # simulated start; None: now (set back when running ahead, see module doc)
    autonomous: bool = True
    follow_decisions: bool = False  # carry out scheduler.decisions; robots then do nothing on their own
    tasks_per_minute: float = 0.0  # create delivery tasks on task.commands at this simulated rate
    task_limit: int | None = None  # at most this many tasks (None: no limit)
    speed_scale: float = 1.0  # robots drive this many times faster than real ones (lane limits too)
    work_ms: int = 3000  # time spent working at a task's destination
    return_home_ms: int | None = 5000  # following decisions: an idle robot goes back to its parking spot
    # after standing this long (None: it stays where its last task ended)
    start_delay_ms: int = 0  # a standing robot given a new route sets off this much later
    record_history: bool = False
    grants: bool = True  # following decisions: drive only onto nodes the traffic topology grants
    site_map: Mapping[str, Any] | None = None  # the site (a SiteMap dict); None: the demo warehouse
    requests: tuple[TaskRequest, ...] | None = None  # a task list instead of tasks_per_minute
    stall_per_min: float = 0.0  # execution noise (FleetConfig)
    speed_spread: float = 0.0
    publish_site: bool = True
    publish_registrations: bool = True
    progress_interval_s: float = 1.0
    kafka_config: Mapping[str, Any] = field(default_factory=lambda: {"bootstrap.servers": "127.0.0.1:19092"})
    registry_config: Mapping[str, Any] = field(
        default_factory=lambda: {"url": "http://127.0.0.1:18081/apis/ccompat/v7"}
    )
    topic_prefix: str = ""
    auto_register: bool = True  # register schemas on first use (False: `fleet schemas register` did)
    producer_overrides: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ValueError(f"rate_hz must be > 0, got {self.rate_hz}")
        if self.speedup <= 0:
            raise ValueError(f"speedup must be > 0, got {self.speedup}")
        if self.robots < 1:
            raise ValueError(f"robots must be >= 1, got {self.robots}")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {self.duration_s}")
        if self.tasks_per_minute < 0:
            raise ValueError(f"tasks_per_minute must be >= 0, got {self.tasks_per_minute}")
        if self.speed_scale <= 0:
            raise ValueError(f"speed_scale must be > 0, got {self.speed_scale}")

    @property
    def tick_ms(self) -> float:
        return 1000.0 / self.rate_hz

    def fleet_config(self) -> FleetConfig:
        return FleetConfig(
            tenant_id=self.tenant_id,
            fleet_id=self.fleet_id,
            robots=self.robots,
            seed=self.seed,
            # Following decisions, the scheduler moves the robots: no wandering, no charging on their own.
            autonomous=self.autonomous and not self.follow_decisions,
            self_charge=not self.follow_decisions,
            speed_scale=self.speed_scale,
            work_ms=self.work_ms,
            return_home_ms=self.return_home_ms if self.follow_decisions else None,
            start_delay_ms=self.start_delay_ms,
            record_history=self.record_history,
            grants=self.grants and self.follow_decisions,
            stall_per_min=self.stall_per_min,
            speed_spread=self.speed_spread,
            managed_by="FLEETSTREAM" if self.follow_decisions else "SELF",
        )


@dataclass
class SimStats:
    """What a run produced. `telemetry` counts valid records sent (duplicates and reordered included)."""

    robots: int = 0
    ticks: int = 0
    site_maps: int = 0
    registrations: int = 0
    telemetry: int = 0
    malformed: int = 0
    duplicates: int = 0
    reordered: int = 0
    dropped: int = 0
    dropouts: int = 0
    delivered: int = 0
    delivery_errors: int = 0
    vertex_collisions: int = 0
    edge_collisions: int = 0
    decisions: int = 0
    decisions_applied: int = 0
    decisions_by_kind: dict[str, int] = field(default_factory=dict)
    traffic_latency_ms: list[int] = field(default_factory=list)  # per traffic decision applied
    traffic_arrival_ms: list[int] = field(default_factory=list)  # received (wall) minus occurred_at
    tasks_created: int = 0
    start_ms: int = 0
    end_ms: int = 0
    elapsed_s: float = 0.0
    topics: dict[str, str] = field(default_factory=dict)

    @property
    def produced(self) -> int:
        """Every record sent to the telemetry topic, malformed ones included."""
        return self.telemetry + self.malformed

    @property
    def records_per_s(self) -> float:
        return self.produced / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def latency_ms(self, q: float) -> int:
        """The ``q`` quantile (0..1) of the traffic decisions' latency to the tick that applied them (0
        when none was applied): a multiple of the tick, what the robot experiences."""
        return _quantile(self.traffic_latency_ms, q)

    def arrival_ms(self, q: float) -> int:
        """The ``q`` quantile (0..1) of the traffic decisions' latency to their receipt by the simulator's
        consumer (wall clock): the pipeline's latency, meaningful when the simulation runs in real time."""
        return _quantile(self.traffic_arrival_ms, q)

    def as_dict(self) -> dict[str, Any]:
        out = {**asdict(self), "produced": self.produced, "records_per_s": round(self.records_per_s, 1)}
        out["traffic_latency_ms"] = [self.latency_ms(0.5), self.latency_ms(0.99), self.latency_ms(1.0)]
        out["traffic_arrival_ms"] = [self.arrival_ms(0.5), self.arrival_ms(0.99), self.arrival_ms(1.0)]
        return out


class _Publisher:
    """The producer and the three codecs, with delivery accounting."""

    def __init__(self, config: SimConfig, stats: SimStats) -> None:
        self._stats = stats
        registry = RegistryClient(**dict(config.registry_config))
        prefix = config.topic_prefix
        names = [SITE_TOPIC, REGISTRY_TOPIC, TELEMETRY_TOPIC]
        if config.tasks_per_minute > 0:
            names.append(TASK_COMMANDS_TOPIC)
        self.topics = {name: f"{prefix}{name}" for name in names}
        self.codecs = {
            name: AvroCodec.for_topic(registry, name, prefix, auto_register=config.auto_register)
            for name in self.topics
        }
        for codec in self.codecs.values():
            codec.prepare()  # fail fast on a registry problem, before any record is produced
        self.producer = Producer(
            {
                **dict(config.kafka_config),
                **PRODUCER_DEFAULTS,
                "linger.ms": 5,
                "compression.type": "lz4",
                "client.id": f"fleet-simulator-{config.site_id}",
                **dict(config.producer_overrides),
            }
        )

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self._stats.delivered += 1
            return
        self._stats.delivery_errors += 1
        if self._stats.delivery_errors <= 10:
            logger.error("delivery to %s failed: %s", msg.topic(), err)

    def send(self, name: str, key: str, value: bytes) -> None:
        topic = self.topics[name]
        while True:
            try:
                self.producer.produce(topic, key=key.encode(), value=value, on_delivery=self._on_delivery)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self.producer.poll(0.05)

    def send_record(self, name: str, key: str, record: Mapping[str, Any]) -> None:
        value = self.codecs[name].encode(record)
        assert value is not None
        self.send(name, key, value)

    def send_telemetry(self, out: Outgoing) -> None:
        valid = self.codecs[TELEMETRY_TOPIC].encode(out.record)
        assert valid is not None
        value = malformed_payload(out.malformed, valid, out.record) if out.malformed else valid
        self.send(TELEMETRY_TOPIC, out.key, value)

    def flush(self, timeout_s: float) -> int:
        return self.producer.flush(timeout_s)


def _quantile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


def _simulated_start(config: SimConfig, wall_ms: int) -> int:
    if config.start_ms is not None:
        return config.start_ms
    if config.max_ticks is not None and (config.max_rate or config.speedup > 1):
        return wall_ms - round(config.max_ticks * config.tick_ms)
    if config.duration_s is not None and not config.max_rate and config.speedup > 1:
        return wall_ms - round(config.duration_s * 1000 * (config.speedup - 1))
    if config.max_rate or config.speedup > 1:
        logger.warning("simulated time runs ahead of the wall clock: records will carry future occurred_at")
    return wall_ms


def run_simulation(
    config: SimConfig,
    stop_event: threading.Event | None = None,
    *,
    on_tick: TickHook | None = None,
) -> SimStats:
    """Run the simulator against Kafka until stop_event is set, the duration passes or max_ticks are sent."""
    stop = stop_event or threading.Event()
    stats = SimStats(robots=config.robots)
    pub = _Publisher(config, stats)
    stats.topics = dict(pub.topics)

    wall_start = time.monotonic()
    start_ms = _simulated_start(config, wall_now_ms())
    stats.start_ms = stats.end_ms = start_ms
    if config.site_map is not None:
        site_map = {**config.site_map, "site_id": config.site_id, "tenant_id": config.tenant_id}
    else:
        site_map = demo_site(config.site_id, config.tenant_id, config.seed, occurred_at=start_ms)
    sim = FleetSim(site_map, config.fleet_config(), start_ms)
    faults = FaultInjector(config.faults, start_ms)
    follow = FollowStats()
    feed: DecisionFeed | None = None
    if config.follow_decisions:
        # Positioned before the robots exist, so the first decisions about them are not missed.
        feed = DecisionFeed(
            site_id=config.site_id,
            tenant_id=config.tenant_id,
            kafka_config=config.kafka_config,
            registry_config=config.registry_config,
            topic_prefix=config.topic_prefix,
            stats=follow,
        )
        feed.start()
    feeder = (
        TaskFeeder(
            sim,
            per_minute=config.tasks_per_minute,
            limit=config.task_limit,
            seed=config.seed,
            requests=config.requests,
        )
        if config.tasks_per_minute > 0 or config.requests
        else None
    )

    if config.publish_site:
        pub.send_record(SITE_TOPIC, config.site_id, site_map)
        stats.site_maps += 1
    if config.publish_registrations:
        for reg in sim.registrations(start_ms):
            pub.send_record(REGISTRY_TOPIC, reg["robot_id"], reg)
            stats.registrations += 1
    pub.flush(10.0)  # map and robots first, so consumers know them before the first telemetry
    logger.info(
        "simulating %d robots on site %s (%d nodes) at %.3g Hz%s; telemetry to %s",
        config.robots,
        config.site_id,
        len(site_map["nodes"]),
        config.rate_hz,
        " as fast as possible" if config.max_rate else f", speedup {config.speedup:g}",
        pub.topics[TELEMETRY_TOPIC],
    )

    progress = _Progress(config.progress_interval_s, wall_start)
    tick = 0
    try:
        while not stop.is_set():
            if config.max_ticks is not None and tick >= config.max_ticks:
                break
            if config.duration_s is not None and time.monotonic() - wall_start >= config.duration_s:
                break
            if not config.max_rate:
                delay = wall_start + tick * config.tick_ms / 1000.0 / config.speedup - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            now = start_ms + round(tick * config.tick_ms)
            if feed is not None:
                feed.apply_to(sim, now)
            if on_tick is not None:
                on_tick(sim, now)
            if feeder is not None:
                for key, command in feeder.due(now):
                    pub.send_record(TASK_COMMANDS_TOPIC, key, command)
                    follow.tasks_created += 1
            for out in faults.apply(sim.step(now), now):
                pub.send_telemetry(out)
                if out.fault != "malformed":
                    stats.telemetry += 1
            pub.producer.poll(0)
            tick += 1
            stats.ticks, stats.end_ms = tick, now
            _collect(stats, faults, sim, follow)
            progress.maybe_log(stats)
    finally:
        if feed is not None:
            feed.close()
        for out in faults.flush():
            pub.send_telemetry(out)
            if out.fault != "malformed":
                stats.telemetry += 1
        _collect(stats, faults, sim, follow)
        remaining = pub.flush(30.0)
        stats.elapsed_s = time.monotonic() - wall_start
        if remaining:
            logger.error("%d records were not delivered within 30 s", remaining)
        logger.info("simulation done: %s", stats.as_dict())
    return stats


def _collect(stats: SimStats, faults: FaultInjector, sim: FleetSim, follow: FollowStats) -> None:
    stats.decisions, stats.decisions_applied = follow.decisions, follow.applied
    stats.decisions_by_kind = dict(follow.applied_by_kind)
    stats.traffic_latency_ms = list(follow.traffic_latency_ms)
    stats.traffic_arrival_ms = list(follow.traffic_arrival_ms)
    stats.tasks_created = follow.tasks_created
    f = faults.stats
    stats.malformed, stats.duplicates, stats.reordered = f.malformed, f.duplicates, f.reordered
    stats.dropped, stats.dropouts = f.dropped, f.dropouts
    stats.vertex_collisions = sim.ground_truth.vertex_collisions
    stats.edge_collisions = sim.ground_truth.edge_collisions


class _Progress:
    def __init__(self, interval_s: float, wall_start: float) -> None:
        self._interval = interval_s
        self._start = wall_start
        self._last_t = wall_start
        self._last_n = 0

    def maybe_log(self, stats: SimStats) -> None:
        now = time.monotonic()
        if self._interval <= 0 or now - self._last_t < self._interval:
            return
        rate = (stats.produced - self._last_n) / (now - self._last_t)
        self._last_t, self._last_n = now, stats.produced
        logger.info(
            "robots=%d sent=%d (%.0f records/s) delivered=%d faults: dropped=%d dropouts=%d duplicates=%d "
            "reordered=%d malformed=%d collisions: vertex=%d edge=%d decisions=%d/%d tasks=%d",
            stats.robots,
            stats.produced,
            rate,
            stats.delivered,
            stats.dropped,
            stats.dropouts,
            stats.duplicates,
            stats.reordered,
            stats.malformed,
            stats.vertex_collisions,
            stats.edge_collisions,
            stats.decisions_applied,
            stats.decisions,
            stats.tasks_created,
        )
