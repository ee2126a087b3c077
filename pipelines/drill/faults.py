"""The faults a drill injects, each with what it did and how long the pipeline took to recover.

A fault runs in three steps: inject, heal (the killed process is restarted by the supervisor, the
stopped service or broker is started again, the stalled process continued), then wait until the
pipeline has recovered: every consumer group has committed past the end offsets its inputs had when
the fault was healed (for a kill, the kill itself is the heal: the restart is part of the recovery).
The recovery time is that wait; a broker fault also records how long until every partition had all
its replicas in sync again.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from pipelines.app import group_of
from pipelines.drill.cluster import KafkaCluster, StackServices
from pipelines.drill.processes import Instance, Supervisor
from pipelines.drill.progress import GroupProgress

__all__ = [
    "BrokerBounce",
    "BrokerKill",
    "DrillContext",
    "Fault",
    "FaultRecord",
    "NotInjected",
    "ProcessorKill",
    "ProcessorStall",
    "ScaleIn",
    "ScaleOut",
    "ServiceOutage",
]

logger = logging.getLogger(__name__)


@dataclass
class DrillContext:
    supervisor: Supervisor
    cluster: KafkaCluster
    services: StackServices
    progress: GroupProgress
    prefix: str
    recovery_timeout_s: float = 240.0
    broker_down_s: float = 15.0


@dataclass
class FaultRecord:
    """One injected fault: when, what, and when the pipeline had recovered (None: it did not in time)."""

    kind: str
    target: str
    started: float
    healed: float
    recovered: float | None
    detail: str = ""
    replicated_s: float | None = None  # brokers: until every partition had all replicas in sync
    stuck: list[str] = field(default_factory=list)  # groups still behind when the timeout ran out
    forced_recovery_s: float | None = None  # after the drill killed the stuck groups' instances
    crash_loops: dict[str, str] = field(default_factory=dict)  # instance -> last error, if any
    drill_error: bool = False  # the drill itself failed to measure this fault's recovery

    @property
    def unrecoverable(self) -> bool:
        """Not recovered, not even after the drill restarted the stuck processors."""
        return self.recovered is None and self.forced_recovery_s is None and not self.drill_error

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered is None else max(0.0, self.recovered - self.healed)

    @property
    def outage_s(self) -> float:
        return self.healed - self.started


class Fault:
    """A fault of the drill's plan. ``run`` injects it, heals it and measures the recovery."""

    kind = "fault"

    def describe(self) -> str:
        return self.kind

    def run(self, ctx: DrillContext) -> FaultRecord:
        raise NotImplementedError

    @staticmethod
    def _recover(ctx: DrillContext, record: FaultRecord) -> FaultRecord:
        """Wait for the recovery. A group that does not catch up in time is recorded as stuck, and its
        instances are killed -9 (their restart unblocks them), so that the drill can go on and the
        verifier can still tell whether anything was lost; the fault stays not recovered.

        A processor in a crash loop (it exits by itself again and again, whatever the fault) is
        recorded and its group left out of every later wait: the verdict reports it (its lag, its
        sink's missing rows), and the other processors' recoveries are still measured."""
        snapshot = ctx.progress.snapshot()

        newly_excluded = False

        def looping() -> bool:
            nonlocal newly_excluded
            loops = ctx.supervisor.crash_looping()
            groups = {_group(ctx, name) for name in loops} - ctx.progress.excluded
            if groups:
                record.crash_loops.update(loops)
                ctx.progress.excluded |= groups
                newly_excluded = True
                logger.error(
                    "%s %s: processors in a crash loop, left out: %s", record.kind, record.target, loops
                )
            return bool(groups)

        deadline = time.monotonic() + ctx.recovery_timeout_s
        while True:
            newly_excluded = False
            left = max(0.0, deadline - time.monotonic())
            record.recovered = ctx.progress.caught_up(snapshot, left, give_up=looping)
            if record.recovered is not None or not newly_excluded:
                break  # recovered, or the time is up
            snapshot = {k: v for k, v in snapshot.items() if k[0] not in ctx.progress.excluded}
        if record.recovered is not None:
            logger.info("%s %s: recovered in %.1fs", record.kind, record.target, record.recovery_s or 0.0)
            return record
        record.stuck = sorted(ctx.progress.behind(snapshot))
        logger.error(
            "%s %s: NOT recovered within %.0fs; groups behind: %s; killing their instances",
            record.kind, record.target, ctx.recovery_timeout_s, record.stuck,
        )  # fmt: skip
        t0 = time.time()
        for group in record.stuck:
            processor = group.removeprefix(f"{ctx.prefix}fleet-")
            for inst in ctx.supervisor.instances.values():
                if inst.processor == processor and inst.alive:
                    ctx.supervisor.kill(inst)
        done = ctx.progress.caught_up(ctx.progress.snapshot(), ctx.recovery_timeout_s, give_up=looping)
        record.forced_recovery_s = None if done is None else done - t0
        return record


