"""An in-process closed loop: the simulated fleet driven by the real topologies, on a simulated clock.

The processors of the Kafka pipeline, as the pure functions they wrap, wired in one process::

    FleetSim --robot.telemetry--> telemetry (on_telemetry) --robot.status--> dispatch, traffic
    TaskFeeder --task.commands--> tasks (machine.step) --task.events--> dispatch, traffic
    robot.telemetry (task phases), scheduler.decisions (ASSIGN / UNASSIGN) --> tasks
    dispatch (ASSIGN / UNASSIGN / CHARGE), traffic (HOLD / RESUME / REROUTE) --scheduler.decisions--> FleetSim

What Kafka adds is modelled as latency rather than skipped: the output of an exactly-once processor
becomes visible at its next checkpoint (every ``commit_ms``, each processor at its own phase) plus
``hop_ms`` of delivery; dispatch and traffic first re-key their inputs by site (one more such hop, as
their ``group_by`` does) and the tasks processor first feeds its inbox (one more hop); the simulator
produces telemetry without a transaction (``hop_ms``) and applies decisions at its first tick after they
are visible. A HOLD thus reaches a robot about a second after the telemetry that caused it, as on the
real stack, while simulated time runs as fast as the CPU allows. Wall-clock parts are not modelled:
nothing goes offline, and no planner is consulted (dispatch uses its in-process policy).

``run_loop(LoopConfig(...))`` returns a :class:`LoopReport`: ground-truth collisions, conflicts and their
resolutions, decisions sent and applied, holds, decision latencies and tasks completed.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from schemas.errors import RejectedRecord
from schemas.records import TERMINAL_TASK_STATES, Decision, Timer
from topologies import dispatch as dispatch_topology
from topologies import tasks as tasks_topology
from topologies import traffic as traffic_topology
from topologies.tasks.records import InboxInput
from topologies.telemetry import TelemetryConfig
from topologies.telemetry import records as telemetry_records
from topologies.telemetry.machine import on_telemetry
from topologies.traffic import TrafficConfig
from topologies.traffic import site as traffic_site

from .decisions import apply_decision
from .fleet import FleetConfig, FleetSim
from .follow import TaskFeeder, TaskRequest
from .groundtruth import Collision
from .warehouse import DEMO_EPOCH_MS, demo_site

__all__ = ["LoopConfig", "LoopReport", "run_loop"]

logger = logging.getLogger(__name__)

_RELEASES = frozenset({"RESUME", "REROUTE"})


@dataclass(frozen=True)
class LoopConfig:
    """One closed-loop run. Times are ms of simulated time.

    :param duration_ms: tasks are created during this long; then the run goes on until every task has
        ended and no robot is held, for at most ``drain_ms`` more.
    :param traffic: the traffic topology's configuration (its ``speed_mps`` should be the robots' top
        speed, 1.2 m/s times ``speed_scale``); None runs the loop without traffic control.
    :param return_home_ms: an idle robot drives back to its parking spot after this long (0: at once,
        so that docks are left free); :param start_delay_ms: a standing robot given a new route sets off
        this much later (longer than the pipeline's latency, so that a HOLD can keep it where it is).
    :param commit_ms: checkpoint period of the exactly-once processors (their output is visible then).
    :param hop_ms: delivery delay of one topic hop (produce to consume).
    """

    robots: int = 30
    duration_ms: int = 30 * 60_000
    drain_ms: int = 5 * 60_000
    rate_hz: float = 2.0
    tasks_per_minute: float = 2.0
    seed: int = 0
    speed_scale: float = 1.0
    work_ms: int = 3_000
    return_home_ms: int | None = 0
    start_delay_ms: int = 3_000
    commit_ms: int = 200
    hop_ms: int = 100
    traffic: TrafficConfig | None = field(default_factory=lambda: TrafficConfig(speed_mps=1.2))
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    dispatch: dispatch_topology.DispatchConfig = field(default_factory=dispatch_topology.DispatchConfig)
    tasks: tasks_topology.TasksConfig = field(default_factory=tasks_topology.TasksConfig)
    site_id: str = "demo"
    tenant_id: str = "acme"
    start_ms: int = DEMO_EPOCH_MS
    site_map: Mapping[str, Any] | None = None  # None: the demo warehouse
    backlog: int | None = None  # keep this many tasks waiting (a saturated fleet) instead of a rate
    requests: tuple[TaskRequest, ...] | None = None  # a task list (demand.load_tasks) instead of a rate
    stall_per_min: float = 0.0  # execution noise (FleetConfig)
    stall_ms: tuple[int, int] = (1000, 6000)
    speed_spread: float = 0.0
    initial_battery: tuple[float, float] = (0.3, 1.0)
    bucket_ms: int = 300_000  # tasks done are counted per bucket of this long (5 minutes)
    pickup_kinds: tuple[str, ...] = ("PICKUP",)  # random tasks: pickup at a node of these kinds
    dropoff_kinds: tuple[str, ...] = ("DROPOFF",)  # and drop-off at one of these

    def __post_init__(self) -> None:
        if self.rate_hz <= 0 or self.commit_ms <= 0 or self.hop_ms < 0 or self.duration_ms <= 0:
            raise ValueError("need rate_hz > 0, commit_ms > 0, hop_ms >= 0 and duration_ms > 0")


@dataclass
class LoopReport:
    """What a closed-loop run did (see :func:`run_loop`)."""

    sim_ms: int = 0
    wall_s: float = 0.0
    tasks_created: int = 0
    tasks_succeeded: int = 0
    tasks_ended_otherwise: int = 0
    vertex_collisions: int = 0
    edge_collisions: int = 0
    collisions: list[Collision] = field(default_factory=list)
    decisions: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)
    conflicts: Counter[str] = field(default_factory=Counter)
    resolutions: Counter[str] = field(default_factory=Counter)
    unresolved: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    holds: int = 0
    reholds: int = 0  # HOLDs of a robot already held (its hold node moved): not a new hold to release
    longest_hold_ms: int = 0
    held_at_end: list[str] = field(default_factory=list)
    traffic_held_at_end: list[str] = field(default_factory=list)
    latencies_ms: list[int] = field(default_factory=list)
    done_per_bucket: list[int] = field(default_factory=list)  # tasks SUCCEEDED per bucket_ms
    longest_wait_ms: int = 0  # longest a robot stood at the end of its grant wanting to go on
    longest_wait_robot: str | None = None
    traffic_cpu_s: float = 0.0  # process time spent in the traffic step
    grants: int = 0

    @property
    def collisions_total(self) -> int:
        return self.vertex_collisions + self.edge_collisions

    def latency_ms(self, q: float) -> int:
        """The ``q`` quantile (0..1) of status-to-robot latency of traffic decisions (0 when none)."""
        if not self.latencies_ms:
            return 0
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        return {
            "sim_min": round(self.sim_ms / 60_000, 1),
            "wall_s": round(self.wall_s, 1),
            "tasks": f"{self.tasks_succeeded}/{self.tasks_created} succeeded",
            "collisions": {"vertex": self.vertex_collisions, "edge": self.edge_collisions},
            "conflicts": dict(self.conflicts),
            "resolutions": dict(self.resolutions),
            "decisions": dict(self.decisions),
            "applied": dict(self.applied),
            "holds": self.holds,
            "reholds": self.reholds,
            "longest_hold_s": round(self.longest_hold_ms / 1000, 1),
            "alerts": len(self.alerts),
            "held_at_end": len(self.held_at_end) + len(self.traffic_held_at_end),
            "latency_ms_p50_p99_max": [self.latency_ms(0.5), self.latency_ms(0.99), self.latency_ms(1.0)],
            "done_per_bucket": list(self.done_per_bucket),
            "longest_wait_s": round(self.longest_wait_ms / 1000, 1),
            "traffic_cpu_s": round(self.traffic_cpu_s, 2),
        }


class _Queue:
    """Records in flight: ``(visible_at, order, handler, record)``, handled in time order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[[int, Any], None], Any]] = []
        self._order = itertools.count()

    def at(self, when: int, handler: Callable[[int, Any], None], record: Any) -> None:
        heapq.heappush(self._heap, (when, next(self._order), handler, record))

    def run_until(self, until: int) -> None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            when, _, handler, record = heapq.heappop(heap)
            handler(when, record)


