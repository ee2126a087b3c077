"""RMF task states through the tasks state machine: the sink's answers and RMF's pushes end our tasks."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pytest

from sinks.rmf import linked_state, refusal_state
from tests.unit.topologies.test_tasks_helpers import CFG, T0, assign, cancel, create
from topologies.tasks import EVENTS, external_spec, from_rmf, step


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


def rmf_own(booking: str, at: int, **data: Any) -> dict[str, Any]:
    """RMF's task_state of a task RMF dispatched itself (no fleetstream label)."""
    state = {"booking": {"id": booking, "requester": "ops"}, "category": "patrol", **data}
    [inp] = from_rmf({"type": "task_state_update", "data": state}, at)
    return inp


ADOPTING = replace(CFG, rmf_tenant_id="acme", rmf_site_id="s1", rmf_fleet_sites={"deliveryBot": "s2"})


def test_a_task_rmf_dispatched_itself_becomes_an_external_task() -> None:
    state, out = step(None, rmf_own("patrol.dispatch-9", T0, status="underway",
                                    assigned_to={"group": "tinyRobot", "name": "tiny1"}), ADOPTING)  # fmt: skip
    events = [o.value for o in out if o.topic == EVENTS]
    assert [(e["kind"], e["state"]) for e in events] == [
        ("TRANSITION", "CREATED"),
        ("TRANSITION", "EXECUTING"),
    ]
    assert {(e["tenant_id"], e["site_id"], e["external_id"]) for e in events} == {
        ("acme", "s1", "patrol.dispatch-9")
    }
    assert events[0]["spec"] == external_spec(rmf_own("patrol.dispatch-9", T0, status="underway",
                                                      assigned_to={"group": "tinyRobot", "name": "tiny1"}))  # fmt: skip
    assert events[0]["spec"]["labels"] == {"origin": "rmf", "rmf_booking_id": "patrol.dispatch-9"}
    assert events[1]["robot_id"] == "tiny1" and events[1]["reason"] == "RMF underway on tinyRobot/tiny1"
    state, out = step(state, rmf_own("patrol.dispatch-9", T0 + 5, status="completed"), ADOPTING)
    assert [o.value["state"] for o in out if o.topic == EVENTS] == ["SUCCEEDED"]
    assert [o for o in out if o.topic != EVENTS] == []  # no timers, no dependency messages


def test_an_external_task_takes_the_site_of_its_fleet_and_fails_for_good() -> None:
    state, out = step(None, rmf_own("d.dispatch-1", T0, dispatch={"status": "dispatched"},
                                    assigned_to={"group": "deliveryBot", "name": "d1"}), ADOPTING)  # fmt: skip
    assert (
        {o.value["site_id"] for o in out} == {"s2"} and state is not None and state["status"] == "DISPATCHED"
    )
    state, out = step(state, rmf_own("d.dispatch-1", T0 + 1, status="failed"), ADOPTING)
    assert [o.value["state"] for o in out if o.topic == EVENTS] == ["FAILED"]  # max_attempts 1: no retry


def test_without_an_rmf_tenant_such_states_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="topologies.tasks.machine"):
        state, out = step(None, rmf_own("p.dispatch-2", T0, status="underway"), CFG)
    assert (state, out) == (None, [])
    assert "RMF task p.dispatch-2 (not created by fleetstream) reports EXECUTING: ignored" in caplog.text


def test_a_labelled_state_of_a_task_we_do_not_know_is_logged_not_adopted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="topologies.tasks.machine"):
        assert step(None, rmf_push("gone", T0, status="underway"), ADOPTING) == (None, [])
    assert "RMF reports EXECUTING for task gone, which is not created (yet): ignored" in caplog.text
