"""The task state machine, table-driven: every legal transition, every illegal command, ignored facts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from schemas.errors import RejectedRecord
from tests.unit.topologies.test_tasks_helpers import (
    CFG,
    T0,
    Harness,
    assign,
    cancel,
    command,
    create,
    progress,
    rmf,
    rmf_state,
    spec,
    unassign,
)
from topologies.tasks import EVENTS, TIMERS, TasksConfig, det_uuid7, from_command, from_rmf, step

AT = T0 + 500  # when the input under test arrives (before any timeout or retry backoff ends)


def reach(state: str) -> Harness:
    """A harness whose task ``x`` is in ``state`` (reached through legal inputs)."""
    h = Harness()
    if state == "WAITING":
        h.send(create("p"), create("x", T0 + 1, depends_on=["p"]))
        assert h.state("x") == "WAITING"
        return h
    h.send(create("x", max_attempts=1 if state == "FAILED" else 3))
    if state in ("QUEUED",):
        return h
    if state == "CANCELLED":
        h.send(cancel("x", T0 + 1))
        return h
    h.send(assign("x", "r1", T0 + 1))
    if state == "DISPATCHED":
        h.send(rmf("x", dispatch="dispatched", at=T0 + 2))
    elif state == "EXECUTING":
        h.send(progress("x", "STARTED", "r1", T0 + 3))
    elif state in ("RETRYING", "FAILED"):
        h.send(progress("x", "FAILED", "r1", T0 + 3))
    elif state == "SUCCEEDED":
        h.send(progress("x", "COMPLETED", "r1", T0 + 3))
    elif state == "TIMED_OUT":
        h.advance(T0 + 1 + CFG.default_timeout_ms)  # type: ignore[operator]
    assert h.state("x") == state, h.kinds("x")
    return h


Input = Callable[[], dict[str, Any]]
LEGAL: list[tuple[str, str, Input, str]] = [
    ("QUEUED", "assign", lambda: assign("x", "r1", AT), "ASSIGNED"),
    ("QUEUED", "cancel", lambda: cancel("x", AT), "CANCELLED"),
    ("WAITING", "cancel", lambda: cancel("x", AT), "CANCELLED"),
    ("ASSIGNED", "rmf dispatched", lambda: rmf("x", dispatch="dispatched", at=AT), "DISPATCHED"),
    ("ASSIGNED", "rmf queued", lambda: rmf("x", status="queued", at=AT), "DISPATCHED"),
    ("ASSIGNED", "robot STARTED", lambda: progress("x", "STARTED", "r1", AT), "EXECUTING"),
    ("ASSIGNED", "robot IN_PROGRESS", lambda: progress("x", "IN_PROGRESS", "r1", AT), "EXECUTING"),
    ("ASSIGNED", "robot COMPLETED", lambda: progress("x", "COMPLETED", "r1", AT), "SUCCEEDED"),
    ("ASSIGNED", "robot FAILED", lambda: progress("x", "FAILED", "r1", AT), "RETRYING"),
    ("ASSIGNED", "unassign", lambda: unassign("x", "r1", AT), "QUEUED"),
    ("ASSIGNED", "cancel", lambda: cancel("x", AT), "CANCELLED"),
    ("ASSIGNED", "rmf canceled", lambda: rmf("x", status="canceled", at=AT), "CANCELLED"),
    ("ASSIGNED", "rmf failed_to_assign", lambda: rmf("x", dispatch="failed_to_assign", at=AT), "RETRYING"),
    ("DISPATCHED", "rmf underway", lambda: rmf("x", status="underway", at=AT), "EXECUTING"),
    ("DISPATCHED", "rmf completed", lambda: rmf("x", status="completed", at=AT), "SUCCEEDED"),
    ("DISPATCHED", "unassign", lambda: unassign("x", "r1", AT), "QUEUED"),
    ("DISPATCHED", "cancel", lambda: cancel("x", AT), "CANCELLED"),
    ("EXECUTING", "robot COMPLETED", lambda: progress("x", "COMPLETED", "r1", AT), "SUCCEEDED"),
    ("EXECUTING", "rmf failed", lambda: rmf("x", status="failed", at=AT), "RETRYING"),
    ("EXECUTING", "unassign", lambda: unassign("x", "r1", AT), "QUEUED"),
    ("EXECUTING", "cancel", lambda: cancel("x", AT), "CANCELLED"),
    ("EXECUTING", "rmf killed", lambda: rmf("x", status="killed", at=AT), "CANCELLED"),
    ("RETRYING", "cancel", lambda: cancel("x", AT), "CANCELLED"),
]


@pytest.mark.parametrize(
    ("start", "what", "make", "expected"), LEGAL, ids=[f"{s}-{w}" for s, w, _, _ in LEGAL]
)
def test_legal_transition(start: str, what: str, make: Input, expected: str) -> None:
    h = reach(start)
    before = list(h.events["x"])
    h.send(make())
    new = h.events["x"][len(before) :]
    assert [(e["kind"], e["previous_state"], e["state"]) for e in new] == [("TRANSITION", start, expected)]
    assert new[0]["seq"] == before[-1]["seq"] + 1
    assert h.state("x") == expected


TERMINALS = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")
ILLEGAL: list[tuple[str, str, Input, str]] = [
    *[(t, "cancel", lambda: cancel("x", AT), f"already {t}") for t in TERMINALS],
    *[(t, "assign", lambda: assign("x", "r2", AT), f"cannot assign a {t} task") for t in TERMINALS],
    *[(t, "unassign", lambda: unassign("x", "r1", AT), f"cannot unassign a {t} task") for t in TERMINALS],
    ("QUEUED", "unassign", lambda: unassign("x", "r1", AT), "cannot unassign a QUEUED task"),
    ("WAITING", "assign", lambda: assign("x", "r1", AT), "cannot assign a WAITING task"),
    ("WAITING", "unassign", lambda: unassign("x", "r1", AT), "cannot unassign a WAITING task"),
    ("ASSIGNED", "assign other", lambda: assign("x", "r2", AT), "cannot assign a ASSIGNED task to r1"),
    ("ASSIGNED", "unassign other", lambda: unassign("x", "r2", AT), "held by r1, not r2"),
    ("EXECUTING", "assign again", lambda: assign("x", "r1", AT), "cannot assign a EXECUTING task"),
    ("RETRYING", "assign", lambda: assign("x", "r1", AT), "cannot assign a RETRYING task"),
    ("RETRYING", "unassign", lambda: unassign("x", "r1", AT), "cannot unassign a RETRYING task"),
    ("QUEUED", "cancel other tenant", lambda: cancel("x", AT, tenant="t2"), "unknown task"),
]


@pytest.mark.parametrize(
    ("start", "what", "make", "reason"), ILLEGAL, ids=[f"{s}-{w}" for s, w, _, _ in ILLEGAL]
)
def test_illegal_command_is_rejected_and_changes_nothing(
    start: str, what: str, make: Input, reason: str
) -> None:
    h = reach(start)
    before_state = dict(h.tasks["x"])  # type: ignore[arg-type]
    seq = h.events["x"][-1]["seq"]
    h.send(make())
    event = h.events["x"][-1]
    assert event["kind"] == "REJECTED"
    assert reason in event["reason"]
    assert event["state"] == start and event["previous_state"] is None
    assert event["seq"] == seq + 1  # a refusal takes the next seq: gapless over what was emitted
    after = dict(h.tasks["x"])  # type: ignore[arg-type]
    assert {k: v for k, v in after.items() if k not in ("seq", "last_at")} == {
        k: v for k, v in before_state.items() if k not in ("seq", "last_at")
    }


IGNORED: list[tuple[str, str, Input]] = [
    ("QUEUED", "robot STARTED", lambda: progress("x", "STARTED", "r1", AT)),
    ("QUEUED", "rmf completed", lambda: rmf("x", status="completed", at=AT)),
    ("WAITING", "robot COMPLETED", lambda: progress("x", "COMPLETED", "r1", AT)),
    ("ASSIGNED", "another robot STARTED", lambda: progress("x", "STARTED", "r2", AT)),
    ("ASSIGNED", "rmf skipped", lambda: rmf_observe_or_none("skipped")),
    ("EXECUTING", "robot IN_PROGRESS again", lambda: progress("x", "IN_PROGRESS", "r1", AT)),
    ("EXECUTING", "rmf dispatched (stale)", lambda: rmf("x", dispatch="dispatched", at=AT)),
    ("RETRYING", "robot FAILED again", lambda: progress("x", "FAILED", "r1", AT)),
    *[(t, "robot COMPLETED", lambda: progress("x", "COMPLETED", "r1", AT)) for t in TERMINALS],
    *[(t, "rmf failed", lambda: rmf("x", status="failed", at=AT)) for t in TERMINALS],
]


def rmf_observe_or_none(status: str) -> dict[str, Any]:
    found = from_rmf(rmf_state("x", status), AT)
    return found[0] if found else {"type": "observe", "task_id": "x", "observed": "NONE", "occurred_at": AT}


@pytest.mark.parametrize(("start", "what", "make"), IGNORED, ids=[f"{s}-{w}" for s, w, _ in IGNORED])
def test_facts_that_do_not_fit_are_ignored_silently(start: str, what: str, make: Input) -> None:
    h = reach(start)
    before = h.tasks["x"]
    out = h.apply(make())
    assert [o for o in out if o.topic == EVENTS] == []
    after = h.tasks["x"]
    if after is not before:  # only learning RMF's id of a running task may change the state
        assert after is not None and before is not None
        assert {**after, "external_id": None} == {**before, "external_id": None}
        assert after["status"] in ("ASSIGNED", "DISPATCHED", "EXECUTING") and after["external_id"] == "rmf-x"


def test_create_emits_created_then_queued_with_the_spec_and_deterministic_ids() -> None:
    h = Harness()
    h.send(create("x"))
    created, queued = h.events["x"]
    assert (created["seq"], created["state"], created["previous_state"]) == (1, "CREATED", None)
    assert (queued["seq"], queued["state"], queued["previous_state"]) == (2, "QUEUED", "CREATED")
    assert created["spec"]["category"] == "delivery" and queued["spec"] is None
    assert created["causation_id"] == f"cmd-x-CREATE-{T0}"
    assert created["event_id"] == det_uuid7(T0, "task", "x", 1)
    again = Harness()
    again.send(create("x"))
    assert again.events["x"] == h.events["x"]


def test_repeated_create_is_answered_with_duplicate_and_not_reapplied() -> None:
    h = Harness()
    h.send(create("x"), assign("x", "r1", T0 + 1))
    h.send(create("x", T0 + 2))
    h.send(create("x", T0 + 3, priority=9))
    assert h.kinds("x")[-2:] == [("DUPLICATE", "ASSIGNED"), ("DUPLICATE", "ASSIGNED")]
    assert "different spec" in h.events["x"][-1]["reason"]
    assert h.tasks["x"]["spec"]["priority"] == 5  # type: ignore[index]
    assert [e["seq"] for e in h.events["x"]] == [1, 2, 3, 4, 5]


def test_command_for_an_unknown_task_is_rejected_with_seq_1_and_creation_still_works() -> None:
    h = Harness()
    h.send(cancel("x"))
    assert h.kinds("x") == [("REJECTED", "UNKNOWN")]
    assert h.events["x"][0]["seq"] == 1 and h.events["x"][0]["reason"] == "unknown task"
    h.send(create("x", T0 + 1))
    assert h.kinds("x")[1:] == [("TRANSITION", "CREATED"), ("TRANSITION", "QUEUED")]
    assert [e["seq"] for e in h.events["x"]] == [1, 2, 3]


def test_facts_and_timers_about_unknown_tasks_create_no_state() -> None:
    h = Harness()
    h.send(progress("ghost", "STARTED"), rmf("ghost", status="underway"))
    assert h.tasks["ghost"] is None and h.events["ghost"] == []


def test_retry_with_exponential_backoff_then_failed_after_max_attempts() -> None:
    h = Harness()
    h.send(create("x", max_attempts=3))
    t = T0
    for attempt in (1, 2, 3):
        t += 100
        h.send(assign("x", f"r{attempt}", t))
        assert h.events["x"][-1]["attempt"] == attempt
        t += 100
        h.send(progress("x", "FAILED", f"r{attempt}", t))
        if attempt < 3:
            assert h.state("x") == "RETRYING"
            retry = next(v for k, v in h.timers.items() if ":retry:" in k)
            assert retry["due_at"] == t + CFG.backoff_ms(attempt)
            assert orjson.loads(retry["payload_json"])["kind"] == "task.retry"
            h.advance(retry["due_at"])
            assert h.state("x") == "QUEUED"
            assert h.events["x"][-1]["occurred_at"] == retry["due_at"]
            t = retry["due_at"]
    assert h.state("x") == "FAILED"
    assert "attempt 3 of 3 failed" in h.events["x"][-1]["reason"]
    assert "E42" in h.events["x"][-1]["reason"]
    assert h.timers == {}
    assert CFG.backoff_ms(1) == 1_000 and CFG.backoff_ms(2) == 2_000 and CFG.backoff_ms(10) == 8_000


def test_unassign_requeues_within_the_same_attempt_and_disarms_the_timeout() -> None:
    h = Harness()
    h.send(create("x"), assign("x", "r1", T0 + 1))
    (timer_id,) = h.timers
    h.send(unassign("x", "r1", T0 + 2))
    assert h.state("x") == "QUEUED" and h.timers == {} and timer_id in h.tombstoned
    assert h.events["x"][-1]["robot_id"] is None
    h.send(assign("x", "r2", T0 + 3))
    assert h.events["x"][-1]["attempt"] == 1 and h.events["x"][-1]["robot_id"] == "r2"


def test_timeout_fires_at_its_due_time_and_finishes_the_task() -> None:
    h = Harness()
    h.send(create("x", timeout_ms=5_000), assign("x", "r1", T0 + 1))
    (timer,) = h.timers.values()
    assert timer["due_at"] == T0 + 5_001 and timer["owner"] == "tasks" and timer["target_key"] == "x"
    h.advance(T0 + 5_001)
    assert h.state("x") == "TIMED_OUT"
    assert h.events["x"][-1]["occurred_at"] == T0 + 5_001
    assert timer["timer_id"] in h.tombstoned  # cleaned off the compacted topic once handled


def test_timeout_is_decided_in_event_time_even_before_the_timer_arrives() -> None:
    h = Harness()
    h.send(create("x", timeout_ms=5_000), assign("x", "r1", T0 + 1))
    h.send(progress("x", "COMPLETED", "r1", T0 + 6_000))  # after the due time; the timer is late
    assert h.transitions("x")[-1] == "TIMED_OUT"
    assert h.events["x"][-1]["occurred_at"] == T0 + 5_001
    h.advance(T0 + 10_000)  # the late timer is now stale: nothing more happens
    assert h.transitions("x")[-1] == "TIMED_OUT"


def test_success_before_the_timeout_cancels_the_timer() -> None:
    h = Harness()
    h.send(create("x", timeout_ms=5_000), assign("x", "r1", T0 + 1))
    (timer_id,) = h.timers
    h.send(progress("x", "COMPLETED", "r1", T0 + 4_000))
    assert h.state("x") == "SUCCEEDED" and timer_id in h.tombstoned and h.timers == {}


def test_stale_timer_only_cleans_up() -> None:
    h = Harness()
    h.send(create("x"), assign("x", "r1", T0 + 1))
    out = step(
        h.tasks["x"],
        {
            "type": "timer",
            "task_id": "x",
            "timer_id": "task:x:timeout:1",
            "occurred_at": T0 + 2,
            "event_id": None,
        },
        CFG,
    )
    assert out[0] is h.tasks["x"]
    assert [(o.topic, o.key, o.value) for o in out[1]] == [(TIMERS, "task:x:timeout:1", None)]


def test_no_timeout_when_none_is_configured() -> None:
    h = Harness(cfg=TasksConfig(default_timeout_ms=None))
    h.send(create("x"), assign("x", "r1", T0 + 1))
    assert h.timers == {}


def test_pinned_task_refuses_another_robot() -> None:
    h = Harness()
    h.send(create("x", robot_id="r7"), assign("x", "r1", T0 + 1))
    assert h.events["x"][-1]["kind"] == "REJECTED" and "pinned to robot r7" in h.events["x"][-1]["reason"]
    assert h.events["x"][-1]["robot_id"] == "r1"
    h.send(assign("x", "r7", T0 + 2))
    assert h.state("x") == "ASSIGNED"


def test_event_time_never_goes_backwards() -> None:
    h = Harness()
    h.send(create("x", T0 + 1_000), assign("x", "r1", T0 + 10), progress("x", "COMPLETED", "r1", T0 + 5))
    assert [e["occurred_at"] for e in h.events["x"]] == [T0 + 1_000] * 4


def test_rmf_booking_id_becomes_the_external_id() -> None:
    h = Harness()
    h.send(create("x"), assign("x", "r1", T0 + 1), rmf("x", status="underway", at=T0 + 2))
    assert h.events["x"][-1]["external_id"] == "rmf-x"
    assert "RMF underway" in h.events["x"][-1]["reason"]


@pytest.mark.parametrize(
    ("status", "dispatch", "expected"),
    [
        (None, "queued", "DISPATCHED"),
        (None, "selected", "DISPATCHED"),
        (None, "dispatched", "DISPATCHED"),
        (None, "failed_to_assign", "FAILED"),
        (None, "canceled_in_flight", "CANCELLED"),
        ("uninitialized", None, "DISPATCHED"),
        ("queued", "dispatched", "DISPATCHED"),
        ("standby", None, "DISPATCHED"),
        ("underway", "dispatched", "EXECUTING"),
        ("blocked", None, "EXECUTING"),
        ("delayed", None, "EXECUTING"),
        ("error", None, "EXECUTING"),
        ("completed", "dispatched", "SUCCEEDED"),
        ("failed", None, "FAILED"),
        ("canceled", None, "CANCELLED"),
        ("killed", "dispatched", "CANCELLED"),
        ("skipped", None, None),
    ],
)
def test_rmf_status_table(status: str | None, dispatch: str | None, expected: str | None) -> None:
    found = from_rmf(rmf_state("x", status, dispatch), T0)
    assert (found[0]["observed"] if found else None) == expected


def test_rmf_task_id_falls_back_to_the_booking_id_and_bad_messages_are_rejected() -> None:
    assert from_rmf({"booking": {"id": "b1"}, "status": "underway"}, T0)[0]["task_id"] == "b1"
    with pytest.raises(RejectedRecord, match=r"booking\.id"):
        from_rmf({"type": "task_state_update", "data": {"status": "underway"}}, T0)
    with pytest.raises(RejectedRecord, match="unknown RMF task status"):
        from_rmf({"booking": {"id": "b1"}, "status": "exploded"}, T0)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (command("", "CREATE", spec=spec()), "task_id"),
        (command("x", "UNKNOWN"), "unknown command"),
        (command("x", "CREATE"), "without a spec"),
        (command("x", "CREATE", spec=spec(priority=11)), "priority"),
        (command("x", "CREATE", spec=spec(max_attempts=0)), "max_attempts"),
        (command("x", "CREATE", spec=spec(timeout_ms=0)), "timeout_ms"),
        (command("x", "CREATE", spec=spec(depends_on=[""])), "depends_on"),
        (command("x", "TIMER"), "timer"),
        ({**command("x", "CANCEL"), "tenant_id": ""}, "tenant_id"),
    ],
)
def test_invalid_commands_go_to_the_dead_letter_queue(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(RejectedRecord, match=reason):
        from_command(record)


def test_record_key_must_match_the_task_id() -> None:
    with pytest.raises(RejectedRecord, match="does not match"):
        from_command(command("x", "CANCEL"), key="y")


def test_timer_command_is_a_timer_input() -> None:
    h = Harness()
    h.send(create("x", timeout_ms=1_000), assign("x", "r1", T0 + 1))
    (timer_id,) = h.timers
    h.send(from_command(command("x", "TIMER", T0 + 1_001, timer=timer_id))[0])
    assert h.state("x") == "TIMED_OUT"
