"""The tasks topology on the kernel, over Quix's memory and RocksDB stores: state sub-keys, writes only on
change, inbox keys; and what the feeds refuse before anything reaches the inbox (time rules, size limits)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from schemas import limits
from schemas.errors import RejectedRecord
from tests.unit.topologies.test_tasks_helpers import (
    CFG,
    T0,
    assign,
    command,
    create,
    progress,
    rmf_state,
    schedule,
    spec,
)
from topologies.kernel import Envelope
from topologies.kernel.testing import StepHarness
from topologies.tasks import (
    COMMAND,
    EVENTS,
    INBOX,
    RMF,
    STATE_SCHEDULE,
    STATE_TASK,
    TIMERS,
    TasksConfig,
    TasksStep,
    from_due_timer,
    inbox_key,
    normalizer,
)

Harness = Callable[[Any], StepHarness]


def test_task_inputs_live_under_the_task_sub_key_and_unchanged_state_is_not_written(harness: Harness) -> None:
    h = harness(TasksStep(CFG))
    out = h.send("command", "x", create("x"), T0)
    assert [o.topic for o in out] == [EVENTS, EVENTS] and h.state("x").get(STATE_TASK)["status"] == "QUEUED"
    h.send("decision", "x", assign("x", "r1", T0 + 1), T0 + 1)
    h.send("telemetry", "x", progress("x", "STARTED", "r1", T0 + 2), T0 + 2)
    h.checkpoint()
    before = h.stored("x", STATE_TASK)
    assert h.send("telemetry", "x", progress("x", "IN_PROGRESS", "r1", T0 + 3), T0 + 3) == []
    h.checkpoint()
    assert h.stored("x", STATE_TASK) == before  # a repeated fact changes nothing
    assert h.stored("x", STATE_SCHEDULE) is None


def test_schedule_inputs_live_under_the_schedule_sub_key_and_a_delete_removes_them(harness: Harness) -> None:
    h = harness(TasksStep(CFG))
    out = h.send("schedule", "s1", schedule("s1", "*/5 * * * *", T0), T0)
    (timer,) = [o for o in out if o.topic == TIMERS]
    assert h.state("s1").get(STATE_SCHEDULE)["timer_id"] == timer.key
    fire = from_due_timer(timer.value)[0]
    out = h.send("timer", "s1", fire, fire["fire_at"])  # delivered on time: a task is created
    created = [o for o in out if o.topic == INBOX]
    assert len(created) == 1 and isinstance(created[0].value, Envelope)
    assert inbox_key(created[0].value.payload) == created[0].key
    tombstone = {"type": "schedule", "schedule_id": "s1", "record": None, "occurred_at": T0, "event_id": None}
    h.send("schedule", "s1", tombstone, T0 + 1)
    h.checkpoint()
    assert h.stored("s1", STATE_SCHEDULE) is None


def test_a_fire_delivered_late_is_a_misfire_by_its_kafka_timestamp(harness: Harness) -> None:
    h = harness(TasksStep(CFG))
    out = h.send("schedule", "s1", schedule("s1", "*/5 * * * *", T0, misfire="SKIP"), T0)
    (timer,) = [o for o in out if o.topic == TIMERS]
    fire = from_due_timer(timer.value)[0]
    late = fire["fire_at"] + CFG.misfire_grace_ms + 1
    out = h.send("timer", "s1", fire, late)
    assert not [o for o in out if o.topic == INBOX] and h.state("s1").get(STATE_SCHEDULE)["skipped"] == 1


def test_the_command_feed_refuses_a_command_from_the_future_as_telemetry_does() -> None:
    feed = normalizer(COMMAND, TasksConfig(future_skew_ms=5_000))
    record = command("x", "CREATE", T0 + 5_000, spec=spec())
    assert feed(record, "x", T0)[0]["type"] == "create"  # at the limit
    with pytest.raises(RejectedRecord, match=r"occurred_at .* is 86400000 ms in the future"):
        feed(command("x", "CREATE", T0 + 86_400_000, spec=spec()), "x", T0)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": "r" * (limits.TASK_TEXT_MAX + 1)}, "reason"),
        ({"idempotency_key": "k" * (limits.TASK_ID_MAX + 1)}, "idempotency_key"),
        ({"spec": spec(payload_json=orjson.dumps({"x": "y" * 40_000}).decode())}, "spec.payload_json"),
        ({"spec": spec(labels={f"k{i}": "v" for i in range(limits.TASK_LABELS_MAX + 1)})}, "spec.labels"),
        ({"spec": spec(labels={"k": "v" * (limits.TASK_LABEL_VALUE_MAX + 1)})}, "spec.labels[k]"),
        ({"spec": spec(depends_on=[f"t{i}" for i in range(limits.TASK_LIST_MAX + 1)])}, "spec.depends_on"),
        ({"spec": spec(category="c" * (limits.TASK_TEXT_MAX + 1))}, "spec.category"),
        ({"spec": spec(pickup_node="n" * (limits.TASK_ID_MAX + 1))}, "spec.pickup_node"),
    ],
)
def test_the_command_feed_refuses_fields_past_their_limit_naming_them(
    change: dict[str, Any], field: str
) -> None:
    record = {**command("x", "CREATE", T0, spec=spec()), **change}
    with pytest.raises(RejectedRecord) as info:
        normalizer(COMMAND, CFG)(record, "x", T0)
    assert info.value.reason.startswith(field)


def test_an_rmf_state_without_our_label_is_marked_as_rmfs_own() -> None:
    ours = normalizer(RMF, CFG)(rmf_state("a", status="underway"), "k", T0)
    theirs = normalizer(RMF, CFG)(
        {"type": "task_state_update", "data": {"booking": {"id": "patrol.dispatch-3", "requester": "ops"},
                                               "category": "patrol", "status": "underway",
                                               "assigned_to": {"group": "tinyRobot", "name": "tiny1"}}},
        "k", T0,
    )  # fmt: skip
    assert (ours[0]["task_id"], ours[0]["origin"]) == ("a", "fleetstream")
    assert {k: theirs[0][k] for k in ("task_id", "origin", "category", "requester", "fleet", "robot")} == {
        "task_id": "patrol.dispatch-3", "origin": "rmf", "category": "patrol", "requester": "ops",
        "fleet": "tinyRobot", "robot": "tiny1",
    }  # fmt: skip
