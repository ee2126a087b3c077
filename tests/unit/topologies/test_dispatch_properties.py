"""Property: over random event sequences dispatch never double-books and stays at the greedy fixpoint."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.topologies.test_dispatch_support import T0, line_map, registration, spec, status, task_event
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.machine import MAP, step
from topologies.dispatch.policy import CostModel
from topologies.dispatch.state import SiteState, robot_view, task_view

ROBOTS = ["r1", "r2", "r3", "r4"]
TASKS = ["t1", "t2", "t3", "t4", "t5", "t6"]
NODES = [f"N{i}" for i in range(8)]
CAPS = st.sampled_from([(), ("lift",), ("lift", "tow")])
STATES = [
    "CREATED",
    "QUEUED",
    "QUEUED",
    "QUEUED",
    "ASSIGNED",
    "EXECUTING",
    "SUCCEEDED",
    "CANCELLED",
    "RETRYING",
]

_op = st.one_of(
    st.tuples(st.just("reg"), st.sampled_from(ROBOTS), CAPS, st.sampled_from([True, True, True, False])),
    st.tuples(
        st.just("status"),
        st.sampled_from(ROBOTS),
        st.sampled_from(NODES),
        st.floats(0.0, 1.0),
        st.sampled_from(["IDLE", "IDLE", "MOVING", "CHARGING", "OFFLINE", "ERROR"]),
    ),
    st.tuples(st.just("new"), st.sampled_from(TASKS), st.sampled_from(NODES), st.integers(0, 10), CAPS),
    st.tuples(
        st.just("task"), st.sampled_from(TASKS), st.sampled_from(STATES), st.sampled_from([None, *ROBOTS])
    ),
    st.tuples(st.just("reject"), st.sampled_from(TASKS)),
    st.tuples(st.just("feedback"), st.integers(0, 5)),
)


def _events(
    ops: list[tuple], state: SiteState, last: list[dict[str, Any]], seqs: dict[str, int], now: int
) -> list:
    out: list[dict[str, Any]] = []
    for op in ops:
        if op[0] == "reg":
            out.append(registration(op[1], op[2], active=op[3]))
        elif op[0] == "status":
            out.append(status(op[1], op[2], op[3], op[4], at=now))
        elif op[0] == "new":  # CREATED with a spec, then QUEUED
            _, tid, node, prio, caps = op
            s = spec(node, NODES[(NODES.index(node) + 3) % len(NODES)], priority=prio, caps=caps)
            seqs[tid] = seqs.get(tid, 0) + 2
            out.append(task_event(tid, seqs[tid] - 1, "CREATED", at=now, spec=s))
            out.append(task_event(tid, seqs[tid], "QUEUED", at=now))
        elif op[0] == "task":
            _, tid, new, robot = op
            seqs[tid] = seqs.get(tid, 0) + 1
            out.append(task_event(tid, seqs[tid], new, at=now, robot_id=robot))
        elif op[0] == "reject":
            out.append(task_event(op[1], seqs.get(op[1], 0), "QUEUED", at=now, kind="REJECTED"))
        elif op[0] == "feedback":  # the tasks topology confirms one of the last ASSIGNs
            given_ = [d for d in last if d["kind"] == "ASSIGN"]
            if given_:
                d = given_[op[1] % len(given_)]
                seqs[d["task_id"]] = seqs.get(d["task_id"], 0) + 1
                out.append(
                    task_event(d["task_id"], seqs[d["task_id"]], "ASSIGNED", at=now, robot_id=d["robot_id"])
                )
    return out


def _check_consistent(state: SiteState) -> None:
    for rid, robot in state.robots.items():
        if robot["task_id"] is not None:
            assert state.tasks[robot["task_id"]]["robot_id"] == rid
    for tid, task in state.tasks.items():
        if task["robot_id"] is not None:
            assert state.robots[task["robot_id"]]["task_id"] == tid
    holders = [r["charger"] for r in state.robots.values() if r["charger"]]
    assert len(holders) == len(set(holders))
    assert state.charger_holder == {r["charger"]: rid for rid, r in state.robots.items() if r["charger"]}


def _check_fixpoint(state: SiteState, now: int) -> None:
    graph = state.graph
    if graph is None or not state.free or not state.ready:
        return
    table = CostModel(graph, state.config, now).table(
        [robot_view(state.robots[r]) for r in state.free], [task_view(state.tasks[t]) for t in state.ready]
    )
    assert not any(math.isfinite(c) for c in table.cost.ravel()), "a free robot could take a ready task"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_op, min_size=1, max_size=60), st.booleans())
def test_no_double_booking_and_greedy_fixpoint(ops: list[tuple], map_first: bool) -> None:
    state = SiteState(config=DispatchConfig(battery_per_s=0.002))
    seqs: dict[str, int] = {}
    last: list[dict[str, Any]] = []
    site = line_map(8, chargers={"c1": "N0", "c2": "N7"})
    if map_first:
        state, last = step(state, MAP, site, T0)
    for k, op in enumerate(ops):
        now = T0 + 1000 * (k + 1)
        events = _events([op], state, last, seqs, now)
        if not map_first and k == len(ops) // 2:
            events.append(site)
        for event in events:
            # Only the task the event is about may release its robot within this step.
            about = event.get("task_id") if "seq" in event else None
            booked_robots = {r for r, v in state.robots.items() if v["task_id"] and v["task_id"] != about}
            booked_tasks = {t for t, v in state.tasks.items() if v["robot_id"] and t != about}
            state, out = step(state, event.kind, event, now)
            given_ = [(d["robot_id"], d["task_id"]) for d in out if d["kind"] == "ASSIGN"]
            assert len({r for r, _ in given_}) == len(given_)
            assert len({t for _, t in given_}) == len(given_)
            for rid, tid in given_:
                assert rid not in booked_robots and tid not in booked_tasks
                assert state.robots[rid]["task_id"] == tid
                required = set(state.tasks[tid]["spec"]["required_capabilities"])
                assert required <= set(state.robots[rid]["capabilities"])
                assert state.robots[rid]["status"] in ("IDLE", "CHARGING")
            for d in out:
                if d["kind"] == "UNASSIGN":
                    assert state.robots[d["robot_id"]]["status"] == "OFFLINE"
            _check_consistent(state)
            _check_fixpoint(state, now)
            if out:
                last = out
