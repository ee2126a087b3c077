"""What a :class:`~schemas.sitegraph.SiteGraph` derives from its map once, at construction: dead ends,
the nodes and lanes of NO_GO zones, and the map's bounds."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from schemas.geometry import first_polygon_hits
from schemas.sitegraph.base import Bounds

__all__ = ["bounds", "dead_ends", "no_go"]


def dead_ends(
    neighbours: Sequence[Sequence[int]], tips: frozenset[int], key: Callable[[int], str]
) -> dict[int, tuple[int, ...]]:
    """For every node of a dead end, the nodes on the only way out (the junction last), walked from each
    tip in id order (a node on a chain between two tips gets the way of the tip later in id order)."""
    exits: dict[int, tuple[int, ...]] = {}
    for tip in sorted(tips, key=key):
        chain = [tip]
        prev, here = tip, neighbours[tip][0]
        while len(neighbours[here]) == 2 and here != tip:  # a corridor node: the dead end goes on
            chain.append(here)
            first, second = neighbours[here]
            prev, here = here, second if first == prev else first
        way = [*chain[1:], here]
        for i, node in enumerate(chain):
            exits[node] = tuple(way[i:])
    return exits


def no_go(
    site_map: Mapping[str, Any], xy: np.ndarray, ends: Mapping[str, tuple[int, int]]
) -> tuple[dict[int, str], dict[str, str]]:
    """The nodes inside, and the lanes entering, each NO_GO zone (a node or lane in several: the first
    zone in map order; see :func:`schemas.geometry.first_polygon_hits`)."""
    zones = [
        (str(zone["id"]), [(float(p["x"]), float(p["y"])) for p in zone.get("polygon") or ()])
        for zone in site_map.get("zones") or ()
        if zone.get("kind") == "NO_GO"
    ]
    zones = [(zone_id, polygon) for zone_id, polygon in zones if len(polygon) >= 3]
    if not zones:
        return {}, {}
    lane_ids = list(ends)
    us = np.array([ends[lane][0] for lane in lane_ids], dtype=np.int64)
    vs = np.array([ends[lane][1] for lane in lane_ids], dtype=np.int64)
    nodes, lanes = first_polygon_hits(xy, (us, vs), zones)
    return nodes, {lane_ids[k]: zone_id for k, zone_id in lanes.items()}


def bounds(site_map: Mapping[str, Any], version: int) -> Bounds | None:
    """The bounding box of the map's nodes and zone corners; None for a map with neither."""
    xs = [float(n["x"]) for n in site_map.get("nodes") or ()]
    ys = [float(n["y"]) for n in site_map.get("nodes") or ()]
    for zone in site_map.get("zones") or ():
        for point in zone.get("polygon") or ():
            xs.append(float(point["x"]))
            ys.append(float(point["y"]))
    if not xs:
        return None
    return Bounds(version, min(xs), min(ys), max(xs), max(ys))
