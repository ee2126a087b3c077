"""The oracle: the topologies' kernel steps run over the inputs the drill found in Kafka.

A topology is a deterministic function of its input log (DESIGN.md section 8), so what the processors
wrote under faults must equal what their steps (``step(state, kind, event, now_ms)``, ``topologies.kernel``)
compute from the same inputs: the same outputs, with the same event ids, in the same order per key.
Where the inputs of one key come from several topics, the oracle merges them as Quix Streams does (per
partition, the record with the smallest timestamp of the heads of the partitions of one partition group
first).

- telemetry (:class:`~topologies.telemetry.TelemetryStep`, per key): a robot's ``robot.telemetry``,
  ``robot.registry``, ``timers.due.telemetry`` and its records of ``telemetry.inbox`` (the bounds of its
  site; records forwarded from another partition); a site's key (``site:<id>``) its inbox records (site
  maps, robots joining). Outputs: ``robot.telemetry.accepted``, ``robot.status``, ``alerts``,
  ``robot.telemetry.1m``, ``timers``, and messages to the inbox. ``now_ms`` is the record's Kafka
  timestamp, as in the processor. A direct record on another partition than its key's (murmur2) is
  forwarded to the inbox, not applied.
- tasks (:class:`~topologies.tasks.TasksStep`): its sources normalized into ``tasks.inbox`` by the feeds
  (a multiset, since the feeds of several sources write one partition concurrently), then per inbox key
  the step over the inbox in partition order, on a Quix store (``topologies.kernel.testing``) ->
  ``task.events``, ``timers``, ``tasks.inbox``.

Each inbox is checked as a multiset: exactly the feeds' messages plus the step's own, each once.
The configurations are the processors' defaults (the drill sets none of those variables).
Dispatch and traffic have no oracle here: their decisions depend on when records arrive relative to
each other across topics and on wall-clock deadlines; the verifier checks their outputs for
duplicates and their sinks instead.
"""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipelines.drill.reader import Record
from schemas import catalog
from schemas.errors import RecordError
from topologies.kernel import Envelope, Output, murmur2_partition, run_step
from topologies.kernel.testing import StepHarness
from topologies.tasks import TasksConfig, TasksStep, normalizer
from topologies.tasks import builder as tasks_builder
from topologies.telemetry import REGISTRATION, TELEMETRY, TIMER, TelemetryConfig, TelemetryStep
from topologies.telemetry.sitemaps import SITE_MAP, map_message

__all__ = [
    "Expected",
    "Explained",
    "explain",
    "inbox_entry",
    "merge_by_timestamp",
    "tasks_oracle",
    "telemetry_oracle",
]

logger = logging.getLogger(__name__)

TELEMETRY_INBOX = catalog.inbox("telemetry")
TASKS_INBOX = catalog.inbox("tasks")
#: The telemetry processor's direct inputs and their kinds.
TELEMETRY_KINDS = {
    catalog.ROBOT_TELEMETRY: TELEMETRY,
    catalog.ROBOT_REGISTRY: REGISTRATION,
    catalog.timers_due("telemetry"): TIMER,
}
#: The tasks processor's sources (catalog name -> kind), as pipelines/processors/tasks.py wires them.
TASKS_KINDS = {
    catalog.TASK_COMMANDS: tasks_builder.COMMAND,
    catalog.SCHEDULER_DECISIONS: tasks_builder.DECISION,
    catalog.ROBOT_TELEMETRY: tasks_builder.TELEMETRY,
    catalog.RMF_TASK_STATES: tasks_builder.RMF,
    catalog.timers_due("tasks"): tasks_builder.TIMER,
    catalog.TASK_SCHEDULES: tasks_builder.SCHEDULE,
}


