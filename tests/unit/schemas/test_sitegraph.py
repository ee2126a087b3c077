"""The shared site graph: lanes and directions, quickest paths both ways, dead ends, no-go zones, A*
searches around blocked lanes, avoided nodes and no-go zones."""

from __future__ import annotations

import math
from typing import Any

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


def _first_path(g: SiteGraph, a: int, goals: list[int], **kwargs: Any) -> list[str]:
    """The node ids of the first path ``reach`` yields (the nearest goal's), [] when it yields none."""
    for _goal, path, _cost in g.reach(a, goals, **kwargs):
        return [g.ids[i] for i in path]
    return []


def test_reach_avoids_blocked_lanes_and_yields_the_nearest_goal_first() -> None:
    g = SiteGraph(_map(GRID))
    a, c, f, b = g.node("a"), g.node("c"), g.node("f"), g.node("b")
    assert _first_path(g, a, [c]) == ["a", "b", "c"]
    assert _first_path(g, a, [c], blocked=lambda u, v: b in (u, v)) == ["a", "d", "e", "f", "c"]
    assert _first_path(g, a, [c, g.node("d")]) == ["a", "d"]
    assert _first_path(g, a, [f], blocked=lambda u, v: True) == []


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
    zoned = {**m1, "zones": [{"id": "z", "kind": "NO_GO", "polygon": [{"x": 1.5, "y": -1}, {"x": 2.5, "y": -1},
                                                                        {"x": 2.5, "y": 1}, {"x": 1.5, "y": 1}]}]}  # fmt: skip
    assert graph_for(zoned) is not graph_for(m1)  # the same event id with other zones: another graph
    graph = graph_for(zoned)
    assert graph.nogo_nodes == {graph.index["b"]: "z"} and not graph_for(m1).nogo_nodes


SQUARE = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]


def _zoned(*zones: tuple[str, str, list[tuple[float, float]]]) -> dict:
    site = _map(GRID)
    site["zones"] = [
        {"id": zid, "kind": kind, "polygon": [{"x": x, "y": y} for x, y in poly]} for zid, kind, poly in zones
    ]
    return site


def test_no_go_zones_give_the_nodes_inside_and_the_lanes_entering() -> None:
    # a box around e (2, 2); a sliver across the lane c-f (x = 4) that holds no node; a SLOW zone: ignored
    box = [(1.5, 1.5), (2.5, 1.5), (2.5, 2.5), (1.5, 2.5)]
    sliver = [(3.9, 0.9), (4.1, 0.9), (4.1, 1.1), (3.9, 1.1)]
    g = SiteGraph(_zoned(("box", "NO_GO", box), ("sliver", "NO_GO", sliver), ("slow", "SLOW", SQUARE)))
    assert dict(g.nogo_nodes) == {g.node("e"): "box"}
    assert dict(g.nogo_lanes) == {"de": "box", "ef": "box", "be": "box", "cf": "sliver"}
    assert g.nogo_zones == {"box", "sliver"}
    # a node in two zones belongs to the first; the graph's no-go maps cannot be changed
    twice = SiteGraph(_zoned(("z1", "NO_GO", box), ("z2", "NO_GO", box)))
    assert dict(twice.nogo_nodes) == {twice.node("e"): "z1"} and twice.nogo_zones == {"z1"}
    with pytest.raises(TypeError):
        g.nogo_nodes[0] = "x"  # type: ignore[index]


def test_dead_end_exits_lead_to_the_junction() -> None:
    # g hangs off c; h hangs off g: the dead end is h - g, its junction c
    site = _map([*GRID, ("g", "h", True)])
    site["nodes"].append({"id": "h", "x": 8, "y": 0})
    g = SiteGraph(site)
    i = g.node
    assert g.tips == {i("h")}
    assert dict(g.exits) == {i("h"): (i("g"), i("c")), i("g"): (i("c"),)}


def test_reach_keeps_out_of_no_go_zones_only_when_asked() -> None:
    box = [(1.5, 1.5), (2.5, 1.5), (2.5, 2.5), (1.5, 2.5)]
    g = SiteGraph(_zoned(("box", "NO_GO", box)))
    i = g.node
    [(_goal, through, _)] = g.reach(i("d"), [i("f")], cost="metres")
    assert [g.ids[n] for n in through] == ["d", "e", "f"]
    [(_goal, around, metres)] = g.reach(i("d"), [i("f")], cost="metres", keep_out=True)
    assert [g.ids[n] for n in around] == ["d", "a", "b", "c", "f"] and metres == pytest.approx(8.0)
    assert list(g.reach(i("d"), [i("e")], keep_out=True)) == []  # the goal is in the zone


def test_reach_yields_the_goals_nearest_first_with_their_costs() -> None:
    g = SiteGraph(_map(GRID, limit={"ab": 0.5}))  # a-b: 2 m at 0.5 m/s
    i = g.node
    got = [(g.ids[goal], cost) for goal, _path, cost in g.reach(i("a"), [i("g"), i("b"), i("e")])]
    assert got == [("b", pytest.approx(4.0)), ("e", pytest.approx(4.0)), ("g", pytest.approx(8.0))]
    by_metres = [(g.ids[goal], cost) for goal, _p, cost in g.reach(i("a"), [i("g"), i("b")], cost="metres")]
    assert by_metres == [("b", 2.0), ("g", 6.0)]
    # the caller may stop at any time: the search goes no further than asked
    search = g.reach(i("a"), [i("b"), i("g")], cost="metres")
    assert g.ids[next(search)[0]] == "b"
    search.close()


def test_reach_is_bounded_and_avoids_what_it_is_told_to() -> None:
    g = SiteGraph(_map(GRID))
    i = g.node
    [(_g, path, metres)] = g.reach(i("a"), [i("c")], cost="metres", avoid={i("b")})
    assert [g.ids[n] for n in path] == ["a", "d", "e", "f", "c"] and metres == 8.0
    assert list(g.reach(i("a"), [i("c")], cost="metres", avoid={i("b")}, max_cost=7.9)) == []
    [(_g, path, _)] = g.reach(i("a"), [i("c")], cost="metres", avoid_lanes={"ab"})
    assert [g.ids[n] for n in path] == ["a", "d", "e", "b", "c"]
    assert list(g.reach(i("a"), [i("g")], max_expansions=2)) == []  # a and b expanded: c not reached
    [(_g, path, _)] = g.reach(i("b"), [i("b")], avoid={i("b")})  # the start is never avoided
    assert path == [i("b")]


def test_reach_breaks_ties_by_node_id_whatever_the_map_order() -> None:
    # two equally short ways a -> f (a d e f, a b e f, a b c f); listing the nodes in reverse changes the
    # indices but not the path: ties go to the node first in id order
    forward = SiteGraph(_map(GRID))
    backward_map = _map(GRID)
    backward_map["nodes"].reverse()
    backward = SiteGraph(backward_map)
    paths = []
    for g in (forward, backward):
        [(_goal, path, _cost)] = g.reach(g.node("a"), [g.node("f")], cost="metres")
        paths.append([g.ids[n] for n in path])
    assert paths[0] == paths[1]
