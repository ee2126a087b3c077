"""The oracle: the pure step functions of the topologies run over the inputs the drill found in Kafka.

A topology is a deterministic function of its input log (DESIGN.md section 8), so what the processors
wrote under faults must equal what the pure steps compute from the same inputs: the same outputs, with
the same event ids, in the same order per key. Where the inputs of one key come from several topics,
the oracle merges them as Quix Streams does (per partition, the record with the smallest timestamp of
the heads of the partitions of one partition group first).

- telemetry (per robot): ``robot.telemetry``, ``robot.registry``, ``timers.due.telemetry`` ->
  ``robot.status``, ``alerts``, ``robot.telemetry.1m``, ``timers`` (and what else the step emits).
  Validation runs as in the processor, with the bounds of the site maps and a clock that never makes a
  record one from the future (the drill's records are stamped when sent).
- tasks: its sources normalized into ``tasks.inbox`` (the feeds; a multiset, since the feeds of several
  sources write one partition concurrently), then per inbox key the step over the inbox in partition
  order -> ``task.events``, ``timers``, ``tasks.inbox``. A cron fire is judged late against the Kafka
  timestamp of its inbox record (the processor uses its wall clock when it handles it: the two differ
  only if the tasks processor was behind by more than the misfire grace, 60 s).

The configurations are the processors' defaults (the drill sets none of those variables).
Dispatch and traffic have no oracle here: their decisions depend on when records arrive relative to
each other across topics and on wall-clock deadlines; the verifier checks their outputs for
duplicates and their sinks instead.
"""

from __future__ import annotations

import heapq
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipelines.drill.reader import Record
from schemas.errors import RejectedRecord
from topologies.tasks import TasksConfig, inputs, machine, step_schedule
from topologies.telemetry import (
    OUTPUT_KEY_FIELDS,
    TelemetryConfig,
    on_registration,
    on_telemetry,
    on_timer,
    validate_telemetry,
)
from topologies.telemetry.sitemaps import SiteBounds, bounds_of

__all__ = ["Expected", "Explained", "explain", "merge_by_timestamp", "tasks_oracle", "telemetry_oracle"]

logger = logging.getLogger(__name__)

NEVER_FUTURE = 2**62  # the oracle's wall clock: no drill record is from the future


@dataclass
class Expected:
    """What a topology must have written: topic -> key -> [event id or None (a tombstone)] in order, the
    records it must have dead-lettered (source topic, partition, offset, reason), and for the tasks
    feeds the multiset of inbox inputs."""

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


