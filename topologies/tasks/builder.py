"""The tasks topology on the kernel: every input normalized into the inbox, then one stateful step.

1. *Feeds* (stateless, one per source topic, each tagged with its kind): a record is decoded, checked and
   normalized (``inputs``) into plain input dicts and sent to the processor's inbox (``tasks.inbox``),
   keyed by task id (schedule id for schedule inputs). This is also the re-keying of the inputs that are
   not keyed by task id (decisions, telemetry, RMF task states, schedules' timers). A record that can
   never be applied is dead-lettered here, from its own topic.
2. *Step* (stateful, on the inbox only): :class:`TasksStep` applies ``machine.step`` to task inputs (state
   sub-key ``task``) and ``cron.step_schedule`` to schedule inputs (sub-key ``schedule``). Its outputs go
   to ``task.events``, ``timers`` and back to the inbox (dependency messages, cron-created tasks).

Why an inbox rather than a ``concat`` of the sources: the state store's changelog topic is named after
the stream's topics, so a concat would orphan every task's state the day an input is added; the inbox
keeps one stable name (``changelog__<group>--<prefix>tasks.inbox--default``) and needs no cross-topic
time alignment. It costs one hop (one checkpoint) of latency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from quixstreams.dataframe import StreamingDataFrame

from schemas.errors import RejectedRecord
from schemas.limits import TASK_COMMAND_MAX_BYTES
from topologies.kernel import Decode, Forward, KeyState, Output, annotate, build_step, feeds, merge
from topologies.tasks import cron, inputs, machine
from topologies.tasks.config import TasksConfig
from topologies.tasks.core import TaskState
from topologies.tasks.cron import ScheduleState
from topologies.tasks.records import EVENTS, INBOX, TIMERS, InboxInput

__all__ = [
    "COMMAND",
    "DECISION",
    "KINDS",
    "OUTPUT_TOPICS",
    "RMF",
    "SCHEDULE",
    "STATE_SCHEDULE",
    "STATE_TASK",
    "TELEMETRY",
    "TIMER",
    "TasksStep",
    "build_tasks",
    "normalizer",
]

logger = logging.getLogger(__name__)

#: State sub-keys inside an inbox key. Renaming one orphans the stored state.
STATE_TASK = "task"
STATE_SCHEDULE = "schedule"
#: Catalog names of the outputs of the step (and of the feeds: the inbox).
OUTPUT_TOPICS = (EVENTS, TIMERS, INBOX)
#: Kinds of the sources (each fed from its own topic).
COMMAND, DECISION, TELEMETRY, RMF, TIMER, SCHEDULE = (
    "command", "decision", "telemetry", "rmf_task_state", "timer", "schedule",
)  # fmt: skip
KINDS = (COMMAND, DECISION, TELEMETRY, RMF, TIMER, SCHEDULE)

#: ``(decoded record or None, record key, Kafka timestamp) -> normalized inputs``.
Normalize = Callable[[Any, Any, int], Sequence[InboxInput]]


def normalizer(kind: str, config: TasksConfig) -> Normalize:
    """How a record of source ``kind`` becomes inbox inputs (RejectedRecord for one that cannot)."""

    def command(record: Any, key: Any, now_ms: int) -> Sequence[InboxInput]:
        if record is None:
            raise RejectedRecord("a task command cannot be a tombstone")
        inputs.check_time(record, now_ms, config.future_skew_ms)
        return inputs.from_command(record, key)

    def skip_tombstones(fn: Callable[[Any], Sequence[InboxInput]]) -> Normalize:
        return lambda record, _key, _ts: fn(record) if record is not None else []

    table: dict[str, Normalize] = {
        COMMAND: command,
        DECISION: skip_tombstones(inputs.from_decision),
        TELEMETRY: skip_tombstones(inputs.from_telemetry),
        RMF: lambda record, _key, ts: inputs.from_rmf(record, ts) if record is not None else [],
        TIMER: skip_tombstones(inputs.from_due_timer),
        SCHEDULE: inputs.from_schedule,
    }
    return table[kind]


def _limited(decode: Decode, most: int, what: str) -> Decode:
    def checked(data: bytes) -> Any:
        if len(data) > most:
            raise RejectedRecord(f"{what} record is {len(data)} bytes; at most {most}")
        return decode(data)

    return checked


class TasksStep:
    """The kernel step: one normalized input applied to its key's task or schedule. Stateless itself."""

    def __init__(self, config: TasksConfig) -> None:
        self.config = config

    def __call__(self, state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        inp = cast("InboxInput", event)  # an input of ``inputs``, decoded from the inbox's JSON
        new: ScheduleState | TaskState | None
        if inp["type"] == "schedule" or inp["type"] == "fire":
            sub = STATE_SCHEDULE
            old = state.get(sub)
            new, out = cron.step_schedule(old, inp, self.config, now_ms)
        else:
            sub = STATE_TASK
            old = state.get(sub)
            new, out = machine.step(old, inp, self.config)
        if new is None:
            if old is not None:
                state.delete(sub)
        elif new is not old:
            state.set(sub, new)
        for output in out:
            if output.topic == EVENTS and output.value and output.value["kind"] == "REJECTED":
                logger.info(
                    "rejected %s: %s",
                    inp["type"],
                    output.value["reason"],
                    extra={"task_id": output.key, "tenant_id": output.value["tenant_id"]},
                )
        return out


def build_tasks(
    *,
    sources: Mapping[str, StreamingDataFrame],
    inbox: StreamingDataFrame,
    decoders: Mapping[str, Decode],
    config: TasksConfig,
) -> list[StreamingDataFrame]:
    """Wire the tasks topology; returns the dataframes of :class:`~topologies.kernel.Output` to produce
    (to :data:`OUTPUT_TOPICS`): the feeds' and the step's.

    :param sources: kind (:data:`KINDS`) -> the source topic's dataframe (values: bytes). ``command`` is
        required; the others are optional (e.g. without ``telemetry`` no robot reports task progress).
    :param inbox: the processor's inbox (``tasks.inbox``, values: envelopes).
    :param decoders: kind -> decoder of the source's bytes.
    """
    if COMMAND not in sources:
        raise ValueError("the tasks topology needs its commands")

    def forward(kind: str) -> Forward:
        decode = decoders[kind]
        if kind == COMMAND:
            decode = _limited(decode, TASK_COMMAND_MAX_BYTES, "task command")
        return _forward(decode, normalizer(kind, config))

    # One stream of all feeds: Quix then reads the sources aligned by timestamp, partition by partition, so
    # the inputs of one task from its co-partitioned sources (commands, decisions, RMF states, timers) reach
    # the inbox in the order of their timestamps, and a replay of those topics gives the same inbox.
    merged = merge(feeds(sources, inbox=INBOX, forward=forward))
    return [merged, build_step(TasksStep(config), inbox=inbox)]


def _forward(decode: Decode, normalize: Normalize) -> Forward:
    def forward(value: Any, key: Any, timestamp: int) -> list[tuple[str, Any]]:
        record = decode(value) if value is not None else None
        annotate(record)  # log lines of this record name its tenant and task
        return [(inputs.inbox_key(inp), inp) for inp in normalize(record, key, timestamp)]

    return forward
