"""The Quix adapter of the tasks topology: state sub-keys, writes only on change, tombstones, inbox keys."""

from __future__ import annotations

from typing import Any

import orjson

from tests.unit.topologies.test_tasks_helpers import CFG, T0, assign, create, progress, schedule
from topologies.tasks import (
    EVENTS,
    INBOX,
    STATE_SCHEDULE,
    STATE_TASK,
    TIMERS,
    Output,
    OutputSerializer,
    TasksStep,
    from_due_timer,
    inbox_key,
    output_key,
)


class MemoryState:
    """The get/set/delete surface of a Quix State, in memory, counting writes."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.data[key] = orjson.loads(orjson.dumps(value))  # stored values are copies, as in RocksDB

    def delete(self, key: str) -> None:
        self.writes += 1
        self.data.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.data


def test_task_inputs_live_under_the_task_sub_key_and_unchanged_state_is_not_written() -> None:
    step = TasksStep(CFG, clock=lambda: T0)
    state = MemoryState()
    out = step(create("x"), "x", T0, None, state)
    assert [o.topic for o in out] == [EVENTS, EVENTS] and state.data[STATE_TASK]["status"] == "QUEUED"
    step(assign("x", "r1", T0 + 1), "x", T0, None, state)
    step(progress("x", "STARTED", "r1", T0 + 2), "x", T0, None, state)
    writes = state.writes
    assert step(progress("x", "IN_PROGRESS", "r1", T0 + 3), "x", T0, None, state) == []
    assert state.writes == writes  # a repeated fact costs a read, not a write
    assert STATE_SCHEDULE not in state.data


def test_schedule_inputs_live_under_the_schedule_sub_key_and_a_delete_removes_them() -> None:
    step = TasksStep(CFG, clock=lambda: T0)
    state = MemoryState()
    out = step(schedule("s1", "*/5 * * * *", T0), "s1", T0, None, state)
    (timer,) = [o for o in out if o.topic == TIMERS]
    assert state.data[STATE_SCHEDULE]["timer_id"] == timer.key
    fire = from_due_timer(timer.value)[0]  # type: ignore[arg-type]
    step.clock = lambda: fire["fire_at"]
    out = step(fire, "s1", T0, None, state)
    created = [o for o in out if o.topic == INBOX]
    assert len(created) == 1 and inbox_key(created[0].value) == created[0].key  # type: ignore[arg-type]
    step(
        {"type": "schedule", "schedule_id": "s1", "record": None, "occurred_at": T0, "event_id": None},
        "s1",
        T0,
        None,
        state,
    )
    assert STATE_SCHEDULE not in state.data


def test_output_serializer_unwraps_and_writes_tombstones() -> None:
    seen: list[Any] = []

    def inner(value: Any, _ctx: Any) -> bytes:
        seen.append(value)
        return b"x"

    serializer = OutputSerializer(inner)
    assert serializer(Output(TIMERS, "t1", None), None) is None  # type: ignore[arg-type]
    assert serializer(Output(EVENTS, "k", {"a": 1}), None) == b"x"  # type: ignore[arg-type]
    assert serializer({"b": 2}, None) == b"x"  # type: ignore[arg-type]  # plain values (the feeds) pass through
    assert seen == [{"a": 1}, {"b": 2}]
    assert output_key(Output(EVENTS, "k", None)) == "k"
