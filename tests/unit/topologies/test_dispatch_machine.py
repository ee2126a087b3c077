"""The site transition: assignments, chargers, offline requeue, the feedback loop and determinism."""

from __future__ import annotations

import uuid
from typing import Any

from tests.unit.topologies.test_dispatch_support import (
    T0,
    line_map,
    queued_task,
    registration,
    site_map,
    spec,
    status,
    task_event,
)
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.machine import MAP, step
from topologies.dispatch.policy import Assignment, CostTable, optimal
from topologies.dispatch.state import SiteState

CHARGERS = {"c1": "N0", "c2": "N9"}


def run(
    events: list[dict[str, Any]], state: SiteState | None = None, now: int = T0
) -> tuple[SiteState, list]:
    state = state or SiteState(config=DispatchConfig(age_weight=0.0))
    out: list[dict[str, Any]] = []
    for e in events:
        state, got = step(state, e.kind, e, now)
        out.extend(got)
    return state, out


def world(robots: dict[str, tuple[str, float]], caps: dict[str, tuple[str, ...]] | None = None) -> list[dict]:
    events: list[dict[str, Any]] = [line_map(10, chargers=CHARGERS)]
    for rid, (node, battery) in robots.items():
        events += [registration(rid, (caps or {}).get(rid, ())), status(rid, node, battery)]
    return events


def assigns(out: list[dict]) -> list[tuple[str, str]]:
    return [(d["task_id"], d["robot_id"]) for d in out if d["kind"] == "ASSIGN"]


def test_assign_decision_carries_route_eta_ids_and_the_tasks_stops() -> None:
    task_spec = {**spec("N3", "N5"), "labels": {"loadId": "L-7"}}
    state, out = run([*world({"r1": ("N1", 0.9)}), *queued_task("t1", task_spec)])
    (d,) = out
    assert d["kind"] == "ASSIGN" and d["robot_id"] == "r1" and d["task_id"] == "t1"
    assert (d["pickup_node"], d["dropoff_node"], d["labels"]) == ("N3", "N5", {"loadId": "L-7"})
    assert [w["node_id"] for w in d["route"]] == ["N1", "N2", "N3", "N4", "N5"]
    assert [w["eta"] for w in d["route"]] == [T0 + k * 10_000 for k in range(5)]
    assert d["eta"] == T0 + 40_000
    assert uuid.UUID(d["event_id"]).version == 7 and uuid.UUID(d["event_id"]).int >> 80 == T0
    assert uuid.UUID(d["decision_id"]).version == 5
    assert d["planner"] == "in_process" and d["tenant_id"] == "acme" and d["site_id"] == "s1"
    assert state.robots["r1"]["task_id"] == "t1" and state.tasks["t1"]["robot_id"] == "r1"


def test_nearest_capable_robot_wins() -> None:
    events = world({"near": ("N2", 0.9), "far": ("N8", 0.9)}, caps={"far": ("lift",)})
    _, out = run([*events, *queued_task("t1", spec("N3", "N4", caps=("lift",)))])
    assert assigns(out) == [("t1", "far")]
    _, out = run([*world({"near": ("N2", 0.9)}), *queued_task("t1", spec("N3", caps=("lift",)))])
    assert out == []


def test_free_robot_takes_the_highest_priority_then_the_tightest_deadline() -> None:
    tasks = [
        *queued_task("low", spec("N3", priority=1)),
        *queued_task("high", spec("N9", priority=8)),
        *queued_task("due", spec("N9", priority=1, deadline=T0 + 60_000)),
    ]
    state, out = run([line_map(10, chargers=CHARGERS), registration("r1"), *tasks, status("r1", "N3", 0.9)])
    assert assigns(out) == [("high", "r1")]
    state, out = run([registration("r2"), status("r2", "N3", 0.9)], state)
    assert assigns(out) == [("due", "r2")]


def test_robot_below_reserve_goes_to_the_nearest_charger_and_gets_no_task() -> None:
    state, out = run([*world({"r1": ("N7", 0.1)}), *queued_task("t1", spec("N8"))])
    assert [(d["kind"], d["route"][-1]["node_id"]) for d in out] == [("CHARGE", "N9")]
    assert state.robots["r1"]["charger"] == "c2"