def _bounds(site_maps: Iterable[Record]) -> dict[tuple[str, str], SiteBounds | None]:
    out: dict[tuple[str, str], SiteBounds | None] = {}
    for rec in site_maps:
        if rec.value is not None:
            out[(rec.value["tenant_id"], rec.value["site_id"])] = bounds_of(rec.value)
    return out


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
) -> Explained:
    """Search an order of one key's inputs (each input topic in offset order) for which ``apply`` emits
    exactly ``actual`` (per output topic and key, in order).

    The processor reads its input topics time-aligned: it takes the input with the earliest timestamp,
    unless a later one was already there and the earlier one still on its way (a timer fired by the
    timer service in the same millisecond as a robot's sample; after a restart or a rebalance, a small
    timers partition fetched before a large telemetry backlog). So the search tries timestamp order
    first and, where inputs of different topics are less than ``window_ms`` apart, the other order, and
    backtracks when the outputs disagree. Nothing is found for an output that no order explains: a
    lost, duplicated or altered record.
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


def telemetry_oracle(
    telemetry: list[Record],
    registry: list[Record],
    timers_due: list[Record],
    site_maps: list[Record],
    actual: dict[str, dict[str, list[str | None]]],
    config: TelemetryConfig | None = None,
) -> tuple[Expected, list[Explained]]:
    """Explain the telemetry topology's outputs robot by robot (see :func:`explain`); the expected
    outputs are those of the order found."""
    cfg = config or TelemetryConfig()
    bounds = _bounds(site_maps)
    per_key: dict[str, list[list[Record]]] = defaultdict(lambda: [[], [], []])
    for rank, records in enumerate((telemetry, registry, timers_due)):
        for rec in records:
            per_key[rec.key or ""][rank].append(rec)

    def apply(state: tuple[Any, Any], rec: Record) -> tuple[Any, list[Emitted], str | None]:
        registration, runtime = state
        value = rec.value
        if rec.topic.endswith("robot.registry"):
            return (_stored(on_registration(registration, value)), runtime), [], None
        if value is None:
            return state, [], None
        if rec.topic.endswith("robot.telemetry"):
            try:
                if value["robot_id"] != rec.key:
                    raise RejectedRecord(
                        f"record key {rec.key!r} does not match robot_id {value['robot_id']!r}"
                    )
                validate_telemetry(
                    value, registration, bounds.get((value["tenant_id"], value["site_id"])), cfg, NEVER_FUTURE
                )
            except RejectedRecord as exc:
                return state, [], str(exc)
            new, outs = on_telemetry(runtime, value, cfg)
        else:
            new, outs = on_timer(runtime, value, cfg)
        emitted = [(o.topic, str(o.value[OUTPUT_KEY_FIELDS[o.topic]]), o.value.get("event_id")) for o in outs]
        return (registration, _stored(new)), emitted, None

    expected = Expected()
    verdicts = []
    for key, queues in sorted(per_key.items()):
        streams: dict[tuple[str, str], list[str | None]] = {}
        for topic, by_key in actual.items():
            for out_key, ids in by_key.items():
                if out_key == key or out_key.endswith(f":{key}"):  # the robot's own records and its timer
                    streams[(topic, out_key)] = ids
        verdict = explain(key, queues, (None, None), apply, streams)
        verdicts.append(verdict)
        for topic, out_key, event_id in verdict.emitted:
            expected.outputs[topic][out_key].append(event_id)
        expected.rejected += verdict.rejected
    return expected, verdicts


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _stored(state: Any) -> Any:
    """A state as the processor gets it back from its store (a JSON round trip)."""
    return None if state is None else orjson.loads(orjson.dumps(state))


def tasks_oracle(
    sources: dict[str, list[Record]],
    inbox: list[Record],
    config: TasksConfig | None = None,
) -> Expected:
    """Expected inbox inputs (feeds) and outputs (step) of the tasks topology.

    :param sources: catalog name -> records of ``task.commands``, ``scheduler.decisions``,
        ``robot.telemetry``, ``timers.due.tasks``, ``task.schedules``.
    :param inbox: the records of ``tasks.inbox`` as written (the step's input).
    """
    cfg = config or TasksConfig()
    expected = Expected()
    feeds = {
        "task.commands": lambda r: inputs.from_command(r.value, r.key),
        "scheduler.decisions": lambda r: inputs.from_decision(r.value),
        "robot.telemetry": lambda r: inputs.from_telemetry(r.value),
        "timers.due.tasks": lambda r: inputs.from_due_timer(r.value) if r.value is not None else [],
        "task.schedules": lambda r: inputs.from_schedule(r.value, r.key, r.timestamp),
    }
    for name, normalize in feeds.items():
        for rec in sources.get(name, []):
            if rec.value is None and name != "task.schedules":
                continue
            try:
                produced = normalize(rec)
            except RejectedRecord as exc:
                expected.rejected.append((rec.topic, rec.partition, rec.offset, str(exc)))
                continue
            for inp in produced:
                expected.inbox[_canonical(inp)] += 1
    states: dict[tuple[str, str], Any] = {}
    for rec in inbox:
        inp = rec.value
        if inp is None:
            continue
        key = rec.key or ""
        if inp["type"] in ("schedule", "fire"):
            sub = (key, "schedule")
            new, outs = step_schedule(states.get(sub), inp, cfg, rec.timestamp)
        else:
            sub = (key, "task")
            new, outs = machine.step(states.get(sub), inp, cfg)
        states[sub] = _stored(new)
        for out in outs:
            if out.topic == "tasks.inbox":
                expected.inbox[_canonical(out.value)] += 1
            else:
                expected.emit(out.topic, out.key, out.value)
    return expected
