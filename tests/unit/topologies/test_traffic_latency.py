"""Traffic decisions take time to reach a robot (``latency_ms``) and robots drive on meanwhile: where a
HOLD can still stop a robot, robots that have not set off yet, and robots seen between two nodes."""

from __future__ import annotations

from typing import Any

from tests.unit.topologies.test_traffic_support import (
    T0,
    Record,
    S,
    conflicts,
    decisions,
    feed,
    fresh,
    site_map,
    status,
)
from topologies.traffic import TrafficConfig

# A four-way crossing C with arms of three nodes, 2 m apart; W3 and S3 are the ends of their arms.
CROSS = site_map(
    {
        "C": (0, 0),
        **{f"W{i}": (-2.0 * i, 0) for i in (1, 2, 3)},
        **{f"E{i}": (2.0 * i, 0) for i in (1, 2, 3)},
        **{f"S{i}": (0, -2.0 * i) for i in (1, 2, 3)},
        **{f"N{i}": (0, 2.0 * i) for i in (1, 2, 3)},
    },
    [
        ("W3", "W2"), ("W2", "W1"), ("W1", "C"), ("C", "E1"), ("E1", "E2"), ("E2", "E3"),
        ("S3", "S2"), ("S2", "S1"), ("S1", "C"), ("C", "N1"), ("N1", "N2"), ("N2", "N3"),
    ],
)  # fmt: skip
LATE = TrafficConfig(latency_ms=1_500)


def _moving(robot_id: str, node: str | None, route: list[tuple[str, float]], **kw: Any) -> Record:
    record = status(robot_id, node, route, **kw)
    record["speed"] = 1.0
    return record


def test_a_hold_is_placed_where_the_robot_still_is_when_the_decision_reaches_it() -> None:
    # r2 reaches S1 in 2 s: held there if the HOLD reaches it in time, else r1 is held instead.
    for latency, held, node in ((0, "r2", "S1"), (1_500, "r2", "S1"), (2_500, "r1", "W1")):
        state = fresh(CROSS, TrafficConfig(latency_ms=latency))
        feed(state, _moving("r1", "W3", [("W2", 2), ("W1", 4), ("C", 6), ("E1", 8)], task_id="a"))
        out = feed(state, _moving("r2", "S3", [("S2", 1), ("S1", 2), ("C", 6), ("N1", 8)], task_id="b"))
        [hold] = decisions(out, "HOLD")
        assert (hold["robot_id"], hold["route"][-1]["node_id"]) == (held, node), latency


def test_a_robot_too_close_to_stop_keeps_going_and_the_other_one_waits() -> None:
    # r2 is 0.5 s from the crossing: with 1.5 s of latency it cannot be stopped, so r1 (right of way)
    # is held instead, before the crossing.
    state = fresh(CROSS, LATE)
    feed(state, _moving("r1", "W3", [("W2", 2), ("W1", 4), ("C", 6), ("E1", 8)], task_id="a"))
    out = feed(state, _moving("r2", "S1", [("C", 6), ("N1", 8)], task_id="b"))
    [c] = conflicts(out)
    assert (c["kind"], c["node_id"], c["resolution"], c["resolved_robot_id"]) == ("VERTEX", "C", "HOLD", "r1")
    [hold] = decisions(out, "HOLD")
    assert hold["robot_id"] == "r1" and hold["route"][-1]["node_id"] in {"W2", "W1"}


def test_a_robot_about_to_set_off_waits_at_its_start_for_one_on_its_way() -> None:
    # r2 stands at the end of the S arm and reports its departure in 3 s (its route starts with S3):
    # it yields to r1, already on its way, and waits where it stands.
    state = fresh(CROSS, LATE)
    feed(state, _moving("r1", "W3", [("W2", 2), ("W1", 4), ("C", 6), ("E1", 8)], task_id="a"))
    out = feed(state, status("r2", "S3", [("S3", 3), ("S2", 5), ("S1", 6), ("C", 7), ("N1", 9)], task_id="z"))
    [hold] = decisions(out, "HOLD")
    assert (hold["robot_id"], hold["route"]) == ("r2", [])
    assert state.robots["r2"]["hold"]["node"] == "S3"
    # once r1 has passed the crossing, r2 goes
    [resume] = decisions(feed(state, None, at=T0 + 12 * S), "RESUME")
    assert resume["robot_id"] == "r2"


def test_a_robot_between_two_nodes_reserves_the_lane_it_is_on() -> None:
    state = fresh(CROSS, LATE)
    record = _moving("r1", None, [("W1", 1), ("C", 3)], task_id="a")
    record["pose"].update({"x": -3.0, "y": 0.0})  # halfway from W2 to W1, at 1 m/s
    feed(state, record)
    entry = state.robots["r1"]
    assert entry["passed"] == ["W2", T0 - 1_000]
    lanes = {(r.frm, r.to) for r in state.table.of("r1") if r.lane}
    assert ("W2", "W1") in lanes
    # a robot that would enter that lane head-on is in conflict with it now
    out = feed(state, _moving("r2", "W1", [("W2", 1), ("W3", 3)], task_id="b"))
    assert any(c["kind"] == "EDGE" and c["lane_id"] == "W2-W1" for c in conflicts(out))
