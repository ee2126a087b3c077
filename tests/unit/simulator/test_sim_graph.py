from __future__ import annotations

import itertools
from typing import Any

import pytest

from pipelines.simulator import NoRouteError, SiteGraph


def _map() -> dict[str, Any]:
    #  a --- b --- c
    #  |           ^ (one-way d -> c)
    #  +---- d ----+        e (isolated)
    nodes = [("a", 0, 0), ("b", 2, 0), ("c", 4, 0), ("d", 2, -3), ("e", 9, 9)]
    lanes = [("a", "b", True), ("b", "c", True), ("a", "d", True), ("d", "c", False)]
    return {
        "site_id": "s",
        "version": 1,
        "nodes": [{"id": i, "x": x, "y": y, "kind": "WAYPOINT", "name": None} for i, x, y in nodes],
        "lanes": [
            {"id": f"{a}{b}", "from_node": a, "to_node": b, "bidirectional": bi, "speed_limit": None}
            for a, b, bi in lanes
        ],
        "zones": [],
        "chargers": [{"id": "CH", "node_id": "d"}],
    }


def test_shortest_path_minimises_lane_length() -> None:
    g = SiteGraph(_map())
    assert g.shortest_path("a", "c") == ["a", "b", "c"]
    assert g.path_length(["a", "b", "c"]) == pytest.approx(4.0)
    assert g.shortest_path("a", "a") == ["a"]


def test_one_way_lanes_are_respected() -> None:
    g = SiteGraph(_map())
    assert g.shortest_path("d", "c") == ["d", "c"]
    assert g.shortest_path("c", "d") == ["c", "b", "a", "d"]  # not against the one-way lane
    with pytest.raises(NoRouteError):
        g.edge("c", "d")


def test_unreachable_and_unknown_nodes_raise() -> None:
    g = SiteGraph(_map())
    with pytest.raises(NoRouteError):
        g.shortest_path("a", "e")
    with pytest.raises(NoRouteError):
        g.shortest_path("a", "nowhere")


def test_expand_fills_gaps_between_sparse_waypoints() -> None:
    g = SiteGraph(_map())
    assert g.expand("a", ["c", "d"]) == ["b", "c", "b", "a", "d"]
    assert g.expand("a", ["a", "b"]) == ["b"]


def test_nearest_by_driving_distance_not_straight_line() -> None:
    g = SiteGraph(_map())
    # From c, d is 3.6 m away in a straight line but 7 m by lanes; b is 2 m.
    assert g.nearest("c", ["d", "b"]) == ("b", pytest.approx(2.0))
    assert g.nearest("a", ["e"]) is None
    assert g.chargers == {"d": "CH"}


def test_bad_maps_are_refused() -> None:
    m = _map()
    m["lanes"].append(
        {"id": "x", "from_node": "a", "to_node": "zz", "bidirectional": True, "speed_limit": None}
    )
    with pytest.raises(ValueError, match="unknown node"):
        SiteGraph(m)


def test_routes_on_the_demo_map_follow_lanes(graph: SiteGraph) -> None:
    path = graph.shortest_path("P01", "DROP3")
    assert path[0] == "P01" and path[-1] == "DROP3"
    assert all(graph.has_edge(a, b) for a, b in itertools.pairwise(path))
