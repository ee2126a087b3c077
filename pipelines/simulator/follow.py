"""Closing the loop: the simulator follows `scheduler.decisions` and creates tasks of its own.

`DecisionFeed` consumes the decisions topic on a background thread (read-committed, so only what the
dispatch and traffic topologies committed) and hands them to the tick loop, which applies them with
`apply_decision` before it advances the robots. Decisions of other sites and tenants are ignored.

`TaskFeeder` creates delivery tasks (pickup at a PICKUP node, drop-off at a DROPOFF node) at a
steady rate in simulated time, as CREATE TaskCommands on `task.commands`, the same record the
gateway's `POST /v1/tasks` produces with an `Idempotency-Key` (the key is `sim-<site>-<seed>-<n>`,
the task id derived from it as the gateway does), so a re-run creates the same tasks and the tasks
topology drops the repeats.
"""

from __future__ import annotations

import heapq
import logging
import math
import queue
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipelines.settings import PRODUCER_DEFAULTS
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.errors import FleetError
from schemas.ids import now_ms as wall_now_ms
from schemas.ids import task_id_for
from schemas.registry import RegistryClient

from .decisions import apply_decision
from .demand import TaskRequest
from .fleet import FleetSim
from .ids import SeededUuid7

__all__ = [
    "DECISIONS_TOPIC",
    "TASK_COMMANDS_TOPIC",
    "DecisionFeed",
    "FollowStats",
    "TaskFeeder",
    "TaskRequest",
]

logger = logging.getLogger(__name__)

DECISIONS_TOPIC = catalog.SCHEDULER_DECISIONS
TASK_COMMANDS_TOPIC = catalog.TASK_COMMANDS


@dataclass
class FollowStats:
    """What the loop did: decisions received and carried out, tasks created."""

    decisions: int = 0
    applied: int = 0
    ignored: int = 0
    undecodable: int = 0
    tasks_created: int = 0
    applied_by_kind: dict[str, int] = field(default_factory=dict)
    #: For each traffic decision applied: simulated time of the tick that applied it minus its occurred_at.
    traffic_latency_ms: list[int] = field(default_factory=list)
    #: For each traffic decision applied: wall time its record was received minus its occurred_at (ms); the
    #: pipeline's own latency when simulated time follows the wall clock (real time), not rounded to ticks.
    traffic_arrival_ms: list[int] = field(default_factory=list)