def _group(ctx: DrillContext, instance: str) -> str:
    """The consumer group of an instance name (``sink-postgres.2`` -> ``<prefix>fleet-sink-postgres``)."""
    return group_of(ctx.prefix, instance.rsplit(".", 1)[0])


def _running(ctx: DrillContext, processor: str, wait_s: float = 60.0) -> list[Instance]:
    """The running instances of ``processor``, waiting up to ``wait_s`` for one (it may be between an
    exit and its restart); raises :class:`NotInjected` when none comes up."""
    deadline = time.monotonic() + wait_s
    while True:
        live = [i for i in ctx.supervisor.of(processor) if i.alive and not i.held]
        if live or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if not live:
        raise NotInjected(f"no running instance of {processor} to inject a fault into")
    return live


class NotInjected(RuntimeError):
    """A fault the drill could not inject (its target is not running): reported, the drill goes on."""


@dataclass
class ProcessorKill(Fault):
    """``kill -9`` of ``count`` running instances of ``processor`` at once (2: every instance of a
    two-instance processor, so no survivor takes its partitions over until the restarts)."""

    processor: str
    count: int = 1
    index: int | None = None  # which instance, for count 1 (None: the first running one)
    kind: str = field(init=False, default="kill -9")

    def describe(self) -> str:
        which = f".{self.index}" if self.index is not None and self.count == 1 else ""
        return f"kill -9 {self.processor}{which}" + (f" x{self.count} at once" if self.count > 1 else "")

    def run(self, ctx: DrillContext) -> FaultRecord:
        live = _running(ctx, self.processor)
        if self.index is not None and self.count == 1:
            live = [i for i in live if i.index == self.index] or live
        victims = live[: self.count]
        if len(victims) < self.count:
            raise RuntimeError(f"{self.processor}: {len(victims)} instances run, {self.count} to kill")
        started = time.time()
        for inst in victims:
            ctx.supervisor.kill(inst)
        kind = "kill -9" if self.count == 1 else f"kill -9 x{self.count}"
        record = FaultRecord(kind, ", ".join(i.name for i in victims), started, started, None)
        return self._recover(ctx, record)


@dataclass
class ProcessorStall(Fault):
    """SIGSTOP one instance for ``seconds`` (longer than its session timeout: the group moves its
    partitions away, and when continued it is a zombie whose transaction must be fenced), then SIGCONT."""

    processor: str
    seconds: float = 20.0
    kind: str = field(init=False, default="SIGSTOP/SIGCONT")

    def describe(self) -> str:
        return f"SIGSTOP {self.processor} {self.seconds:.0f}s, SIGCONT"

    def run(self, ctx: DrillContext) -> FaultRecord:
        inst = _running(ctx, self.processor)[0]
        started = time.time()
        ctx.supervisor.pause(inst)
        time.sleep(self.seconds)
        if inst.alive:
            ctx.supervisor.resume(inst)
        record = FaultRecord(self.kind, inst.name, started, time.time(), None, f"stopped {self.seconds:.0f}s")
        return self._recover(ctx, record)


