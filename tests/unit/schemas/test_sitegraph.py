"""The shared site graph: lanes and directions, quickest paths both ways, A* around blocked lanes."""

from __future__ import annotations

import math

import pytest

from schemas.sitegraph import NoRouteError, SiteGraph, graph_for


def _map(lanes: list[tuple[str, str, bool]], version: int = 1, limit: dict[str, float] | None = None) -> dict:
    # a 3 x 2 grid, 2 m apart:  a b c / d e f ; plus a spur g off c
    pos = {"a": (0, 0), "b": (2, 0), "c": (4, 0), "d": (0, 2), "e": (2, 2), "f": (4, 2), "g": (6, 0)}
    return {
        "tenant_id": "t",
        "site_id": "s",
        "event_id": f"m{version}",
        "version": version,
        "nodes": [
            {"id": n, "x": x, "y": y, "kind": "PARKING" if n == "g" else "AISLE"} for n, (x, y) in pos.items()
        ],
        "lanes": [
            {
                "id": f"{u}{v}",
                "from_node": u,
                "to_node": v,
                "bidirectional": both,
                "speed_limit": (limit or {}).get(f"{u}{v}"),
            }
            for u, v, both in lanes
        ],
        "zones": [
            {
                "id": "z",
                "kind": "NO_GO",
                "polygon": [{"x": -1, "y": -3}, {"x": 1, "y": -3}, {"x": 0, "y": -2}],
            }
        ],
        "chargers": [{"id": "ch1", "node_id": "g"}],
    }


GRID = [("a", "b", True), ("b", "c", True), ("d", "e", True), ("e", "f", True), ("a", "d", True),
        ("b", "e", True), ("c", "f", True), ("c", "g", True)]  # fmt: skip


def test_quickest_paths_follow_lanes_and_directions() -> None:
    g = SiteGraph(_map(GRID))
    assert g.shortest_path("a", "f") in (["a", "b", "c", "f"], ["a", "b", "e", "f"], ["a", "d", "e", "f"])
    assert g.path_length(g.shortest_path("a", "f")) == pytest.approx(6.0)
    assert g.travel_s("a", "g") == pytest.approx(6.0)
    assert g.expand("a", ["c", "g"]) == ["b", "c", "g"]
    one_way = SiteGraph(_map([("a", "b", False), ("b", "c", True)]))
    assert one_way.shortest_path("a", "c") == ["a", "b", "c"]
    with pytest.raises(NoRouteError):
        one_way.shortest_path("c", "a")
    # distances *to* a node follow the lanes' directions too
    to_a = one_way.seconds_to(one_way.node("a"))
    assert to_a[one_way.node("a")] == 0 and math.isinf(to_a[one_way.node("b")])
    to_c = one_way.seconds_to(one_way.node("c"))
    assert to_c[one_way.node("a")] == pytest.approx(4.0)


def test_descend_follows_a_cost_to_go_without_a_search() -> None:
    g = SiteGraph(_map(GRID))
    i = g.node
    to_g = g.seconds_to(i("g"))
    path = g.descend(i("d"), to_g, 10)
    assert [g.ids[n] for n in path] in (["a", "b", "c", "g"], ["e", "b", "c", "g"], ["e", "f", "c", "g"])
    assert g.path_length(["d", *(g.ids[n] for n in path)]) == pytest.approx(g.travel_s("d", "g"))
    assert g.descend(i("d"), to_g, 2) == path[:2] and g.descend(i("g"), to_g, 5) == []
    # a cost-to-go with a detour (a node made dear): the way goes round it
    penalty = {i("b"): 100.0}
    dear = g.seconds_to_with(i("g"), penalty)
    assert [g.ids[n] for n in g.descend(i("a"), dear, 10, penalty)] == ["d", "e", "f", "c", "g"]
    one_way = SiteGraph(_map([("a", "b", False), ("b", "c", True)]))
    assert one_way.descend(one_way.node("c"), one_way.seconds_to(one_way.node("a")), 5) == []


def test_speed_limits_make_a_lane_slower() -> None:
    g = SiteGraph(_map(GRID, limit={"bc": 0.5}))
    assert g.travel_s("b", "c") == pytest.approx(4.0)  # 2 m at 0.5 m/s
    assert g.shortest_path("b", "c") == ["b", "c"]  # 4 s direct vs 6 s round
    assert g.shortest_path("a", "f") in (["a", "b", "e", "f"], ["a", "d", "e", "f"])


def test_astar_avoids_blocked_lanes_and_reaches_the_nearest_goal() -> None:
    g = SiteGraph(_map(GRID))
    a, c, f, b = g.node("a"), g.node("c"), g.node("f"), g.node("b")
    assert [g.ids[i] for i in g.astar(a, [c])] == ["a", "b", "c"]
    detour = g.astar(a, [c], blocked=lambda u, v: b in (u, v))
    assert [g.ids[i] for i in detour] == ["a", "d", "e", "f", "c"]
    assert g.astar(a, [c, g.node("d")]) == [a, g.node("d")]
    assert g.astar(a, [f], blocked=lambda u, v: True) == []


def test_lookups_tips_bounds_and_errors() -> None:
    g = SiteGraph(_map(GRID))
    assert g.tips == frozenset({g.node("g")})
    assert g.nodes_of_kind("PARKING") == ["g"]
    assert g.chargers == (("ch1", "g"),)
    assert g.nearest_node(3.9, 0.2) == "c"
    assert g.nearest("a", ["f", "g", "zz"]) == ("f", pytest.approx(6.0))
    assert g.bounds is not None and g.bounds.min_y == -3 and g.bounds.max_x == 6
    assert g.bounds.contains(7.5, 0, margin=2) and not g.bounds.contains(9, 0, margin=2)
    assert g.lane_between("c", "g").lane_id == "cg" and g.lane_between("g", "c").lane_id == "cg"
    with pytest.raises(NoRouteError):
        g.node("nope")
    bad = _map(GRID)
    bad["nodes"].append({"id": "a", "x": 9, "y": 9})
    with pytest.raises(ValueError, match="duplicate node id"):
        SiteGraph(bad)


def test_one_graph_per_map_version() -> None:
    m1, m2 = _map(GRID, 1), _map(GRID, 2)
    assert graph_for(m1) is graph_for(dict(m1))
    assert graph_for(m2) is not graph_for(m1)
    assert graph_for(m2).version == 2
