"""Unit tests of the traffic core: input kinds, the view of the site graph, reservation table, detection,
cycles."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.errors import RejectedRecord
from schemas.sitegraph import SiteGraph
from tests.unit.topologies.test_traffic_support import T0, feed, fresh, grid_map, site_map, status, task
from topologies.traffic import (
    OPEN,
    STATUS,
    TASK,
    TICK,
    Reservation,
    ReservationTable,
    SiteView,
    TrafficConfig,
    clash_between,
    clashes_of,
    conflict_id,
    find_cycle,
    plan_reservations,
    step,
    zone_hits,
)

CFG = TrafficConfig()


def view(site: dict[str, Any]) -> SiteView:
    return SiteView(SiteGraph(site))


class TestKinds:
    def test_the_kind_is_the_callers(self) -> None:
        state = fresh(grid_map(2, 1))
        record = dict(status("r", "n0_0", [("n1_0", 2)]))
        with pytest.raises(ValueError, match="not a traffic monitor input kind: 'registration'"):
            step(state, "registration", record, T0)
        with pytest.raises(ValueError, match="a tick carries no record"):
            step(state, TICK, record, T0)
        with pytest.raises(ValueError, match="a status input needs its record"):
            step(state, STATUS, None, T0)
        assert state.robots == {}
        step(state, STATUS, record, T0)
        assert list(state.robots) == ["r"]

    def test_a_task_in_a_terminal_state_drops_its_priority(self) -> None:
        state = fresh(grid_map(2, 1))
        step(state, TASK, dict(task("t", 7)), T0)
        assert state.tasks == {"t": 7}
        step(state, TASK, dict(task("t", 7, state="CANCELLED")), T0)  # schemas.records.TERMINAL_TASK_STATES
        assert state.tasks == {}


class TestSiteView:
    def test_one_way_lanes_are_driven_one_way(self) -> None:
        model = view(site_map({"a": (0, 0), "b": (1, 0)}, [("a", "b", False)]))
        assert model.lane_id("a", "b") == "a-b" and model.lane_id("b", "a") is None
        assert model.successors("a") == ("b",) and model.predecessors("a") == ()
        assert model.shortest_path("b", "a") is None
        assert model.shortest_path("a", "b") == (["a", "b"], 1.0)

    def test_shortest_path_avoids_nodes_lanes_and_respects_the_bound(self) -> None:
        model = view(grid_map(3, 3))
        path, length = model.shortest_path("n0_0", "n2_0") or ([], 0)
        assert path == ["n0_0", "n1_0", "n2_0"] and length == 4.0
        path, length = model.shortest_path("n0_0", "n2_0", avoid_nodes={"n1_0"}) or ([], 0)
        assert "n1_0" not in path and length == 8.0
        assert model.shortest_path("n0_0", "n2_0", avoid_nodes={"n1_0"}, max_length=7.9) is None
        path, _ = model.shortest_path("n0_0", "n2_0", avoid_lanes={"n0_0-n1_0"}) or ([], 0)
        assert path[:2] == ["n0_0", "n0_1"]

    def test_no_go_nodes_and_lanes(self) -> None:
        site = site_map(
            {"a": (0, 1), "m": (1, 1), "b": (3, 1), "c": (3, 3)},
            [("a", "m"), ("a", "b"), ("b", "c")],
            zones=[("z", [(0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (0.5, 1.5)])],
        )
        model = view(site)
        assert model.nogo_nodes == {"m": "z"}
        assert model.nogo_lanes == {"a-m": "z", "a-b": "z"}
        assert model.nogo_zones == {"z"}
        assert model.shortest_path("a", "m") is None

    def test_reach_nearest_first_and_blocked_nodes(self) -> None:
        model = view(grid_map(4, 1))  # n0_0 - n1_0 - n2_0 - n3_0, 2 m apart
        got = [(t, length) for t, _path, length in model.reach("n0_0", {"n3_0", "n1_0", "elsewhere"})]
        assert got == [("n1_0", 2.0), ("n3_0", 6.0)]
        # a blocked node is not driven through, but a target is never asked about
        assert list(model.reach("n0_0", {"n2_0"}, blocked=lambda n: n == "n1_0")) == []
        [(_t, path, _)] = model.reach("n0_0", {"n1_0"}, blocked=lambda n: True)
        assert path == ["n0_0", "n1_0"]

    def test_dead_ends_by_node_id(self) -> None:
        nodes = {"a": (0.0, 0.0), "b": (2.0, 0.0), "c": (4.0, 0.0), "d": (2.0, 2.0)}
        model = view(site_map(nodes, [("a", "b"), ("b", "c"), ("b", "d")]))
        assert model.tips == {"a", "c", "d"}
        assert model.exits == {"a": ("b",), "c": ("b",), "d": ("b",)}
        assert model.drive_ms("a", "b", 1.0) == 2000.0 and model.length("a", "c") == 4.0

    def test_a_map_that_is_not_a_graph_is_rejected(self) -> None:
        state = fresh(site_map({"a": (0, 0), "b": (2, 0)}, [("a", "b")]))
        bad = site_map({"a": (0, 0), "b": (2, 0)}, [("a", "b"), ("b", "ghost")], version=2)
        with pytest.raises(RejectedRecord, match="unknown node 'ghost'"):
            feed(state, bad)
        assert state.site_map is not None and state.site_map["version"] == 1  # the map in force stays


def _res(
    robot: str, key: str, start: int, end: int, frm: str = "", to: str = "", idx: int = 0
) -> Reservation:
    lane = bool(frm)
    return Reservation(robot, key, lane, start, end, frm or key, to or key, idx)


class TestReservations:
    def test_plan_reserves_nodes_with_margins_and_lanes_for_the_traversal(self) -> None:
        model = view(site_map({"a": (0, 0), "b": (2, 0), "c": (9, 9)}, [("a", "b")]))
        got = plan_reservations("r", [("a", 1000), ("b", 3000), ("c", 5000)], model, CFG)
        summary = [(r.key, r.lane, r.start, r.end, r.idx) for r in got]
        assert summary == [
            ("a", False, 500, 2500, 0),
            ("a-b", True, 1000, 3000, 0),
            ("b", False, 2500, 4500, 1),
            ("c", False, 4500, 6500, 2),  # no lane b-c on the map: no lane reservation
        ]
        held = plan_reservations("r", [("a", 1000)], model, CFG, open_end=True)
        assert held[0].open and held[0].end == OPEN

    def test_replace_touches_only_the_robot_and_its_nodes(self) -> None:
        table = ReservationTable()
        table.replace("r1", [_res("r1", "a", 0, 10), _res("r1", "b", 10, 20)])
        table.replace("r2", [_res("r2", "a", 5, 15)])
        table.replace("r1", [_res("r1", "c", 0, 10)])
        assert [r.robot_id for r in table.on_node("a")] == ["r2"]
        assert "b" not in table.by_node
        assert len(table) == 2
        table.remove("r2")
        assert "a" not in table.by_node and table.of("r2") == []


def _kind(a: Reservation, b: Reservation) -> str | None:
    clash = clash_between(a, b, CFG)
    return clash.kind if clash is not None else None


class TestClashes:
    def test_vertex_needs_overlapping_windows(self) -> None:
        assert _kind(_res("a", "n", 0, 10), _res("b", "n", 9, 20)) == "VERTEX"
        assert clash_between(_res("a", "n", 0, 10), _res("b", "n", 10, 20), CFG) is None

    def test_head_on_is_edge_and_same_direction_uses_headway(self) -> None:
        ab = _res("a", "L", 0, 4000, "x", "y")
        assert _kind(ab, _res("b", "L", 3000, 6000, "y", "x")) == "EDGE"
        assert clash_between(ab, _res("b", "L", 4000, 6000, "y", "x"), CFG) is None
        assert _kind(ab, _res("b", "L", 2999, 7000, "x", "y")) == "FOLLOWING"
        assert clash_between(ab, _res("b", "L", 3000, 7000, "x", "y"), CFG) is None
        overtaking = _res("b", "L", 3500, 3900, "x", "y")  # enters later, leaves earlier
        assert _kind(ab, overtaking) == "FOLLOWING"

    def test_clashes_of_one_robot_look_only_at_its_own_nodes(self) -> None:
        table = ReservationTable()
        table.replace("me", [_res("me", "a", 0, 10), _res("me", "b", 20, 30)])
        table.replace("x", [_res("x", "b", 25, 35)])
        table.replace("y", [_res("y", "a", 5, 8), _res("y", "z", 0, 100)])
        got = clashes_of(table, "me", CFG)
        assert [(c.other.robot_id, c.mine.key, c.start, c.end) for c in got] == [
            ("y", "a", 5, 8),
            ("x", "b", 25, 30),
        ]

    def test_zone_hits_prefer_the_node_inside(self) -> None:
        site = site_map(
            {"a": (0, 1), "m": (1, 1)},
            [("a", "m")],
            zones=[("z", [(0.5, 0.5), (1.5, 0.5), (1.5, 1.5), (0.5, 1.5)])],
        )
        model = view(site)
        hits = zone_hits(plan_reservations("r", [("a", 0), ("m", 1000)], model, CFG), model)
        assert [(h.zone_id, h.res.key) for h in hits] == [("z", "m")]


class TestCycles:
    def test_finds_the_cycle_through_the_start(self) -> None:
        waits = {"a": ["b"], "b": ["c"], "c": ["a", "d"], "d": []}
        assert find_cycle(waits, "a") == ["a", "b", "c"]
        assert find_cycle(waits, "d") is None

    def test_cycles_longer_than_the_bound_are_not_searched(self) -> None:
        ring = {f"r{i}": [f"r{(i + 1) % 6}"] for i in range(6)}
        assert find_cycle(ring, "r0", max_len=6) == [f"r{i}" for i in range(6)]
        assert find_cycle(ring, "r0", max_len=5) is None

    def test_a_node_cut_by_the_bound_is_searched_again_on_a_shorter_path(self) -> None:
        # d is first reached at depth 4 via a1-a2, where its way back (e -> s) is cut by the bound;
        # it must not be marked explored, so the 4-cycle s-z-d-e is still found.
        waits = {"s": ["a1", "z"], "a1": ["a2"], "a2": ["d"], "d": ["e"], "z": ["d"], "e": ["s"]}
        assert find_cycle(waits, "s", max_len=4) == ["s", "z", "d", "e"]

    def test_a_cycle_not_through_the_start_is_not_reported(self) -> None:
        assert find_cycle({"s": ["a"], "a": ["b"], "b": ["a"]}, "s") is None


def test_conflict_ids_are_deterministic_and_order_free() -> None:
    one = conflict_id("VERTEX", ["r2", "r1"], "node:c", T0, 10_000)
    assert one == conflict_id("VERTEX", ["r1", "r2"], "node:c", T0 + 1, 10_000)
    assert one != conflict_id("VERTEX", ["r1", "r2"], "node:c", T0 + 10_000, 10_000)
    assert one != conflict_id("EDGE", ["r1", "r2"], "node:c", T0, 10_000)
