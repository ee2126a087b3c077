"""The site model the traffic topology plans on: nodes, directed lanes, no-go zones, bounded A*.

Built once per SiteMap version from its dict and cached in memory; every lookup is a dict access.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from topologies.traffic.geometry import Point, point_in_polygon, segment_hits_polygon

__all__ = ["SiteModel"]


@dataclass(slots=True)
class SiteModel:
    """A directed view of a SiteMap: a bidirectional lane is drivable both ways, a one-way lane one way.

    ``lane_of[(u, v)]`` is the lane driven from ``u`` to ``v``; ``nogo_nodes`` / ``nogo_lanes`` map the
    nodes inside, and the lanes crossing, a NO_GO zone to that zone's id. ``exits[n]`` are the nodes a
    robot standing at ``n`` in a dead end (a spur, or a chain of nodes leading to one) must pass to get
    out, up to and including the junction where the dead end meets the rest of the site; ``tips`` are the
    ends of the dead ends (docks, parking spots, chargers: where robots stop). ``limit[lane_id]`` is a
    lane's speed limit (m/s), where it has one.
    """

    site_id: str
    version: int
    pos: dict[str, Point]
    lane_of: dict[tuple[str, str], str]
    out: dict[str, list[tuple[str, str, float]]]
    nogo_nodes: dict[str, str] = field(default_factory=dict)
    nogo_lanes: dict[str, str] = field(default_factory=dict)
    nogo_zones: set[str] = field(default_factory=set)
    exits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tips: frozenset[str] = frozenset()
    limit: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_map(cls, site_map: Mapping[str, Any]) -> SiteModel:
        pos: dict[str, Point] = {n["id"]: (float(n["x"]), float(n["y"])) for n in site_map.get("nodes") or ()}
        lane_of: dict[tuple[str, str], str] = {}
        out: dict[str, list[tuple[str, str, float]]] = {n: [] for n in pos}
        ends_of: dict[str, tuple[str, str]] = {}
        limits: dict[str, float] = {}
        for lane in site_map.get("lanes") or ():
            a, b = lane["from_node"], lane["to_node"]
            if a not in pos or b not in pos:
                continue
            length = math.dist(pos[a], pos[b])
            ends_of[lane["id"]] = (a, b)
            if lane.get("speed_limit"):
                limits[lane["id"]] = float(lane["speed_limit"])
            for u, v in ((a, b), (b, a)) if lane.get("bidirectional", True) else ((a, b),):
                lane_of[(u, v)] = lane["id"]
                out[u].append((v, lane["id"], length))
        model = cls(str(site_map.get("site_id", "")), int(site_map.get("version", 0)), pos, lane_of, out)
        model.limit = limits
        for zone in site_map.get("zones") or ():
            if zone.get("kind") != "NO_GO":
                continue
            polygon = [(float(p["x"]), float(p["y"])) for p in zone.get("polygon") or ()]
            if len(polygon) < 3:
                continue
            for node_id, p in pos.items():
                if point_in_polygon(p, polygon):
                    model.nogo_nodes.setdefault(node_id, zone["id"])
            for lane_id, (a, b) in ends_of.items():
                if segment_hits_polygon(pos[a], pos[b], polygon):
                    model.nogo_lanes.setdefault(lane_id, zone["id"])
        model.nogo_zones = set(model.nogo_nodes.values()) | set(model.nogo_lanes.values())
        model.exits, model.tips = _dead_ends(out)
        return model

    def length(self, u: str, v: str) -> float:
        return math.dist(self.pos[u], self.pos[v])

    def drive_ms(self, u: str, v: str, speed_mps: float) -> float:
        """How long driving from ``u`` to ``v`` takes at ``speed_mps`` (or the lane's lower limit)."""
        lane = self.lane_of.get((u, v))
        limit = self.limit.get(lane, speed_mps) if lane is not None else speed_mps
        return self.length(u, v) / min(speed_mps, limit) * 1000

    def shortest_path(
        self,
        start: str,
        goal: str,
        *,
        avoid_nodes: Collection[str] = (),
        avoid_lanes: Collection[str] = (),
        max_length: float = math.inf,
        blocked: Callable[[str], bool] | None = None,
    ) -> tuple[list[str], float] | None:
        """The shortest node path ``start`` → ``goal`` avoiding the given nodes/lanes and no-go zones.

        A* with the straight-line distance (admissible: lanes are straight). Gives up, returning None,
        when no path is shorter than ``max_length``. ``start`` itself is never avoided; ``blocked`` is
        asked about every other node reached (e.g. "does a robot stand there") and avoids it if true.
        """
        if start not in self.pos or goal not in self.pos or goal in avoid_nodes or goal in self.nogo_nodes:
            return None
        gx, gy = self.pos[goal]
        best: dict[str, float] = {start: 0.0}
        parent: dict[str, str] = {}
        heap: list[tuple[float, float, str]] = [(math.dist(self.pos[start], (gx, gy)), 0.0, start)]
        while heap:
            f, g, u = heapq.heappop(heap)
            if f > max_length:
                return None
            if u == goal:
                path = [u]
                while u in parent:
                    u = parent[u]
                    path.append(u)
                path.reverse()
                return path, g
            if g > best.get(u, math.inf):
                continue
            for v, lane_id, w in self.out.get(u, ()):
                if (
                    v in avoid_nodes
                    or v in self.nogo_nodes
                    or lane_id in avoid_lanes
                    or lane_id in self.nogo_lanes
                    or (blocked is not None and v != goal and blocked(v))
                ):
                    continue
                ng = g + w
                if ng < best.get(v, math.inf):
                    best[v] = ng
                    parent[v] = u
                    x, y = self.pos[v]
                    heapq.heappush(heap, (ng + math.hypot(gx - x, gy - y), ng, v))
        return None

    def reach(
        self,
        start: str,
        targets: Collection[str],
        *,
        avoid_nodes: Collection[str] = (),
        avoid_lanes: Collection[str] = (),
        max_length: float = math.inf,
        blocked: Callable[[str], bool] | None = None,
    ) -> Iterator[tuple[str, list[str], float]]:
        """Shortest paths from ``start`` to each of ``targets`` it reaches within ``max_length``, nearest
        first, as ``(target, path, length)`` (A* towards the nearest target, stopping once every target
        is settled or when the caller stops asking), with the avoidance rules of :meth:`shortest_path`
        (``blocked`` is not asked about targets)."""
        wanted = {t for t in targets if t in self.pos}
        if start not in self.pos or not wanted:
            return
        goals = [self.pos[t] for t in wanted]

        def h(node: str) -> float:  # admissible and consistent: straight lines to the nearest target
            x, y = self.pos[node]
            return min(math.hypot(gx - x, gy - y) for gx, gy in goals)

        best: dict[str, float] = {start: 0.0}
        parent: dict[str, str] = {}
        heap: list[tuple[float, float, str]] = [(h(start), 0.0, start)]
        while heap and wanted:
            f, g, u = heapq.heappop(heap)
            if g > best.get(u, math.inf) or f > max_length:
                if f > max_length:
                    return
                continue
            if u in wanted:
                wanted.discard(u)
                yield u, _path(parent, u), g
            for v, lane_id, w in self.out.get(u, ()):
                ng = g + w
                if (
                    ng > max_length
                    or v in avoid_nodes
                    or v in self.nogo_nodes
                    or lane_id in avoid_lanes
                    or lane_id in self.nogo_lanes
                    or (blocked is not None and v not in targets and blocked(v))
                ):
                    continue
                if ng < best.get(v, math.inf):
                    best[v] = ng
                    parent[v] = u
                    heapq.heappush(heap, (ng + h(v), ng, v))


def _path(parent: dict[str, str], node: str) -> list[str]:
    path = [node]
    while node in parent:
        node = parent[node]
        path.append(node)
    path.reverse()
    return path


def _dead_ends(
    out: dict[str, list[tuple[str, str, float]]],
) -> tuple[dict[str, tuple[str, ...]], frozenset[str]]:
    """For every node of a dead end, the nodes on the only way out (the junction last); and the tips."""
    near: dict[str, set[str]] = {n: set() for n in out}
    for u, edges in out.items():
        for v, _lane, _length in edges:
            near[u].add(v)
            near[v].add(u)
    exits: dict[str, tuple[str, ...]] = {}
    tips = frozenset(n for n, ns in near.items() if len(ns) == 1)
    for tip in sorted(tips):
        chain = [tip]
        prev, here = tip, next(iter(near[tip]))
        while len(near[here]) == 2 and here != tip:  # a corridor node: the dead end goes on
            chain.append(here)
            prev, here = here, next(n for n in near[here] if n != prev)
        way = [*chain[1:], here]
        for i, node in enumerate(chain):
            exits[node] = tuple(way[i:])
    return exits, tips