def test_charger_contention_one_robot_per_charger_and_release_at_charge_level() -> None:
    events = world({"a": ("N8", 0.10), "b": ("N8", 0.05), "c": ("N7", 0.15)})
    state, out = run([*events[1:], events[0]])  # the map last: all three wait for a charger at once
    charges = {d["robot_id"]: d["route"][-1]["node_id"] for d in out if d["kind"] == "CHARGE"}
    # b (lowest battery) takes the near charger, a the other one, c waits.
    assert charges == {"b": "N9", "a": "N0"}
    assert "c" in state.needs_charge
    state, out = run([status("b", "N9", 0.95, "CHARGING", at=T0 + 1)], state)
    assert [(d["kind"], d["robot_id"], d["route"][-1]["node_id"]) for d in out] == [("CHARGE", "c", "N9")]
    assert sorted(state.charger_holder.items()) == [("c1", "a"), ("c2", "c")]


def test_trip_that_crosses_the_reserve_is_not_assigned() -> None:
    cfg = DispatchConfig(battery_per_s=0.005, age_weight=0.0)  # 90 s of travel = 0.45 of charge
    state = SiteState(config=cfg)
    _, out = run([*world({"r1": ("N0", 0.6)}), *queued_task("t1", spec("N9"))], state)
    assert out == []


def test_offline_robot_unassigns_and_the_task_waits_for_the_tasks_topology() -> None:
    state, out = run([*world({"r1": ("N1", 0.9), "r2": ("N5", 0.9)}), *queued_task("t1", spec("N2"))])
    assert assigns(out) == [("t1", "r1")]
    state, out = run([task_event("t1", 3, "ASSIGNED", robot_id="r1")], state)
    assert out == [] and state.tasks["t1"]["confirmed"]
    state, out = run([status("r1", "N2", 0.8, "OFFLINE", at=T0 + 5)], state)
    assert [(d["kind"], d["task_id"], d["robot_id"]) for d in out] == [("UNASSIGN", "t1", "r1")]
    assert state.robots["r1"]["task_id"] is None and "t1" not in state.ready
    state, out = run(
        [task_event("t1", 4, "RETRYING", attempt=1), task_event("t1", 5, "QUEUED", attempt=1)], state
    )
    assert assigns(out) == [("t1", "r2")]


def test_success_frees_the_robot_for_the_next_task() -> None:
    state, out = run(
        [*world({"r1": ("N1", 0.9)}), *queued_task("t1", spec("N2")), *queued_task("t2", spec("N4"))]
    )
    assert assigns(out) == [("t1", "r1")]
    state, out = run(
        [task_event("t1", 3, "ASSIGNED", robot_id="r1"), task_event("t1", 4, "SUCCEEDED", robot_id="r1")],
        state,
    )
    assert assigns(out) == [("t2", "r1")]
    assert "t1" not in state.tasks


def test_rejected_assign_releases_the_booking_and_duplicates_are_ignored() -> None:
    state, out = run([*world({"r1": ("N1", 0.9)}), *queued_task("t1", spec("N2"))])
    first = out[0]["decision_id"]
    state, out = run([task_event("t1", 2, "QUEUED")], state)  # a replayed event changes nothing
    assert out == [] and state.tasks["t1"]["robot_id"] == "r1"
    state, out = run([task_event("t1", 2, "QUEUED", kind="REJECTED")], state)
    assert out == [] and "r1" in state.free and "t1" not in state.ready  # no ASSIGN/REJECTED loop
    state, out = run([task_event("t1", 3, "QUEUED")], state)  # queued again: dispatched again
    assert assigns(out) == [("t1", "r1")]
    assert out[0]["decision_id"] != first  # a new attempt of the booking gets a new id


def test_assigned_elsewhere_moves_the_booking() -> None:
    state, _ = run([*world({"r1": ("N1", 0.9), "r2": ("N8", 0.9)}), *queued_task("t1", spec("N2"))])
    state, out = run([task_event("t1", 3, "ASSIGNED", robot_id="r2")], state)
    assert state.robots["r1"]["task_id"] is None and state.robots["r2"]["task_id"] == "t1"
    assert "r1" in state.free and out == []


def test_map_change_resnaps_robots_and_dispatches() -> None:
    state, out = run(
        [registration("r1"), status("r1", None, 0.9, xy=(19, 1)), *queued_task("t1", spec("N4"))]
    )
    assert out == []  # no map yet
    state, out = run([line_map(10, chargers=CHARGERS)], state)
    assert assigns(out) == [("t1", "r1")]
    assert out[0]["route"][0]["node_id"] == "N2"