class _Loop:
    def __init__(self, config: LoopConfig) -> None:
        self.cfg = config
        self.report = LoopReport()
        self.queue = _Queue()
        if config.site_map is not None:
            site_map = dict(config.site_map)
        else:
            site_map = demo_site(config.site_id, config.tenant_id, config.seed, occurred_at=config.start_ms)
        self.site_map = site_map
        self.sim = FleetSim(
            site_map,
            FleetConfig(
                tenant_id=config.tenant_id,
                robots=config.robots,
                seed=config.seed,
                autonomous=False,
                self_charge=False,
                speed_scale=config.speed_scale,
                work_ms=config.work_ms,
                return_home_ms=config.return_home_ms,
                start_delay_ms=config.start_delay_ms,
                grants=config.traffic is not None,
                stall_per_min=config.stall_per_min,
                stall_ms=config.stall_ms,
                speed_spread=config.speed_spread,
                initial_battery=config.initial_battery,
            ),
            config.start_ms,
        )
        self.feeder = TaskFeeder(
            sim=self.sim,
            per_minute=config.tasks_per_minute,
            seed=config.seed,
            requests=config.requests,
            backlog=config.backlog,
            pickup_kinds=config.pickup_kinds,
            dropoff_kinds=config.dropoff_kinds,
        )
        rng = random.Random(f"loop:{config.seed}")
        self.phase = {
            name: rng.randrange(config.commit_ms) for name in ("telemetry", "tasks", "dispatch", "traffic")
        }
        self.telemetry_state: dict[str, Any] = {}
        self.task_state: dict[str, Any] = {}
        self.task_final: dict[str, str] = {}
        self.timers: dict[str, dict[str, Any]] = {}
        self.dispatch = dispatch_topology.SiteState(config=config.dispatch)
        self.dispatch_now = 0
        self.traffic = (
            traffic_site.TrafficSite.new(config.traffic, site_map["site_id"], site_map.get("tenant_id", ""))
            if config.traffic is not None
            else None
        )
        self.wait_since: dict[str, int] = {}
        self.done_at: list[int] = []
        self.to_sim: list[tuple[int, int, dict[str, Any]]] = []
        self.order = itertools.count()
        self.hold_since: dict[str, int] = {}

    # -- latency -------------------------------------------------------------------------------------
    def visible(self, processor: str, handled_at: int) -> int:
        """When the output of ``processor`` handling a record at ``handled_at`` can be consumed."""
        c, phase = self.cfg.commit_ms, self.phase[processor]
        return phase + ((handled_at - phase) // c + 1) * c + self.cfg.hop_ms

    def rekeyed(self, processor: str, handler: Callable[[int, Any], None]) -> Callable[[int, Any], None]:
        """The ``group_by`` hop of a site-keyed processor: through its repartition topic, then ``handler``."""

        def repartition(at: int, record: Any) -> None:
            self.queue.at(self.visible(processor, at), handler, record)

        return repartition

    # -- processors ----------------------------------------------------------------------------------
    def on_telemetry(self, at: int, record: Any) -> None:
        rid = record["robot_id"]
        new, out = on_telemetry(self.telemetry_state.get(rid), record, self.cfg.telemetry)
        self.telemetry_state[rid] = new
        when = self.visible("telemetry", at)
        for o in out:
            if o.topic == telemetry_records.STATUS:
                self.queue.at(
                    when, self.rekeyed("dispatch", self.on_dispatch), (dispatch_topology.STATUS, o.value)
                )
                if self.traffic is not None:
                    self.queue.at(when, self.rekeyed("traffic", self.traffic_input("status")), o.value)

    def feed_tasks(self, at: int, inputs: Sequence[InboxInput]) -> None:
        """The tasks processor's feeds: normalised inputs go to its inbox (one hop)."""
        when = self.visible("tasks", at)
        for inp in inputs:
            self.queue.at(when, self.on_task_input, inp)

    def on_task_input(self, at: int, inp: InboxInput) -> None:
        if inp["type"] == "schedule" or inp["type"] == "fire":
            raise ValueError(f"the simulator runs no cron schedules ({inp['schedule_id']})")
        task_id = inp["task_id"]
        new, out = tasks_topology.step(self.task_state.get(task_id), inp, self.cfg.tasks)
        if new is None:
            self.task_state.pop(task_id, None)
        else:
            self.task_state[task_id] = new
        when = self.visible("tasks", at)
        for o in out:
            if o.topic == tasks_topology.EVENTS and o.value is not None:
                event = o.value
                if event.get("kind") == "TRANSITION" and event["state"] in TERMINAL_TASK_STATES:
                    self.task_final[event["task_id"]] = event["state"]
                    if event["state"] == "SUCCEEDED":
                        self.done_at.append(at)
                self.queue.at(
                    when, self.rekeyed("dispatch", self.on_dispatch), (dispatch_topology.TASK, event)
                )
                if self.traffic is not None:
                    self.queue.at(when, self.rekeyed("traffic", self.traffic_input("task")), event)
            elif o.topic == tasks_topology.TIMERS:
                if o.value is None:
                    self.timers.pop(o.key, None)
                else:
                    self.timers[o.key] = o.value
            elif o.topic == tasks_topology.INBOX and o.value is not None:
                self.queue.at(when, self.on_task_input, o.value.payload)

    def on_dispatch(self, at: int, item: tuple[str, dict[str, Any]]) -> None:
        kind, record = item
        self.dispatch_now = max(int(record.get("occurred_at") or 0), self.dispatch_now)
        try:
            _, decisions = dispatch_topology.step(self.dispatch, kind, record, self.dispatch_now)
        except RejectedRecord:
            self.report.rejected += 1
            return
        when = self.visible("dispatch", at)
        for d in decisions:
            self.report.decisions[d["kind"]] += 1
            heapq.heappush(self.to_sim, (when, next(self.order), d))
            self.queue.at(when, self.on_decision_for_tasks, d)

    def on_decision_for_tasks(self, at: int, decision: dict[str, Any]) -> None:
        self.feed_tasks(at, tasks_topology.from_decision(cast(Decision, decision)))

    def traffic_input(self, kind: str) -> Callable[[int, Any], None]:
        return lambda at, record: self.on_traffic(at, kind, record)

    def on_traffic(self, at: int, kind: str, record: dict[str, Any]) -> None:
        assert self.traffic is not None
        started = time.process_time()
        out = traffic_site.step(self.traffic, kind, record, int(record.get("occurred_at") or 0))
        self.report.traffic_cpu_s += time.process_time() - started
        when = self.visible("traffic", at)
        for o in out:
            if o.topic == traffic_topology.DECISIONS:
                self.report.decisions[o.value["kind"]] += 1
                if o.value["kind"] == "GRANT":
                    self.report.grants += 1
                heapq.heappush(self.to_sim, (when, next(self.order), o.value))
            elif o.topic == traffic_topology.CONFLICTS:
                self.report.conflicts[o.value["kind"]] += 1
                self.report.resolutions[o.value["resolution"]] += 1
                if o.value["resolution"] == "NONE":
                    self.report.unresolved.append(o.value)
            elif o.topic == traffic_topology.ALERTS:
                self.report.alerts.append(o.value)

    # -- the simulator -------------------------------------------------------------------------------
    def apply_decisions(self, now: int) -> None:
        while self.to_sim and self.to_sim[0][0] <= now:
            _, _, decision = heapq.heappop(self.to_sim)
            if not apply_decision(self.sim, decision):
                continue
            kind, rid = decision["kind"], decision["robot_id"]
            self.report.applied[kind] += 1
            if decision.get("planner") == traffic_topology.OWNER:
                self.report.latencies_ms.append(now - int(decision["occurred_at"]))
            if kind == "HOLD":
                self.report.holds += 1
                if rid in self.hold_since:
                    self.report.reholds += 1
                self.hold_since.setdefault(rid, now)
            elif kind in _RELEASES and rid in self.hold_since:
                held = now - self.hold_since.pop(rid)
                self.report.longest_hold_ms = max(self.report.longest_hold_ms, held)

    def fire_timers(self, now: int) -> None:
        due = [k for k, v in self.timers.items() if int(v["due_at"]) <= now]
        for key in sorted(due, key=lambda k: (self.timers[k]["due_at"], k)):
            timer = self.timers.pop(key)
            self.feed_tasks(now, tasks_topology.from_due_timer(cast(Timer, timer)))

    def tick(self, now: int, create_tasks: bool) -> None:
        self.queue.run_until(now)
        self.apply_decisions(now)
        self.fire_timers(now)
        hop = self.cfg.hop_ms
        if create_tasks:
            for _key, command in self.feeder.due(now):
                self.queue.at(
                    now + hop, lambda at, c: self.feed_tasks(at, tasks_topology.from_command(c)), command
                )
        self.feeder.open_tasks = self.feeder.created - len(self.task_final)
        for record in self.sim.step(now):
            self.queue.at(now + hop, self.on_telemetry, record)
            self.queue.at(
                now + hop, lambda at, r: self.feed_tasks(at, tasks_topology.from_telemetry(r)), record
            )

    def watch_waits(self, now: int) -> None:
        """How long each robot has stood at the end of its grant wanting to go on."""
        waiting = set(self.sim.waiting_for_grant())
        for rid in list(self.wait_since):
            if rid not in waiting:
                self.end_wait(rid, now)
        for rid in waiting:
            self.wait_since.setdefault(rid, now)

    def end_wait(self, rid: str, now: int) -> None:
        waited = now - self.wait_since.pop(rid)
        if waited > self.report.longest_wait_ms:
            self.report.longest_wait_ms, self.report.longest_wait_robot = waited, rid

    def settled(self) -> bool:
        ended = len(self.task_final) >= self.feeder.created
        held = any(self.sim.view(r).held for r in self.sim.robot_ids)
        return ended and not held and not (self.traffic is not None and self.traffic.monitor.held)

    def run(self) -> LoopReport:
        cfg = self.cfg
        started = time.perf_counter()
        t0 = cfg.start_ms
        self.queue.at(t0, self.on_dispatch, (dispatch_topology.MAP, self.site_map))
        for registration in self.sim.registrations(t0):
            self.queue.at(t0, self.on_dispatch, (dispatch_topology.REGISTRATION, registration))
        if self.traffic is not None:
            self.queue.at(t0, self.traffic_input("map"), self.site_map)
        tick_ms = 1000.0 / cfg.rate_hz
        end_tasks, end = t0 + cfg.duration_ms, t0 + cfg.duration_ms + cfg.drain_ms
        now = t0
        for k in itertools.count():
            now = t0 + round(k * tick_ms)
            self.tick(now, create_tasks=now < end_tasks)
            if self.traffic is not None:
                self.watch_waits(now)
            if now >= end or (now >= end_tasks and self.settled()):
                break
        self.report.wall_s = time.perf_counter() - started
        return self.finish(now)

    def finish(self, now: int) -> LoopReport:
        r = self.report
        r.sim_ms = now - self.cfg.start_ms
        r.tasks_created = self.feeder.created
        r.tasks_succeeded = sum(1 for s in self.task_final.values() if s == "SUCCEEDED")
        r.tasks_ended_otherwise = len(self.task_final) - r.tasks_succeeded
        gt = self.sim.ground_truth
        r.vertex_collisions, r.edge_collisions = gt.vertex_collisions, gt.edge_collisions
        r.collisions = list(gt.collisions)
        r.held_at_end = sorted(rid for rid in self.sim.robot_ids if self.sim.view(rid).held)
        r.traffic_held_at_end = sorted(self.traffic.monitor.held) if self.traffic is not None else []
        for rid in list(self.wait_since):
            self.end_wait(rid, now)
        buckets = [0] * max(1, -(-self.cfg.duration_ms // self.cfg.bucket_ms))
        for at in self.done_at:
            k = (at - self.cfg.start_ms) // self.cfg.bucket_ms
            if 0 <= k < len(buckets):
                buckets[k] += 1
        r.done_per_bucket = buckets
        for since in self.hold_since.values():
            r.longest_hold_ms = max(r.longest_hold_ms, now - since)
        return r


def run_loop(config: LoopConfig) -> LoopReport:
    """Run one closed loop to its end (see the module doc) and report what happened."""
    report = _Loop(config).run()
    logger.info("closed loop: %s", report.summary())
    return report
