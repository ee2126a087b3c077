"""Dependencies: known prerequisites, cycles (also between racing creations), and outcome fan-out."""

from __future__ import annotations

from tests.unit.topologies.test_tasks_helpers import CFG, T0, Harness, assign, cancel, create, progress
from topologies.tasks import TasksConfig


def succeed(h: Harness, task_id: str, at: int) -> None:
    h.send(assign(task_id, "r1", at), progress(task_id, "COMPLETED", "r1", at + 1))
    assert h.state(task_id) == "SUCCEEDED"


def test_dependent_waits_for_its_prerequisite_then_queues() -> None:
    h = Harness()
    h.send(create("p"), create("d", T0 + 1, depends_on=["p"]))
    assert h.transitions("d") == ["CREATED", "WAITING"]
    assert h.tasks["p"]["dependents"] == ["d"]  # type: ignore[index]
    succeed(h, "p", T0 + 10)
    assert h.transitions("d") == ["CREATED", "WAITING", "QUEUED"]
    assert h.events["d"][-1]["reason"] == "all dependencies succeeded"


def test_creation_is_held_until_every_prerequisite_answered() -> None:
    h = Harness()
    h.send(create("p"))
    h.send(create("d", T0 + 1, depends_on=["p"]), drain=False)
    assert h.events["d"] == [] and h.tasks["d"]["pending"] is not None  # type: ignore[index]
    h.drain()
    assert h.transitions("d") == ["CREATED", "WAITING"]


def test_prerequisite_already_succeeded_means_queued_at_once() -> None:
    h = Harness()
    h.send(create("p"))
    succeed(h, "p", T0 + 1)
    h.send(create("d", T0 + 10, depends_on=["p"]))
    assert h.transitions("d") == ["CREATED", "QUEUED"]


def test_failed_prerequisite_cancels_or_fails_dependents_per_policy() -> None:
    h = Harness()
    h.send(create("p", max_attempts=1))
    h.send(
        create("c", T0 + 1, depends_on=["p"]),
        create("f", T0 + 1, depends_on=["p"], on_dependency_failure="FAIL"),
    )
    h.send(assign("p", "r1", T0 + 2), progress("p", "FAILED", "r1", T0 + 3))
    assert h.transitions("c")[-1] == "CANCELLED" and h.transitions("f")[-1] == "FAILED"
    assert h.events["c"][-1]["reason"] == "dependency p ended FAILED"
    # and a dependent created after the failure ends at once
    h.send(create("late", T0 + 5, depends_on=["p"]))
    assert h.transitions("late") == ["CREATED", "CANCELLED"]


def test_failure_cascades_down_a_chain() -> None:
    h = Harness()
    h.send(create("a"), create("b", T0 + 1, depends_on=["a"]), create("c", T0 + 2, depends_on=["b"]))
    h.send(cancel("a", T0 + 3))
    assert [h.state(t) for t in "abc"] == ["CANCELLED", "CANCELLED", "CANCELLED"]
    assert h.events["c"][-1]["reason"] == "dependency b ended CANCELLED"


def test_diamond_queues_only_when_both_branches_succeeded() -> None:
    h = Harness()
    h.send(create("a"), create("b", T0 + 1, depends_on=["a"]), create("c", T0 + 1, depends_on=["a"]))
    h.send(create("d", T0 + 2, depends_on=["b", "c", "b"]))
    assert h.tasks["d"]["waiting_on"] == ["b", "c"]  # type: ignore[index]
    succeed(h, "a", T0 + 10)
    succeed(h, "b", T0 + 20)
    assert h.state("d") == "WAITING"
    succeed(h, "c", T0 + 30)
    assert h.state("d") == "QUEUED"


def test_unknown_dependency_is_rejected_and_a_later_create_is_evaluated_afresh() -> None:
    h = Harness()
    h.send(create("d", depends_on=["nope"]))
    assert h.kinds("d") == [("REJECTED", "UNKNOWN")]
    assert h.events["d"][0]["reason"] == "dependency nope is unknown"
    assert h.tasks["nope"] is None  # a probe does not create state for the unknown id
    h.send(create("nope", T0 + 1), create("d", T0 + 2, depends_on=["nope"]))
    assert h.transitions("d") == ["CREATED", "WAITING"]
    assert [e["seq"] for e in h.events["d"]] == [1, 2, 3]


def test_dependency_of_another_tenant_is_unknown() -> None:
    h = Harness()
    h.send(create("p", tenant="t2"), create("d", T0 + 1, depends_on=["p"]))
    assert h.kinds("d") == [("REJECTED", "UNKNOWN")]