def test_replay_gives_identical_decisions() -> None:
    events = [
        *world({"r1": ("N1", 0.9), "r2": ("N6", 0.9), "r3": ("N3", 0.1)}),
        *queued_task("t1", spec("N2", "N4")),
        *queued_task("t2", spec("N7", "N9")),
        *queued_task("t3", spec("N5")),
    ]
    _, a = run(events)
    _, b = run(events)
    assert a == b and len(a) == 3


def test_batches_go_to_the_injected_assigner_and_its_bad_answers_are_dropped() -> None:
    calls: list[tuple[int, int]] = []

    def planner(table: CostTable) -> tuple[list[Assignment], str]:
        calls.append((len(table.robots), len(table.tasks)))
        bogus = Assignment("r1", "t2", 0.0, 0.0)  # r1 twice: must never be applied
        return [*optimal(table), bogus], "planner"

    events = [
        registration("r1"),
        status("r1", "N1", 0.9),
        registration("r2"),
        status("r2", "N8", 0.9),
        *queued_task("t1", spec("N2")),
        *queued_task("t2", spec("N7")),
    ]
    state = SiteState(config=DispatchConfig(age_weight=0.0))
    for e in events:
        state, out = step(state, e.kind, e, T0, planner)
        assert out == []  # no map yet
    state, out = step(state, MAP, line_map(10, chargers=CHARGERS), T0, planner)  # the map: one batch
    assert calls == [(2, 2)]
    assert sorted(assigns(out)) == [("t1", "r1"), ("t2", "r2")]
    assert {d["planner"] for d in out} == {"planner"}


def comb_world(robots: dict[str, str], density: float) -> tuple[SiteState, list[Any]]:
    """An aisle L0..L9 with a parking pocket P<i> off each node: 10 lane nodes, so a cap of 2 robots with a
    task at density 0.2."""
    nodes = {f"L{i}": (i * 10.0, 0.0) for i in range(10)} | {f"P{i}": (i * 10.0, 5.0) for i in range(10)}
    lanes = [(f"L{i}", f"L{i + 1}") for i in range(9)] + [(f"L{i}", f"P{i}") for i in range(10)]
    record = site_map(nodes, lanes)
    for node in record["nodes"]:
        if node["id"].startswith("P"):
            node["kind"] = "PARKING"
    events: list[Any] = [record]
    for rid, node_id in robots.items():
        events += [registration(rid), status(rid, node_id, 0.9)]
    return run(events, SiteState(config=DispatchConfig(age_weight=0.0, max_busy_density=density)))


def test_parked_robots_are_called_out_only_while_the_lanes_have_room() -> None:
    robots = {"r1": "P1", "r2": "P2", "r3": "P3", "r4": "L8"}
    tasks = [e for i in range(4) for e in queued_task(f"t{i}", spec(f"L{i + 4}"))]
    state, _ = comb_world(robots, 0.2)
    assert state.busy_cap() == 2 and state.parked == {"r1", "r2", "r3"}
    state, out = run(tasks, state)
    # the robot out on the aisle first, then one parked robot for the one place left
    got = dict((r, t) for t, r in assigns(out))
    assert len(got) == 2 and "r4" in got and state.booked == set(got)
    (called,) = set(got) - {"r4"}
    # the robot out finishes and takes the next task: no parked robot is called out for it
    state, out = run(
        [task_event(got["r4"], 3, "ASSIGNED", robot_id="r4"), task_event(got["r4"], 4, "SUCCEEDED")], state
    )
    assert [r for _, r in assigns(out)] == ["r4"]
    # the parked robot that was called out goes offline: its place goes to another parked robot
    state, out = run([status(called, "P1", 0.9, "OFFLINE", at=T0 + 5)], state)
    assert [d["kind"] for d in out if d["kind"] == "UNASSIGN"] == ["UNASSIGN"]
    (again,) = [r for _, r in assigns(out)]
    assert again in {"r1", "r2", "r3"} - {called} and len(state.booked) == 2
    # without the cap every robot takes a task at once, the parked ones included
    state, _ = comb_world(robots, 0.0)
    state, out = run(tasks, state)
    assert state.busy_cap() is None and {r for _, r in assigns(out)} == set(robots)


def test_below_the_cap_the_nearest_robot_wins_parked_or_not() -> None:
    state, _ = comb_world({"parked": "P5", "out": "L0"}, 0.2)
    state, out = run(queued_task("t1", spec("L5")), state)
    assert assigns(out) == [("t1", "parked")]
