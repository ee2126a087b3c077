from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

from pipelines.simulator import demo_site
from pipelines.simulator.geometry import distance
from schemas.geometry import point_in_polygon, segment_hits_polygon
from schemas.models import SiteMap
from schemas.sitegraph import SiteGraph


def test_demo_site_is_a_large_grid_with_every_kind_of_node(site_map: dict[str, Any]) -> None:
    kinds = Counter(n["kind"] for n in site_map["nodes"])
    assert len(site_map["nodes"]) >= 100
    assert kinds["AISLE"] >= 60
    assert kinds["PICKUP"] >= 2 and kinds["DROPOFF"] >= 2
    assert kinds["CHARGER"] >= 4 and kinds["PARKING"] >= 20
    assert site_map["version"] == 1
    assert site_map["site_id"] == "demo" and site_map["tenant_id"] == "acme"
    ids = [n["id"] for n in site_map["nodes"]]
    assert len(ids) == len(set(ids))
    lane_ids = [lane["id"] for lane in site_map["lanes"]]
    assert len(lane_ids) == len(set(lane_ids))


def test_aisles_are_parallel_with_cross_aisles_at_both_ends_and_the_middle(site_map: dict[str, Any]) -> None:
    aisle_xs = sorted({n["x"] for n in site_map["nodes"] if n["kind"] == "AISLE"})
    assert len(aisle_xs) == 10
    pitches = {round(b - a, 6) for a, b in itertools.pairwise(aisle_xs)}
    assert pitches == {4.0}
    junction_ys = Counter(n["y"] for n in site_map["nodes"] if n["id"].startswith("X"))
    assert junction_ys == {0.0: 10, 15.0: 10, 30.0: 10}


def test_chargers_point_at_charger_nodes(site_map: dict[str, Any]) -> None:
    charger_nodes = {n["id"] for n in site_map["nodes"] if n["kind"] == "CHARGER"}
    assert {c["node_id"] for c in site_map["chargers"]} == charger_nodes
    assert len({c["id"] for c in site_map["chargers"]}) == len(site_map["chargers"])


def test_lanes_join_adjacent_nodes_with_lengths_from_coordinates(
    site_map: dict[str, Any], graph: SiteGraph
) -> None:
    for lane in site_map["lanes"]:
        a, b = graph.position(lane["from_node"]), graph.position(lane["to_node"])
        length = graph.lane_between(lane["from_node"], lane["to_node"]).length
        assert math.isclose(length, distance(a, b))
        assert 1.0 <= length <= 6.0, lane  # neighbours only, no long jumps across the map
        # A lane is axis-aligned: along an aisle, a cross-aisle, a corridor or a spur.
        assert a[0] == b[0] or a[1] == b[1], lane


def test_mostly_bidirectional_with_a_few_one_way_lanes(site_map: dict[str, Any], graph: SiteGraph) -> None:
    one_way = [lane for lane in site_map["lanes"] if not lane["bidirectional"]]
    assert 2 <= len(one_way) <= len(site_map["lanes"]) // 10
    lane = one_way[0]
    assert graph.has_lane(lane["from_node"], lane["to_node"])
    assert not graph.has_lane(lane["to_node"], lane["from_node"])


def test_every_node_reaches_every_node(site_map: dict[str, Any], graph: SiteGraph) -> None:
    parking = graph.nodes_of_kind("PARKING")[0]
    assert all(math.isfinite(s) for s in graph.seconds_from(graph.node(parking)))
    # ...and back: every node reaches that parking spot (strong connectivity, one-way lanes included).
    for node in graph.ids:
        assert graph.shortest_path(node, parking)[-1] == parking


def test_stations_and_chargers_are_reachable_from_every_parking_spot(graph: SiteGraph) -> None:
    targets = graph.nodes_of_kind("PICKUP", "DROPOFF", "CHARGER")
    for spot in graph.nodes_of_kind("PARKING"):
        dist = graph.seconds_from(graph.node(spot))
        assert all(math.isfinite(dist[graph.node(t)]) for t in targets)


def test_no_go_zone_covers_no_lane_and_no_node(site_map: dict[str, Any], graph: SiteGraph) -> None:
    zones = [z for z in site_map["zones"] if z["kind"] == "NO_GO"]
    assert len(zones) == 1
    polygon = [(p["x"], p["y"]) for p in zones[0]["polygon"]]
    assert len(polygon) >= 3
    for lane in site_map["lanes"]:
        a, b = graph.position(lane["from_node"]), graph.position(lane["to_node"])
        assert not segment_hits_polygon(a, b, polygon), lane["id"]
    assert not any(point_in_polygon(graph.position(n), polygon) for n in graph.ids)
    # It is inside the warehouse, between the aisles, not somewhere off the map.
    xs = [n["x"] for n in site_map["nodes"]]
    ys = [n["y"] for n in site_map["nodes"]]
    assert all(min(xs) < x < max(xs) and min(ys) < y < max(ys) for x, y in polygon)


def test_same_arguments_give_the_same_map_and_the_seed_varies_it() -> None:
    assert demo_site(seed=3) == demo_site(seed=3)
    a, b = demo_site(seed=0), demo_site(seed=1)
    assert [n["id"] for n in a["nodes"]] == [n["id"] for n in b["nodes"]]
    assert a["event_id"] != b["event_id"]
    one_way = [{lane["id"] for lane in m["lanes"] if not lane["bidirectional"]} for m in (a, b)]
    zones = [m["zones"] for m in (a, b)]
    assert one_way[0] != one_way[1] or zones[0] != zones[1]


def test_site_and_tenant_ids_and_sizes_are_parameters() -> None:
    m = demo_site("dc-7", "globex", aisles=6, parking_spots=12, chargers=4, occurred_at=1_700_000_000_000)
    assert (m["site_id"], m["tenant_id"], m["occurred_at"]) == ("dc-7", "globex", 1_700_000_000_000)
    kinds = Counter(n["kind"] for n in m["nodes"])
    assert (kinds["PARKING"], kinds["CHARGER"], len(m["chargers"])) == (12, 4, 4)
    assert len(m["nodes"]) >= 100


def test_map_fits_the_avro_schema_and_the_pydantic_model(site_map: dict[str, Any], avro_roundtrip) -> None:
    assert avro_roundtrip("SiteMap", site_map) == site_map
    model = SiteMap.model_validate(site_map)
    assert len(model.nodes) == len(site_map["nodes"])
