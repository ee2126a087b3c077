"""Checks a site map before it is produced, and lists every problem with its field path.

- ids are unique (nodes, lanes, zones, chargers), coordinates finite;
- every lane joins two distinct known nodes; every charger sits on a known node;
- every station and charger can reach every other one along the lanes (respecting one-way lanes);
- zones are well-formed polygons: at least 3 corners, finite, no repeated corner, non-zero area,
  no self-intersection.
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from collections.abc import Iterable

from gateway.models import PointIn as Point
from gateway.models import SiteMapIn
from schemas.geometry import segments_intersect
from schemas.models import NodeKind

__all__ = ["Problem", "check_site_map"]

Problem = tuple[tuple[str | int, ...], str]


def _duplicates(kind: str, ids: Iterable[str]) -> list[Problem]:
    seen: dict[str, int] = {}
    problems: list[Problem] = []
    for i, item_id in enumerate(ids):
        if item_id in seen:
            problems.append(((kind, i, "id"), f"duplicate id {item_id!r} (first at {kind}[{seen[item_id]}])"))
        else:
            seen[item_id] = i
    return problems


def _polygon_problems(z: int, polygon: list[Point]) -> list[Problem]:
    loc = ("zones", z, "polygon")
    if len(polygon) < 3:
        return [(loc, f"a polygon needs at least 3 corners, got {len(polygon)}")]
    problems: list[Problem] = []
    for i, p in enumerate(polygon):
        if not (math.isfinite(p.x) and math.isfinite(p.y)):
            problems.append(((*loc, i), "corner coordinates must be finite"))
    if problems:
        return problems
    seen: dict[tuple[float, float], int] = {}
    for i, p in enumerate(polygon):
        if (p.x, p.y) in seen:
            problems.append(((*loc, i), f"corner repeats corner {seen[(p.x, p.y)]}"))
        seen.setdefault((p.x, p.y), i)
    if problems:
        return problems
    n = len(polygon)
    for i in range(n if n > 3 else 0):
        a1, a2 = polygon[i], polygon[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i or (j + 1) % n == i or (i + 1) % n == j:
                continue  # adjacent edges share a corner
            b1, b2 = polygon[j], polygon[(j + 1) % n]
            if segments_intersect((a1.x, a1.y), (a2.x, a2.y), (b1.x, b1.y), (b2.x, b2.y)):
                problems.append((loc, f"polygon edges {i} and {j} cross (self-intersecting polygon)"))
                return problems
    area = sum(a.x * b.y - b.x * a.y for a, b in zip(polygon, polygon[1:] + polygon[:1], strict=True)) / 2
    if abs(area) < 1e-12:
        problems.append((loc, "polygon has zero area (corners are collinear)"))
    return problems


def check_site_map(site_map: SiteMapIn) -> list[Problem]:
    """Every problem of ``site_map`` as ``(field path, message)``; empty when the map is valid."""
    problems: list[Problem] = []
    problems += _duplicates("nodes", (n.id for n in site_map.nodes))
    problems += _duplicates("lanes", (lane.id for lane in site_map.lanes))
    problems += _duplicates("zones", (zone.id for zone in site_map.zones))
    problems += _duplicates("chargers", (c.id for c in site_map.chargers))
    for i, node in enumerate(site_map.nodes):
        for axis in ("x", "y"):
            if not math.isfinite(getattr(node, axis)):
                problems.append((("nodes", i, axis), "coordinate must be finite"))

    known = {n.id for n in site_map.nodes}
    graph: dict[str, set[str]] = defaultdict(set)
    for i, lane in enumerate(site_map.lanes):
        ok = True
        for end in ("from_node", "to_node"):
            node_id = getattr(lane, end)
            if node_id not in known:
                problems.append((("lanes", i, end), f"unknown node {node_id!r}"))
                ok = False
        if lane.from_node == lane.to_node:
            problems.append((("lanes", i, "to_node"), "a lane must join two different nodes"))
            ok = False
        if lane.speed_limit is not None and not (math.isfinite(lane.speed_limit) and lane.speed_limit > 0):
            problems.append((("lanes", i, "speed_limit"), "speed limit must be a positive number"))
        if ok:
            graph[lane.from_node].add(lane.to_node)
            if lane.bidirectional:
                graph[lane.to_node].add(lane.from_node)

    key_nodes: dict[str, tuple[str | int, ...]] = {}
    for i, node in enumerate(site_map.nodes):
        if node.kind in (NodeKind.STATION, NodeKind.CHARGER):
            key_nodes.setdefault(node.id, ("nodes", i))
    for i, charger in enumerate(site_map.chargers):
        if charger.node_id not in known:
            problems.append((("chargers", i, "node_id"), f"unknown node {charger.node_id!r}"))
        else:
            key_nodes.setdefault(charger.node_id, ("chargers", i, "node_id"))

    targets = set(key_nodes)
    for source, loc in key_nodes.items():
        reached = {source}
        queue = deque([source])
        while queue:
            for nxt in graph[queue.popleft()]:
                if nxt not in reached:
                    reached.add(nxt)
                    queue.append(nxt)
        missing = sorted(targets - reached)
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            problems.append((loc, f"station/charger {source!r} cannot reach {shown} along the lanes"))

    for z, zone in enumerate(site_map.zones):
        problems += _polygon_problems(z, zone.polygon)
    return [(("body", *loc), msg) for loc, msg in problems]
