"""RMF task states through the tasks state machine: the sink's answers and RMF's pushes end our tasks."""

from __future__ import annotations

from typing import Any

from sinks.rmf import linked_state, refusal_state
from tests.unit.topologies.test_tasks_helpers import CFG, T0, assign, cancel, create
from topologies.tasks import EVENTS, from_rmf, step


def run(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The TRANSITION events of one task after ``inputs``, in order."""
    state = None
    events: list[dict[str, Any]] = []
    for inp in inputs:
        state, out = step(state, inp, CFG)
        events += [o.value for o in out if o.topic == EVENTS and o.value and o.value["kind"] == "TRANSITION"]
    return events


def rmf_push(task_id: str, at: int, **data: Any) -> dict[str, Any]:
    """RMF's own task_state of our task (its id, our label), as the dispatcher pushes it."""
    state = {"booking": {"id": "delivery.dispatch-7"}, "category": "delivery", **data}
    [inp] = from_rmf(linked_state(state, task_id), at)
    return inp


def test_accepted_then_completed_ends_succeeded_with_rmf_id() -> None:
    events = run([
        create("a", max_attempts=1),
        assign("a", at=T0 + 1),
        rmf_push("a", T0 + 2, dispatch={"status": "queued"}),
        rmf_push("a", T0 + 3, status="underway", assigned_to={"group": "tinyRobot", "name": "tinyRobot1"}),
        rmf_push("a", T0 + 4, status="completed"),
    ])  # fmt: skip
    states = [e["state"] for e in events]
    assert states == ["CREATED", "QUEUED", "ASSIGNED", "DISPATCHED", "EXECUTING", "SUCCEEDED"]
    assert events[-1]["external_id"] == "delivery.dispatch-7"
    assert events[4]["reason"] == "RMF underway on tinyRobot/tinyRobot1"


def test_refusal_fails_the_task_with_rmf_errors_in_the_reason() -> None:
    errors: list[dict[str, Any]] = [
        {"code": 3, "category": "Invalid task description", "detail": "no place [nowhere]"},
        {"category": "Busy"},
    ]
    refusal = refusal_state("b", "delivery", errors, attempt=1, now_ms=T0 + 2)
    events = run([create("b", max_attempts=1), assign("b", at=T0 + 1), *from_rmf(refusal, T0 + 2)])
    assert events[-1]["state"] == "FAILED"
    assert events[-1]["reason"] == (
        "attempt 1 of 1 failed: RMF failed_to_assign: Invalid task description: no place [nowhere] (3); Busy"
    )


def test_rmf_cancel_after_ours_changes_nothing() -> None:
    events = run([
        create("c"),
        assign("c", at=T0 + 1),
        rmf_push("c", T0 + 2, status="underway"),
        cancel("c", at=T0 + 3, reason="not needed"),
        rmf_push("c", T0 + 4, status="canceled"),
    ])  # fmt: skip
    assert [e["state"] for e in events][-2:] == ["EXECUTING", "CANCELLED"]
    assert events[-1]["reason"] == "not needed"  # ours, not RMF's echo
