"""The site graph as the simulator drives it: directed lanes weighted by length, Dijkstra routes."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.errors import FleetError

from .geometry import Point, distance

__all__ = ["Edge", "NoRouteError", "SiteGraph"]


class NoRouteError(FleetError):
    """No sequence of lanes leads from one node to another (unknown node or one-way dead end)."""


@dataclass(frozen=True, slots=True)
class Edge:
    """One drivable direction of a lane."""

    lane_id: str
    from_node: str
    to_node: str
    length: float
    speed_limit: float | None


class SiteGraph:
    """A directed view of a SiteMap dict: a bidirectional lane gives two edges, a one-way lane one."""

    def __init__(self, site_map: Mapping[str, Any]) -> None:
        self.site_id: str = site_map["site_id"]
        self.version: int = site_map["version"]
        self._pos: dict[str, Point] = {}
        self._kind: dict[str, str] = {}
        for node in site_map["nodes"]:
            if node["id"] in self._pos:
                raise ValueError(f"duplicate node id {node['id']!r}")
            self._pos[node["id"]] = (float(node["x"]), float(node["y"]))
            self._kind[node["id"]] = node.get("kind") or "WAYPOINT"
        self._out: dict[str, list[Edge]] = {n: [] for n in self._pos}
        self._edges: dict[tuple[str, str], Edge] = {}
        for lane in site_map["lanes"]:
            a, b = lane["from_node"], lane["to_node"]
            for n in (a, b):
                if n not in self._pos:
                    raise ValueError(f"lane {lane['id']!r} references unknown node {n!r}")
            length = distance(self._pos[a], self._pos[b])
            ends = [(a, b), (b, a)] if lane.get("bidirectional", True) else [(a, b)]
            for u, v in ends:
                edge = Edge(lane["id"], u, v, length, lane.get("speed_limit"))
                self._edges[(u, v)] = edge
                self._out[u].append(edge)
        for edges in self._out.values():
            edges.sort(key=lambda e: e.to_node)
        self.chargers: dict[str, str] = {c["node_id"]: c["id"] for c in site_map.get("chargers", [])}

    # -- lookups -------------------------------------------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return list(self._pos)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._pos

    def position(self, node_id: str) -> Point:
        return self._pos[node_id]

    def kind(self, node_id: str) -> str:
        return self._kind[node_id]

    def nodes_of_kind(self, *kinds: str) -> list[str]:
        return [n for n, k in self._kind.items() if k in kinds]

    def edges_from(self, node_id: str) -> list[Edge]:
        return list(self._out[node_id])

    def edge(self, from_node: str, to_node: str) -> Edge:
        try:
            return self._edges[(from_node, to_node)]
        except KeyError:
            raise NoRouteError(f"no lane may be driven from {from_node!r} to {to_node!r}") from None

    def has_edge(self, from_node: str, to_node: str) -> bool:
        return (from_node, to_node) in self._edges

    # -- routing -------------------------------------------------------------------------------------------
    def distances_from(self, source: str) -> dict[str, float]:
        """Shortest driving distance in metres from source to every reachable node."""
        dist, _ = self._dijkstra(source, None)
        return dist

    def shortest_path(self, source: str, target: str) -> list[str]:
        """Node ids from source to target inclusive, along lanes, minimising total lane length.

        Ties are broken by node id, so the answer is deterministic.
        """
        if source not in self._pos or target not in self._pos:
            raise NoRouteError(f"unknown node in route {source!r} -> {target!r}")
        if source == target:
            return [source]
        _, prev = self._dijkstra(source, target)
        if target not in prev:
            raise NoRouteError(f"no route from {source!r} to {target!r}")
        path = [target]
        while path[-1] != source:
            path.append(prev[path[-1]])
        path.reverse()
        return path

    def path_length(self, path: Iterable[str]) -> float:
        """Total lane length of a path of adjacent nodes."""
        nodes = list(path)
        return sum(self.edge(a, b).length for a, b in itertools.pairwise(nodes))

    def expand(self, start: str, waypoints: Iterable[str]) -> list[str]:
        """The adjacent-node path from start through each waypoint in turn (start excluded).

        Consecutive waypoints that are not joined by a lane are connected by shortest paths, so a
        sparse route (for example only the pickup and dropoff nodes of a task) becomes drivable.
        """
        path: list[str] = []
        here = start
        for target in waypoints:
            if target == here:
                continue
            if self.has_edge(here, target):
                path.append(target)
            else:
                path.extend(self.shortest_path(here, target)[1:])
            here = target
        return path

    def nearest(self, source: str, candidates: Iterable[str]) -> tuple[str, float] | None:
        """The candidate closest to source by driving distance, with that distance; None if none is reachable."""
        dist = self.distances_from(source)
        best: tuple[str, float] | None = None
        for node in sorted(set(candidates)):
            d = dist.get(node, math.inf)
            if d < math.inf and (best is None or d < best[1]):
                best = (node, d)
        return best

    def _dijkstra(self, source: str, target: str | None) -> tuple[dict[str, float], dict[str, str]]:
        if source not in self._pos:
            raise NoRouteError(f"unknown node {source!r}")
        dist: dict[str, float] = {source: 0.0}
        prev: dict[str, str] = {}
        heap: list[tuple[float, str]] = [(0.0, source)]
        done: set[str] = set()
        while heap:
            d, u = heapq.heappop(heap)
            if u in done:
                continue
            done.add(u)
            if u == target:
                break
            for e in self._out[u]:
                nd = d + e.length
                if nd < dist.get(e.to_node, math.inf) - 1e-12:
                    dist[e.to_node] = nd
                    prev[e.to_node] = u
                    heapq.heappush(heap, (nd, e.to_node))
        return dist, prev