@dataclass
class BrokerKill(Fault):
    """SIGKILL of the broker that leads ``topic``'s partition 0 (``role="leader"``) or of the active
    controller (``role="controller"``); started again after the context's ``broker_down_s``."""

    role: str
    topic: str = "robot.telemetry"
    kind: str = field(init=False, default="broker kill")

    def describe(self) -> str:
        what = f"leader of {self.topic}[0]" if self.role == "leader" else "active controller"
        return f"kill -9 broker: {what}"

    def run(self, ctx: DrillContext) -> FaultRecord:
        if self.role == "leader":
            node = ctx.cluster.leader_of(f"{ctx.prefix}{self.topic}", 0)
            kind, detail = "broker kill (partition leader)", f"leader of {ctx.prefix}{self.topic}[0]"
        else:
            node = ctx.cluster.active_controller()
            kind, detail = "broker kill (active controller)", "KRaft quorum leader"
        started = time.time()
        ctx.cluster.kill(node)
        time.sleep(ctx.broker_down_s)
        ctx.cluster.start(node)
        healed = time.time()
        after = (
            ctx.cluster.active_controller()
            if self.role == "controller"
            else ctx.cluster.leader_of(f"{ctx.prefix}{self.topic}", 0)
        )
        record = FaultRecord(
            kind,
            f"kafka-{node}",
            started,
            healed,
            None,
            f"{detail}; down {ctx.broker_down_s:.0f}s; now {after}",
        )
        record.replicated_s = ctx.cluster.wait_fully_replicated(ctx.prefix)
        return self._recover(ctx, record)


@dataclass
class BrokerBounce(Fault):
    """A clean restart (SIGTERM: controlled shutdown) of one broker that is not the active controller."""

    kind: str = field(init=False, default="broker bounce (clean)")

    def describe(self) -> str:
        return "clean bounce of a broker"

    def run(self, ctx: DrillContext) -> FaultRecord:
        controller = ctx.cluster.active_controller()
        node = next(n for n in range(ctx.cluster.nodes, 0, -1) if n != controller)
        started = time.time()
        ctx.cluster.stop(node)
        ctx.cluster.start(node)
        record = FaultRecord(
            self.kind, f"kafka-{node}", started, time.time(), None, "controlled shutdown, restart"
        )
        record.replicated_s = ctx.cluster.wait_fully_replicated(ctx.prefix)
        return self._recover(ctx, record)


@dataclass
class ServiceOutage(Fault):
    """One of the stack's services (postgres, redis, influxdb) stopped for ``seconds``, then started."""

    service: str
    seconds: float = 30.0
    kind: str = field(init=False, default="outage")

    def describe(self) -> str:
        return f"{self.service} down {self.seconds:.0f}s"

    def run(self, ctx: DrillContext) -> FaultRecord:
        started = time.time()
        ctx.services.down(self.service)
        time.sleep(max(0.0, self.seconds - (time.time() - started)))
        ctx.services.up(self.service)
        record = FaultRecord(f"{self.service} down", self.service, started, time.time(), None)
        return self._recover(ctx, record)


@dataclass
class ScaleOut(Fault):
    """Add an instance of ``processor`` under load (its group rebalances; state moves by changelog)."""

    processor: str
    kind: str = field(init=False, default="scale out")

    def describe(self) -> str:
        return f"add an instance of {self.processor}"

    def run(self, ctx: DrillContext) -> FaultRecord:
        existing = _running(ctx, self.processor)
        index = max(i.index for i in ctx.supervisor.of(self.processor)) + 1
        inst = ctx.supervisor.add(existing[0].processor, index)
        started = time.time()
        ctx.supervisor.start(inst)
        record = FaultRecord(self.kind, inst.name, started, started, None)
        return self._recover(ctx, record)


@dataclass
class ScaleIn(Fault):
    """Stop (SIGTERM, not restarted) the newest running instance of ``processor`` under load."""

    processor: str
    kind: str = field(init=False, default="scale in")

    def describe(self) -> str:
        return f"remove an instance of {self.processor}"

    def run(self, ctx: DrillContext) -> FaultRecord:
        inst = max(_running(ctx, self.processor), key=lambda i: i.index)
        started = time.time()
        ctx.supervisor.hold(inst)
        record = FaultRecord(self.kind, inst.name, started, time.time(), None)
        return self._recover(ctx, record)
