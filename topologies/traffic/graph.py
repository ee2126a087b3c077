"""The site model the traffic topology plans on: nodes, directed lanes, no-go zones, bounded A*.

Built once per SiteMap version from its dict and cached in memory; every lookup is a dict access.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from topologies.traffic.geometry import Point, point_in_polygon, segment_hits_polygon

__all__ = ["SiteModel"]


@dataclass(slots=True)
class SiteModel:
    """A directed view of a SiteMap: a bidirectional lane is drivable both ways, a one-way lane one way.

    ``lane_of[(u, v)]`` is the lane driven from ``u`` to ``v``; ``nogo_nodes`` / ``nogo_lanes`` map the
    nodes inside, and the lanes crossing, a NO_GO zone to that zone's id.
    """

    site_id: str
    version: int
    pos: dict[str, Point]
    lane_of: dict[tuple[str, str], str]
    out: dict[str, list[tuple[str, str, float]]]
    nogo_nodes: dict[str, str] = field(default_factory=dict)
    nogo_lanes: dict[str, str] = field(default_factory=dict)
    nogo_zones: set[str] = field(default_factory=set)

    @classmethod
    def from_map(cls, site_map: Mapping[str, Any]) -> SiteModel:
        pos: dict[str, Point] = {n["id"]: (float(n["x"]), float(n["y"])) for n in site_map.get("nodes") or ()}
        lane_of: dict[tuple[str, str], str] = {}
        out: dict[str, list[tuple[str, str, float]]] = {n: [] for n in pos}
        ends_of: dict[str, tuple[str, str]] = {}
        for lane in site_map.get("lanes") or ():
            a, b = lane["from_node"], lane["to_node"]
            if a not in pos or b not in pos:
                continue
            length = math.dist(pos[a], pos[b])
            ends_of[lane["id"]] = (a, b)
            for u, v in ((a, b), (b, a)) if lane.get("bidirectional", True) else ((a, b),):
                lane_of[(u, v)] = lane["id"]
                out[u].append((v, lane["id"], length))
        model = cls(str(site_map.get("site_id", "")), int(site_map.get("version", 0)), pos, lane_of, out)
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
        return model

    def length(self, u: str, v: str) -> float:
        return math.dist(self.pos[u], self.pos[v])

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
