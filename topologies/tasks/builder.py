"""The thin Quix adapter of the tasks topology: normalize every input into one inbox, then one stateful step.

Two stages in one application:

1. *Feeds* (stateless): each source topic's records are normalized (``inputs``) into plain input dicts
   and produced to the processor's internal inbox topic (``tasks.inbox``), keyed by task id (schedule
   id for schedule inputs). This is also the re-keying of the inputs that are not keyed by task id
   (decisions, telemetry, RMF task states, schedules' timers).
2. *Step* (stateful, the inbox only): ``machine.step`` for task inputs (state sub-key ``task``) and
   ``cron.step_schedule`` for schedule inputs (sub-key ``schedule``). Its outputs go to ``task.events``,
   ``timers`` and back to the inbox (dependency messages, cron-created tasks).

Why an inbox rather than a ``concat`` of the sources: the state store's changelog topic is named after
the stream's topics, so a concat would orphan every task's state the day an input is added; the inbox
keeps one stable name (``changelog__<group>--<prefix>tasks.inbox--default``), needs no repartition
topics, and no cross-topic time alignment. It costs one hop (one checkpoint) of latency.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models import SerializationContext, Serializer

from schemas.ids import now_ms
from topologies.tasks import cron, inputs, machine
from topologies.tasks.config import TasksConfig
from topologies.tasks.records import EVENTS, INBOX, TIMERS, Output

__all__ = [
    "OUTPUT_TOPICS",
    "STATE_SCHEDULE",
    "STATE_TASK",
    "OutputSerializer",
    "StateStore",
    "TasksStep",
    "build_inbox_feeds",
    "build_tasks",
    "output_key",
]

logger = logging.getLogger(__name__)

#: State sub-keys inside an inbox key. Renaming one orphans the stored state.
STATE_TASK = "task"
STATE_SCHEDULE = "schedule"
#: Catalog names of the outputs of the step.
OUTPUT_TOPICS = (EVENTS, TIMERS, INBOX)
_SCHEDULE_INPUTS = ("schedule", "fire")


class OutputSerializer(Serializer):
    """Serializes an :class:`Output`'s value with ``inner``; a None value becomes a tombstone."""

    def __init__(self, inner: Callable[[Any, SerializationContext], str | bytes]) -> None:
        super().__init__()
        self._inner = inner

    def __call__(self, value: Any, ctx: SerializationContext) -> str | bytes:
        payload = value.value if isinstance(value, Output) else value
        # None makes the producer write a tombstone (the Serializer type does not say so).
        return None if payload is None else self._inner(payload, ctx)  # type: ignore[return-value]


class StateStore(Protocol):
    """What the step needs of a Quix ``State``: get, set and delete by sub-key."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...


def output_key(output: Output) -> str:
    return output.key


class TasksStep:
    """One inbox input applied to its key's state: load, step, store. Stateless itself."""

    def __init__(self, config: TasksConfig, clock: Callable[[], int] = now_ms) -> None:
        self.config = config
        self.clock = clock

    def __call__(
        self, inp: dict[str, Any], _key: Any, _ts: int, _headers: Any, state: StateStore
    ) -> list[Output]:
        if inp["type"] in _SCHEDULE_INPUTS:
            sub = STATE_SCHEDULE
            old = state.get(sub)
            new, out = cron.step_schedule(old, inp, self.config, self.clock())
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
    inbox_sdf: StreamingDataFrame, *, config: TasksConfig, clock: Callable[[], int] = now_ms
) -> dict[str, StreamingDataFrame]:
    """Wire the stateful step on the inbox; returns ``{catalog topic: sdf of Output}`` for OUTPUT_TOPICS.

    Produce each with ``key=output_key`` to a topic whose value serializer is an :class:`OutputSerializer`
    (it unwraps the Output and writes tombstones for cancelled timers).
    """
    routed = inbox_sdf.apply(TasksStep(config, clock), stateful=True, metadata=True, expand=True)
    return {name: routed.filter(_is_for(name)) for name in OUTPUT_TOPICS}


def _is_for(topic: str) -> Callable[[Output], bool]:
    return lambda out: out.topic == topic


def _feed(
    sdf: StreamingDataFrame, normalize: Callable[[Any, Any, int], list[dict[str, Any]]]
) -> StreamingDataFrame:
    return sdf.apply(lambda value, key, ts, _headers: normalize(value, key, ts), metadata=True, expand=True)


def build_inbox_feeds(
    *,
    commands: StreamingDataFrame,
    decisions: StreamingDataFrame | None = None,
    telemetry: StreamingDataFrame | None = None,
    rmf_task_states: StreamingDataFrame | None = None,
    timers_due: StreamingDataFrame | None = None,
    schedules: StreamingDataFrame | None = None,
) -> list[StreamingDataFrame]:
    """Normalize each source into inbox inputs; produce each returned sdf with ``key=inputs.inbox_key``.

    :param commands: ``task.commands`` (TaskCommand dicts, key task_id).
    :param decisions: ``scheduler.decisions`` (Decision dicts); only ASSIGN/UNASSIGN of a task pass.
    :param telemetry: ``robot.telemetry`` (RobotTelemetry dicts); only records with a task phase pass.
    :param rmf_task_states: ``rmf.task_states`` (RMF JSON).
    :param timers_due: ``timers.due.tasks`` (Timer dicts).
    :param schedules: ``task.schedules`` (TaskSchedule dicts, tombstones delete).
    """
    feeds = [_feed(commands, lambda v, k, _ts: inputs.from_command(v, k))]
    optional: Iterable[tuple[StreamingDataFrame | None, Callable[[Any, Any, int], list[dict[str, Any]]]]] = (
        (decisions, lambda v, _k, _ts: inputs.from_decision(v)),
        (telemetry, lambda v, _k, _ts: inputs.from_telemetry(v)),
        (rmf_task_states, lambda v, _k, ts: inputs.from_rmf(v, ts)),
        (timers_due, lambda v, _k, _ts: inputs.from_due_timer(v) if v is not None else []),
        (schedules, inputs.from_schedule),
    )
    feeds.extend(_feed(sdf, fn) for sdf, fn in optional if sdf is not None)
    return feeds
