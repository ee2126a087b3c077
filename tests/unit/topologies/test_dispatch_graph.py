"""Site graph: travel times from coordinates, one-way lanes, speed limits, caching per map version."""

from __future__ import annotations

import math

import pytest

from tests.unit.topologies.test_dispatch_support import line_map, site_map
from topologies.dispatch.graph import SiteGraph, graph_for


def test_travel_time_is_lane_length_over_nominal_speed() -> None:
    g = SiteGraph(line_map(4, step=10.0), nominal_speed_mps=2.0)
    assert g.travel_s("N0", "N3") == pytest.approx(15.0)
    assert [n for n, _ in g.path("N0", "N3")] == ["N0", "N1", "N2", "N3"]
    assert g.path("N0", "N3")[-1][1] == pytest.approx(15.0)


def test_one_way_lane_forces_the_detour() -> None:
    nodes = {"A": (0, 0), "B": (10, 0), "C": (5, 10)}
    g = SiteGraph(site_map(nodes, [("A", "B", False), ("B", "C"), ("C", "A")]))
    assert g.travel_s("A", "B") == pytest.approx(10.0)
    assert [n for n, _ in g.path("B", "A")] == ["B", "C", "A"]
    assert g.travel_s("B", "A") == pytest.approx(2 * math.hypot(5, 10))


def test_speed_limit_slows_a_lane_and_paths_avoid_it() -> None:
    nodes = {"A": (0, 0), "B": (10, 0), "C": (5, 1)}
    g = SiteGraph(site_map(nodes, [("A", "B"), ("A", "C"), ("C", "B")], speed_limits={("A", "B"): 0.1}))
    assert [n for n, _ in g.path("A", "B")] == ["A", "C", "B"]


def test_unknown_or_unreachable_nodes_are_infinite() -> None:
    g = SiteGraph(site_map({"A": (0, 0), "B": (1, 0), "Z": (9, 9)}, [("A", "B")]))
    assert g.travel_s("A", "Z") == math.inf
    assert g.travel_s("A", "nope") == math.inf
    assert g.path("A", "Z") == []
    assert g.nearest(8.0, 8.5) == "Z"


def test_graph_is_cached_per_site_and_version() -> None:
    v1 = line_map(3)
    assert graph_for(v1) is graph_for(dict(v1))
    v2 = {**v1, "version": 2, "event_id": "map-2"}
    assert graph_for(v2) is not graph_for(v1)