@dataclass
class Expected:
    """What a topology must have written: topic -> key -> [event id or None (a tombstone)] in order, the
    records it must have dead-lettered (source topic, partition, offset, reason), and the multiset of
    its inbox's records (:func:`inbox_entry`)."""

    outputs: dict[str, dict[str, list[str | None]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    rejected: list[tuple[str, int, int, str]] = field(default_factory=list)
    inbox: dict[bytes, int] = field(default_factory=lambda: defaultdict(int))

    def emit(self, topic: str, key: str, value: dict[str, Any] | None) -> None:
        self.outputs[topic][key].append(value.get("event_id") if value is not None else None)


def merge_by_timestamp(*topics: list[Record]) -> Iterator[Record]:
    """The records of several co-partitioned topics in the order Quix processes them: per partition
    number, repeatedly the head (in offset order) with the smallest timestamp, ties to the earlier topic."""
    by_partition: dict[int, list[list[Record]]] = defaultdict(lambda: [[] for _ in topics])
    for rank, records in enumerate(topics):
        for rec in records:
            by_partition[rec.partition][rank].append(rec)
    for partition in sorted(by_partition):
        queues = by_partition[partition]
        heads = [(q[0].timestamp, rank, 0) for rank, q in enumerate(queues) if q]
        heapq.heapify(heads)
        while heads:
            _ts, rank, i = heapq.heappop(heads)
            yield queues[rank][i]
            if i + 1 < len(queues[rank]):
                heapq.heappush(heads, (queues[rank][i + 1].timestamp, rank, i + 1))


Emitted = tuple[str, str, "str | None"]  # output topic, key, event id (None: a tombstone)
Apply = Callable[[Any, Record], tuple[Any, list[Emitted], "str | None"]]


@dataclass
class Explained:
    """Whether one key's outputs are the step's outputs for some admissible order of its inputs."""

    key: str
    ok: bool
    detail: str = ""
    emitted: list[Emitted] = field(default_factory=list)
    rejected: list[tuple[str, int, int, str]] = field(default_factory=list)
    reordered: int = 0  # inputs taken before an input with an earlier timestamp


def explain(
    key: str,
    queues: list[list[Record]],
    initial: Any,
    apply: Apply,
    actual: dict[tuple[str, str], list[str | None]],
    *,
    window_ms: int = 30_000,
    budget: int = 500_000,
    unmatched: frozenset[str] = frozenset(),
) -> Explained:
    """Search an order of one key's inputs (each input topic in offset order) for which ``apply`` emits
    exactly ``actual`` (per output topic and key, in order).

    The processor reads its input topics time-aligned: it takes the input with the earliest timestamp,
    unless a later one was already there and the earlier one still on its way (a timer fired by the
    timer service in the same millisecond as a robot's sample; after a restart or a rebalance, a small
    timers partition fetched before a large telemetry backlog). So the search tries timestamp order
    first and, where inputs of different topics are less than ``window_ms`` apart, the other order, and
    backtracks when the outputs disagree. Nothing is found for an output that no order explains: a
    lost, duplicated or altered record. Outputs to the topics of ``unmatched`` (an inbox, checked as a
    whole elsewhere) are kept in the result but not compared.
    """
    streams = {k: v for k, v in actual.items()}
    start_cursor = dict.fromkeys(streams, 0)
    # frame: [idx, cursor, state, candidates, next candidate, emitted, rejected, reordered]
    stack: list[list[Any]] = [[[0] * len(queues), start_cursor, initial, None, 0, [], None, 0]]
    deepest = (-1, "")
    visited = 0
    while stack:
        frame = stack[-1]
        idx, cursor, state = frame[0], frame[1], frame[2]
        if frame[3] is None:
            heads = [(queues[q][idx[q]].timestamp, q) for q in range(len(queues)) if idx[q] < len(queues[q])]
            if not heads:
                leftover = {
                    k: len(v) - cursor.get(k, 0) for k, v in streams.items() if cursor.get(k, 0) < len(v)
                }
                if not leftover:
                    return _success(key, stack)
                deepest = max(
                    deepest, (sum(idx), f"every input applied, but written records remain: {leftover}")
                )
                stack.pop()
                continue
            heads.sort()
            first = heads[0][0]
            frame[3] = [q for ts, q in heads if ts - first <= window_ms]
        if frame[4] >= len(frame[3]):
            stack.pop()
            continue
        q = frame[3][frame[4]]
        frame[4] += 1
        visited += 1
        if visited > budget:
            return Explained(
                key, False, f"inconclusive: more than {budget} steps searched; deepest: {deepest[1]}"
            )
        rec = queues[q][idx[q]]
        new_state, emitted, rejected = apply(state, rec)
        new_cursor = dict(cursor)
        mismatch = None
        for topic, out_key, event_id in emitted:
            if topic in unmatched:
                continue
            stream = streams.get((topic, out_key), [])
            at = new_cursor.get((topic, out_key), 0)
            if at >= len(stream) or stream[at] != event_id:
                written = stream[at] if at < len(stream) else "nothing"
                mismatch = (
                    f"{rec.topic}[{rec.partition}]@{rec.offset} gives {topic}[{out_key}] #{at} = {event_id}, "
                    f"written: {written}"
                )
                break
            new_cursor[(topic, out_key)] = at + 1
        if mismatch is not None:
            deepest = max(deepest, (sum(idx), mismatch))
            continue
        new_idx = list(idx)
        new_idx[q] += 1
        reordered = frame[7] + (1 if frame[4] > 1 else 0)  # not the first in timestamp order
        stack.append([new_idx, new_cursor, new_state, None, 0, emitted, (rejected, rec), reordered])
    return Explained(key, False, f"no order of the inputs explains the outputs; deepest: {deepest[1]}")


def _success(key: str, stack: list[list[Any]]) -> Explained:
    emitted: list[Emitted] = []
    rejected: list[tuple[str, int, int, str]] = []
    for frame in stack:
        emitted += frame[5]
        if frame[6] is not None and frame[6][0] is not None:
            reason, rec = frame[6]
            rejected.append((rec.topic, rec.partition, rec.offset, reason))
    return Explained(key, True, "", emitted, rejected, stack[-1][7])


class DictState:
    """A key's stored state as a plain dict (what :class:`~topologies.kernel.KeyState` reads and writes),
    values stored as JSON like the processor's store, so that the search can keep one copy per step."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, bytes] | None = None) -> None:
        self.data: dict[str, bytes] = dict(data or {})

    def get(self, key: str, default: Any = None) -> Any:
        raw = self.data.get(key)
        return default if raw is None else orjson.loads(raw)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.data


def inbox_entry(key: str, envelope: Envelope) -> bytes:
    """One inbox record, canonical: key, kind and payload (a forwarded record decoded)."""
    return orjson.dumps([key, envelope.kind, envelope.payload], option=orjson.OPT_SORT_KEYS)


def _output(out: Output) -> Emitted:
    value = out.value
    if isinstance(value, Envelope):
        return out.topic, out.key, inbox_entry(out.key, value).decode()
    return out.topic, out.key, value.get("event_id") if value is not None else None


def telemetry_oracle(
    direct: dict[str, list[Record]],
    inbox: list[Record],
    site_maps: list[Record],
    actual: dict[str, dict[str, list[str | None]]],
    partitions: int,
    config: TelemetryConfig | None = None,
) -> tuple[Expected, list[Explained]]:
    """Explain the telemetry topology's outputs key by key (see :func:`explain`); the expected outputs
    are those of the order found.

    :param direct: catalog name -> records of the direct inputs (:data:`TELEMETRY_KINDS`), decoded.
    :param inbox: ``telemetry.inbox`` as written, values :class:`Envelope` (forwarded records decoded).
    :param site_maps: ``site.maps`` (the site-map feed's source).
    :param actual: output topic -> key -> event ids as written.
    :param partitions: the partitions of the direct inputs (a record elsewhere than its key's is forwarded).
    """
    step = TelemetryStep(config or TelemetryConfig(), decode=lambda record: record)
    expected = Expected()
    for rec in site_maps:  # the feed: each map to its site's key
        try:
            if rec.key is None:
                raise RecordError("site map without a key (the site id)")
            for owner, message in map_message(rec.value, rec.key):
                expected.inbox[inbox_entry(owner, Envelope(SITE_MAP, message))] += 1
        except RecordError as exc:
            expected.rejected.append((rec.topic, rec.partition, rec.offset, str(exc)))
    names = [*TELEMETRY_KINDS, TELEMETRY_INBOX]
    per_key: dict[str, list[list[Record]]] = defaultdict(lambda: [[] for _ in names])
    for rank, name in enumerate(names):
        for rec in inbox if name == TELEMETRY_INBOX else direct.get(name, []):
            per_key[rec.key or ""][rank].append(rec)
    kinds = {rank: TELEMETRY_KINDS.get(name) for rank, name in enumerate(names)}
    topic_rank: dict[str, int] = {}

    def apply(state: dict[str, bytes], rec: Record) -> tuple[Any, list[Emitted], str | None]:
        rank = topic_rank.get(rec.topic)
        if rank is None:
            rank = topic_rank[rec.topic] = next(r for r, n in enumerate(names) if rec.topic.endswith(n))
        kind = kinds[rank]
        if kind is None:  # the inbox
            kind, event = rec.value.kind, rec.value.payload
        else:
            event = rec.value
            if rec.key is not None and rec.partition != murmur2_partition(rec.key.encode(), partitions):
                return state, [_output(Output(TELEMETRY_INBOX, rec.key, Envelope(kind, event)))], None
        if rec.key is None:
            return state, [], f"{kind} record without a key"
        store = DictState(state)
        try:
            outs = run_step(step, store, rec.key, kind, event, rec.timestamp)
        except RecordError as exc:
            return state, [], str(exc)
        return store.data, [_output(o) for o in outs], None

    verdicts = []
    for key, queues in sorted(per_key.items()):
        streams: dict[tuple[str, str], list[str | None]] = {}
        for topic, by_key in actual.items():
            for out_key, ids in by_key.items():
                if out_key == key or out_key.endswith(f":{key}"):  # the robot's own records and its timer
                    streams[(topic, out_key)] = ids
        verdict = explain(key, queues, {}, apply, streams, unmatched=frozenset({TELEMETRY_INBOX}))
        verdicts.append(verdict)
        for topic, out_key, event_id in verdict.emitted:
            if topic == TELEMETRY_INBOX:
                expected.inbox[(event_id or "").encode()] += 1
            else:
                expected.outputs[topic][out_key].append(event_id)
        expected.rejected += verdict.rejected
    return expected, verdicts


def tasks_oracle(
    sources: dict[str, list[Record]],
    inbox: list[Record],
    config: TasksConfig | None = None,
) -> Expected:
    """Expected inbox (the feeds' messages and the step's own) and outputs (the step) of the tasks topology.

    :param sources: catalog name -> records of the sources (:data:`TASKS_KINDS`), decoded.
    :param inbox: ``tasks.inbox`` as written, values :class:`Envelope` (the step's input).
    """
    cfg = config or TasksConfig()
    expected = Expected()
    for name, kind in TASKS_KINDS.items():
        normalize = normalizer(kind, cfg)
        for rec in sources.get(name, []):
            try:
                produced = normalize(rec.value, rec.key, rec.timestamp)
            except RecordError as exc:
                expected.rejected.append((rec.topic, rec.partition, rec.offset, str(exc)))
                continue
            for inp in produced:
                owner = tasks_builder.inputs.inbox_key(inp)
                expected.inbox[inbox_entry(owner, Envelope(kind, inp))] += 1
    harness = StepHarness(TasksStep(cfg))
    try:
        for n, rec in enumerate(inbox, 1):
            if rec.value is None or rec.key is None:
                continue
            try:
                outs = harness.send(rec.value.kind, rec.key, rec.value.payload, rec.timestamp)
            except RecordError as exc:
                expected.rejected.append((rec.topic, rec.partition, rec.offset, str(exc)))
                continue
            for out in outs:
                if isinstance(out.value, Envelope):
                    expected.inbox[inbox_entry(out.key, out.value)] += 1
                else:
                    expected.emit(out.topic, out.key, out.value)
            if n % 1000 == 0:
                harness.checkpoint()
    finally:
        harness.close()
    return expected