def test_self_dependency_is_a_cycle() -> None:
    h = Harness()
    h.send(create("d", depends_on=["d"]))
    assert h.kinds("d") == [("REJECTED", "UNKNOWN")] and "cycle" in h.events["d"][0]["reason"]


def test_prerequisite_whose_own_check_is_in_progress_answers_later() -> None:
    h = Harness()
    h.send(create("a"))
    h.send(create("b", T0 + 1, depends_on=["a"]), drain=False)  # b's probe to a is not delivered yet
    h.send(create("c", T0 + 2, depends_on=["b"]), drain=False)
    h.apply(h.inbox.pop())  # c's probe reaches b while b is pending -> "pending", c subscribes
    assert h.tasks["b"]["subscribers"] == ["c"]  # type: ignore[index]
    h.drain()
    assert h.transitions("b") == ["CREATED", "WAITING"] and h.transitions("c") == ["CREATED", "WAITING"]
    succeed(h, "a", T0 + 10)
    succeed(h, "b", T0 + 20)
    assert h.state("c") == "QUEUED"


def test_racing_creations_that_form_a_cycle_are_all_rejected() -> None:
    for order in range(20):
        h = Harness(seed=order)
        # a -> b -> c -> a, all created before any probe is delivered: every one is pending.
        h.send(
            create("a", depends_on=["c"]),
            create("b", depends_on=["a"]),
            create("c", depends_on=["b"]),
            drain=False,
        )
        h.drain()
        assert {t: h.kinds(t) for t in "abc"} == {t: [("REJECTED", "UNKNOWN")] for t in "abc"}, order
        assert all(h.tasks[t]["pending"] is None for t in "abc")  # type: ignore[index]
        assert any("cycle" in h.events[t][0]["reason"] for t in "abc")


def test_two_task_cycle_between_pending_creations() -> None:
    h = Harness()
    h.send(create("a", depends_on=["b"]), create("b", depends_on=["a"]), drain=False)
    h.drain()
    assert h.kinds("a") == [("REJECTED", "UNKNOWN")] and h.kinds("b") == [("REJECTED", "UNKNOWN")]


def test_cancel_during_the_check_is_applied_right_after_creation() -> None:
    h = Harness()
    h.send(create("p"))
    h.send(create("d", T0 + 1, depends_on=["p"]), drain=False)
    h.send(cancel("d", T0 + 2, reason="changed my mind"), drain=False)
    h.drain()
    assert h.transitions("d") == ["CREATED", "CANCELLED"] and h.events["d"][-1]["reason"] == "changed my mind"


def test_duplicate_create_during_the_check() -> None:
    h = Harness()
    h.send(create("p"))
    h.send(create("d", T0 + 1, depends_on=["p"]), create("d", T0 + 2, depends_on=["p"]), drain=False)
    h.drain()
    assert h.kinds("d") == [("DUPLICATE", "UNKNOWN"), ("TRANSITION", "CREATED"), ("TRANSITION", "WAITING")]


def test_assign_during_the_check_is_rejected() -> None:
    h = Harness()
    h.send(create("p"))
    h.send(create("d", T0 + 1, depends_on=["p"]), assign("d", "r1", T0 + 2), drain=False)
    h.drain()
    assert h.kinds("d")[0] == ("REJECTED", "UNKNOWN") and "dependency check" in h.events["d"][0]["reason"]
    assert h.state("d") == "WAITING"


def test_limits_on_dependencies_and_dependents() -> None:
    h = Harness(cfg=TasksConfig(max_dependencies=2, max_dependents=1))
    h.send(create("p"), create("d1", T0 + 1, depends_on=["p"]), create("d2", T0 + 2, depends_on=["p"]))
    assert h.state("d1") == "WAITING"
    assert (
        h.kinds("d2") == [("REJECTED", "UNKNOWN")]
        and "refuses more dependents" in h.events["d2"][0]["reason"]
    )
    h.send(create("d3", T0 + 3, depends_on=["a", "b", "c"]))
    assert "too many dependencies" in h.events["d3"][0]["reason"]


def test_cancelled_dependent_ignores_the_later_outcome() -> None:
    h = Harness(cfg=CFG)
    h.send(create("p"), create("d", T0 + 1, depends_on=["p"]))
    h.send(cancel("d", T0 + 2))
    succeed(h, "p", T0 + 10)
    assert h.transitions("d") == ["CREATED", "WAITING", "CANCELLED"]
