"""Property tests: any input sequence keeps the task invariants; any DAG resolves, whatever the delivery order."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.topologies.test_tasks_helpers import (
    T0,
    Harness,
    assign,
    cancel,
    create,
    progress,
    rmf,
    unassign,
)
from topologies.tasks import TERMINAL, TasksConfig

_RUN = {"ASSIGNED", "DISPATCHED", "EXECUTING"}
EDGES = {
    (None, "CREATED"),
    *{("CREATED", s) for s in ("QUEUED", "WAITING", "CANCELLED", "FAILED")},
    *{("WAITING", s) for s in ("QUEUED", "CANCELLED", "FAILED")},
    ("QUEUED", "ASSIGNED"),
    ("QUEUED", "CANCELLED"),
    ("ASSIGNED", "DISPATCHED"),
    *{(r, "EXECUTING") for r in ("ASSIGNED", "DISPATCHED")},
    *{(r, s) for r in _RUN for s in ("SUCCEEDED", "RETRYING", "FAILED", "QUEUED", "CANCELLED", "TIMED_OUT")},
    ("RETRYING", "QUEUED"),
    ("RETRYING", "CANCELLED"),
}
CFG = TasksConfig(default_timeout_ms=4_000, retry_backoff_base_ms=500, retry_backoff_max_ms=2_000)

robots = st.sampled_from(["r1", "r2"])
ops = st.one_of(
    st.tuples(st.just("create"), st.integers(1, 3), st.sampled_from([None, 1_000, 3_000])),
    st.tuples(st.just("cancel")),
    st.tuples(st.just("assign"), robots),
    st.tuples(st.just("unassign"), robots),
    st.tuples(
        st.just("progress"), st.sampled_from(["STARTED", "IN_PROGRESS", "COMPLETED", "FAILED"]), robots
    ),
    st.tuples(st.just("rmf"), st.sampled_from(["queued", "underway", "completed", "failed", "canceled"])),
    st.tuples(st.just("advance"), st.integers(0, 5_000)),
)


def _apply(h: Harness, op: tuple[Any, ...], at: int) -> None:
    kind = op[0]
    if kind == "create":
        h.send(create("x", at, max_attempts=op[1], timeout_ms=op[2]))
    elif kind == "cancel":
        h.send(cancel("x", at))
    elif kind == "assign":
        h.send(assign("x", op[1], at))
    elif kind == "unassign":
        h.send(unassign("x", op[1], at))
    elif kind == "progress":
        h.send(progress("x", op[1], op[2], at))
    elif kind == "rmf":
        h.send(rmf("x", status=op[1], at=at))
    else:
        h.advance(at + op[1])


def check_task_invariants(h: Harness, task_id: str) -> None:
    events = h.events[task_id]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), "seq must be gapless from 1"
    current: str | None = None
    finished = False
    last_at = 0
    for e in events:
        assert e["occurred_at"] >= last_at, "event time must not go backwards"
        last_at = e["occurred_at"]
        if e["kind"] == "TRANSITION":
            assert not finished, f"transition out of a terminal state: {current} -> {e['state']}"
            assert e["previous_state"] == current
            assert (current, e["state"]) in EDGES, f"illegal edge {current} -> {e['state']}"
            current = e["state"]
            finished = current in TERMINAL
        else:
            assert e["kind"] in ("REJECTED", "DUPLICATE")
            assert e["state"] == (current or "UNKNOWN"), "a refusal reports the unchanged state"
    state = h.tasks.get(task_id)
    assert (state["status"] if state else None) == current
    if state is not None:
        armed = {a["id"] for a in (state["timeout"], state["retry"]) if a}
        assert armed == {tid for tid, t in h.timers.items() if t["target_key"] == task_id}
        if current in TERMINAL:
            assert not armed
        if state["timeout"]:
            assert current in _RUN
        if state["retry"]:
            assert current == "RETRYING"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(ops, st.integers(0, 2_000)), max_size=25))
def test_any_input_sequence_keeps_the_invariants(sequence: list[tuple[tuple[Any, ...], int]]) -> None:
    h = Harness(cfg=CFG)
    at = T0
    for op, dt in sequence:
        at += dt
        at = max(at, h.now)
        _apply(h, op, at)
        check_task_invariants(h, "x")
    # Exactly one terminal state is always reachable: a cancel finishes any created, unfinished task.
    created = h.state("x") is not None
    if created and h.state("x") not in TERMINAL:
        h.send(cancel("x", max(at, h.now) + 1))
        assert h.state("x") == "CANCELLED"
    # ...and so does time alone for a task held by a robot (the attempt timeout) or retrying.
    h.advance(max(at, h.now) + 60_000)
    check_task_invariants(h, "x")
    terminal = [e for e in h.events["x"] if e["kind"] == "TRANSITION" and e["state"] in TERMINAL]
    assert len(terminal) == (1 if created else 0)


@st.composite
def dags(draw: st.DrawFn) -> tuple[int, dict[int, list[int]], list[int], list[str], int, bool]:
    n = draw(st.integers(2, 7))
    deps = {i: sorted(draw(st.sets(st.integers(0, i - 1), max_size=3))) if i else [] for i in range(n)}
    order = draw(st.permutations(range(n)))
    outcomes = draw(st.lists(st.sampled_from(["succeed", "fail", "cancel"]), min_size=n, max_size=n))
    seed = draw(st.integers(0, 10_000))
    settle_between = draw(st.booleans())
    return n, deps, list(order), outcomes, seed, settle_between


@settings(max_examples=200, deadline=None)
@given(dags())
def test_any_dag_resolves_whatever_the_order(
    case: tuple[int, dict[int, list[int]], list[int], list[str], int, bool],
) -> None:
    n, deps, order, outcomes, seed, settle_between = case
    h = Harness(cfg=CFG, seed=seed)
    name = [f"t{i}" for i in range(n)]
    at = T0
    for i in order:
        at += 10
        policy = "FAIL" if i % 2 else "CANCEL"
        h.send(
            create(name[i], at, depends_on=[name[d] for d in deps[i]], on_dependency_failure=policy),
            drain=settle_between,
        )
    h.drain()
    created = {i for i in range(n) if h.state(name[i]) is not None}
    for i in range(n):
        task = h.tasks[name[i]]
        assert task is not None and task["pending"] is None, "no creation may stay pending"
        if i in created:
            assert all(d in created for d in deps[i]), "a task is created only if its prerequisites were"
        else:
            assert h.kinds(name[i])[-1] == ("REJECTED", "UNKNOWN")
    if settle_between and order == sorted(order):
        assert created == set(range(n)), "prerequisites created first: every task is created"
    # Finish the tasks in a random order, then check the dependents followed.
    for i in sorted(created, key=lambda k: (outcomes[k], k)):
        at += 10
        if h.state(name[i]) in TERMINAL:
            continue
        if outcomes[i] == "cancel" or h.state(name[i]) == "WAITING":
            h.send(cancel(name[i], at))
            continue
        h.send(
            assign(name[i], "r1", at),
            progress(name[i], "COMPLETED" if outcomes[i] == "succeed" else "FAILED", "r1", at + 1),
        )
        if h.state(name[i]) == "RETRYING":
            h.send(cancel(name[i], at + 2))
    for i in created:
        check_task_invariants(h, name[i])
        state = h.state(name[i])
        dep_states = [h.state(name[d]) for d in deps[i]]
        if state == "WAITING":
            assert any(s not in TERMINAL for s in dep_states)
        if any(s in TERMINAL - {"SUCCEEDED"} for s in dep_states):
            assert state in TERMINAL, "a failed prerequisite finishes its dependents"
    for i in range(n):
        check_task_invariants(h, name[i])


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10_000), st.booleans())
def test_racing_cycles_are_always_rejected(length: int, seed: int, with_tail: bool) -> None:
    h = Harness(cfg=CFG, seed=seed)
    names = [f"c{i}" for i in range(length)]
    for i, task in enumerate(names):
        h.send(create(task, T0 + i, depends_on=[names[(i + 1) % length]]), drain=False)
    if with_tail:  # a task hanging off the cycle is rejected too (its prerequisite never gets created)
        h.send(create("tail", T0 + 99, depends_on=[names[0]]), drain=False)
    h.drain()
    for task in [*names, *(["tail"] if with_tail else [])]:
        assert h.kinds(task) == [("REJECTED", "UNKNOWN")], task
        assert h.tasks[task]["pending"] is None  # type: ignore[index]