class DecisionFeed:
    """Decisions for one site, consumed from Kafka on a thread and drained by the tick loop."""

    def __init__(
        self,
        *,
        site_id: str,
        tenant_id: str,
        kafka_config: Mapping[str, Any],
        registry_config: Mapping[str, Any],
        topic_prefix: str = "",
        stats: FollowStats | None = None,
    ) -> None:
        self.site_id, self.tenant_id = site_id, tenant_id
        self.topic = f"{topic_prefix}{DECISIONS_TOPIC}"
        self.stats = stats or FollowStats()
        self._codec = AvroCodec.for_topic(
            RegistryClient(**dict(registry_config)), DECISIONS_TOPIC, topic_prefix, auto_register=False
        )
        client = {k: v for k, v in kafka_config.items() if k not in PRODUCER_DEFAULTS}
        self._consumer = Consumer(
            {
                **client,
                # A private group per run: a simulator acts on what is decided while it runs, and the
                # robots it models start from scratch, so old decisions must not be replayed to them.
                "group.id": f"fleet-simulator-{site_id}-{uuid.uuid4().hex[:12]}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "client.id": f"fleet-simulator-{site_id}-decisions",
            }
        )
        self._queue: queue.SimpleQueue[tuple[dict[str, Any], int]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 30.0) -> None:
        """Pin the consumer at the end of every partition, then consume on a thread.

        Returns once the positions are fixed, so nothing decided after this call is missed (the robots
        are registered only after it).
        """
        metadata = self._consumer.list_topics(self.topic, timeout=timeout_s)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            raise FleetError(f"topic {self.topic} does not exist (run `fleet topics apply`)")
        ends = []
        for partition in sorted(topic.partitions):
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=timeout_s
            )
            ends.append(TopicPartition(self.topic, partition, high))
        self._consumer.assign(ends)
        self._thread = threading.Thread(target=self._run, name="sim-decisions", daemon=True)
        self._thread.start()
        logger.info("following decisions on %s (%d partitions)", self.topic, len(ends))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self._consumer.poll(0.1)
            except KafkaException as exc:  # pragma: no cover - broker trouble: log and keep trying
                logger.warning("decision consumer: %s", exc)
                time.sleep(0.5)
                continue
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    logger.warning("decision consumer: %s", err)
                continue
            try:
                record = self._codec.decode(msg.value())
            except Exception as exc:  # a record we cannot read is skipped and counted, never fatal
                self.stats.undecodable += 1
                logger.warning(
                    "skipping an undecodable decision at %s[%d]@%d: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
                continue
            if record is not None:
                self._queue.put((record, wall_now_ms()))

    def drain(self) -> list[tuple[dict[str, Any], int]]:
        """Every decision received since the last call, with the wall time it was received."""
        out: list[tuple[dict[str, Any], int]] = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def apply_to(self, sim: FleetSim, now_ms: int) -> int:
        """Carry out every decision received since the last call, at the tick of ``now_ms`` (simulated);
        returns how many were applied."""
        applied = 0
        for record, received_ms in self.drain():
            if record.get("site_id") != self.site_id or record.get("tenant_id") != self.tenant_id:
                continue
            self.stats.decisions += 1
            if apply_decision(sim, record):
                applied += 1
                kind = str(record.get("kind"))
                self.stats.applied_by_kind[kind] = self.stats.applied_by_kind.get(kind, 0) + 1
                if record.get("planner") == "traffic":
                    self.stats.traffic_latency_ms.append(now_ms - int(record["occurred_at"]))
                    self.stats.traffic_arrival_ms.append(received_ms - int(record["occurred_at"]))
                logger.debug(
                    "applied %s for %s",
                    record.get("kind"),
                    record.get("robot_id"),
                    extra={"robot_id": record.get("robot_id"), "task_id": record.get("task_id")},
                )
            else:
                self.stats.ignored += 1
        self.stats.applied += applied
        return applied

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._consumer.close()


class TaskFeeder:
    """Delivery tasks, deterministic from seed, in one of three ways (simulated time):

    - at ``per_minute``, each from a random PICKUP to a random DROPOFF node (the default);
    - with ``backlog``, as many as keep ``backlog`` tasks open (created, not ended: the caller keeps
      :attr:`open_tasks` up to date), so that a fleet is saturated without an ever-growing queue;
    - from ``requests`` (a task list, :mod:`pipelines.simulator.demand`): each at its time, or repeated at
      its rate, between its own nodes.

    At most ``limit`` tasks in all.
    """

    def __init__(
        self,
        sim: FleetSim,
        *,
        per_minute: float,
        limit: int | None = None,
        seed: int = 0,
        priority_range: tuple[int, int] = (3, 7),
        start_ms: int | None = None,
        backlog: int | None = None,
        requests: Sequence[TaskRequest] | None = None,
        pickup_kinds: Sequence[str] = ("PICKUP",),
        dropoff_kinds: Sequence[str] = ("DROPOFF",),
    ) -> None:
        if per_minute <= 0 and backlog is None and requests is None:
            raise ValueError(f"per_minute must be > 0, got {per_minute}")
        if backlog is not None and backlog < 1:
            raise ValueError(f"backlog must be >= 1, got {backlog}")
        self._sim = sim
        self._interval_ms = 60_000.0 / per_minute if per_minute > 0 else math.inf
        self._limit = limit
        self._rng = random.Random(f"tasks:{seed}:{sim.site_id}")
        self._priorities = priority_range
        self._seed = seed
        self._ids = SeededUuid7(f"tasks:{seed}:{sim.site_id}")
        self._start = float(sim.now_ms if start_ms is None else start_ms)
        self._next_ms = self._start
        self._backlog = backlog
        self._pickups = sorted(sim.graph.nodes_of_kind(*pickup_kinds))
        self._dropoffs = sorted(sim.graph.nodes_of_kind(*dropoff_kinds))
        self._plan: list[tuple[float, int, TaskRequest]] = []
        if requests is not None:
            for k, req in enumerate(requests):
                for node in (req.pickup, req.dropoff):
                    if node is not None and node not in sim.graph:
                        raise ValueError(f"task list entry {k + 1}: node {node!r} is not on the site map")
                first = self._start + (req.at_s or 0.0) * 1000.0
                heapq.heappush(self._plan, (first, k, req))
        elif not self._pickups or not self._dropoffs:
            raise ValueError(
                f"the site map has no {'/'.join(pickup_kinds)} or no {'/'.join(dropoff_kinds)} node for tasks"
            )
        self.created = 0
        self.open_tasks = 0

    @property
    def done(self) -> bool:
        return self._limit is not None and self.created >= self._limit

    def due(self, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
        """The CREATE commands due by now_ms, as (key, TaskCommand dict)."""
        out: list[tuple[str, dict[str, Any]]] = []
        if self._plan:
            while self._plan and self._plan[0][0] <= now_ms and not self.done:
                at, k, req = heapq.heappop(self._plan)
                out.append(self._command(int(at), req.pickup, req.dropoff, req.priority))
                self.created += 1
                if req.per_minute:
                    heapq.heappush(self._plan, (at + 60_000.0 / req.per_minute, k, req))
            return out
        if self._backlog is not None:
            while self.open_tasks + len(out) < self._backlog and not self.done:
                out.append(self._command(now_ms))
                self.created += 1
            return out
        while self._next_ms <= now_ms and not self.done:
            out.append(self._command(int(self._next_ms)))
            self._next_ms += self._interval_ms
            self.created += 1
        return out

    def _command(
        self, at_ms: int, pickup: str | None = None, dropoff: str | None = None, priority: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        sim, n = self._sim, self.created
        key = f"sim-{sim.site_id}-{self._seed}-{n}"
        task_id = task_id_for(sim.tenant_id, key)  # as the gateway derives it from an Idempotency-Key
        if pickup is None and dropoff is None:
            pickup, dropoff = self._rng.choice(self._pickups), self._rng.choice(self._dropoffs)
        spec = {
            "category": "delivery",
            "priority": priority if priority is not None else self._rng.randint(*self._priorities),
            "pickup_node": pickup,
            "dropoff_node": dropoff,
            "required_capabilities": ["tote"],
            "deadline": None,
            "timeout_ms": None,
            "max_attempts": 3,
            "depends_on": [],
            "on_dependency_failure": "FAIL",
            "fleet_id": None,
            "robot_id": None,
            "labels": {"source": "simulator"},
            "payload_json": None,
        }
        command = {
            "event_id": self._ids(at_ms),
            "tenant_id": sim.tenant_id,
            "site_id": sim.site_id,
            "occurred_at": at_ms,
            "task_id": task_id,
            "command": "CREATE",
            "idempotency_key": key,
            "spec": spec,
            "reason": None,
            "requested_by": "simulator",
            "timer": None,
        }
        return task_id, command
