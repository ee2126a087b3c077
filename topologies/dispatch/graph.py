"""The site graph of a SiteMap and its shortest paths, cached per (site, map version).

Edge weights are travel *seconds*: the Euclidean length of the lane (from its end nodes' coordinates)
divided by the nominal speed, or by the lane's ``speed_limit`` when that is lower. A lane with
``bidirectional = false`` is only usable from ``from_node`` to ``to_node``. Shortest paths are
single-source Dijkstra rows (scipy), computed lazily per source node and kept for the life of the graph,
so a site with V nodes costs at most V rows however many robots and tasks it holds.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

__all__ = ["SiteGraph", "graph_for"]


class SiteGraph:
    """Nodes, directed weighted adjacency and lazily cached shortest-path rows of one map version."""

    def __init__(self, site_map: Mapping[str, Any], nominal_speed_mps: float = 1.0) -> None:
        if nominal_speed_mps <= 0:
            raise ValueError("nominal_speed_mps must be > 0")
        self.source = site_map
        """The SiteMap dict this graph was built from (sent to an external planner)."""
        self.site_id: str | None = site_map.get("site_id")
        self.version = int(site_map.get("version", 0))
        nodes = list(site_map.get("nodes") or ())
        self.node_ids: list[str] = [str(n["id"]) for n in nodes]
        self.index: dict[str, int] = {nid: i for i, nid in enumerate(self.node_ids)}
        self.kinds: dict[str, str] = {str(n["id"]): str(n.get("kind") or "WAYPOINT") for n in nodes}
        self.xy = np.array([[float(n["x"]), float(n["y"])] for n in nodes], dtype=float).reshape(-1, 2)
        self.chargers: list[tuple[str, str]] = sorted(
            (str(c["id"]), str(c["node_id"]))
            for c in site_map.get("chargers") or ()
            if str(c["node_id"]) in self.index
        )
        rows: list[int] = []
        cols: list[int] = []
        weights: dict[tuple[int, int], float] = {}
        for lane in site_map.get("lanes") or ():
            a, b = self.index.get(str(lane["from_node"])), self.index.get(str(lane["to_node"]))
            if a is None or b is None or a == b:
                continue
            speed = nominal_speed_mps
            if lane.get("speed_limit"):
                speed = min(speed, float(lane["speed_limit"]))
            seconds = max(float(math.dist(self.xy[a], self.xy[b])) / speed, 1e-9)
            pairs = [(a, b), (b, a)] if lane.get("bidirectional", True) else [(a, b)]
            for pair in pairs:
                if pair not in weights or seconds < weights[pair]:
                    weights[pair] = seconds
        for a, b in weights:
            rows.append(a)
            cols.append(b)
        n = len(self.node_ids)
        self._matrix = csr_matrix((list(weights.values()), (rows, cols)), shape=(n, n))
        self._rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self._tree = cKDTree(self.xy) if n else None

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.index

    def nearest(self, x: float, y: float) -> str | None:
        """The node closest to a position (used when a pose carries no node id)."""
        if self._tree is None:
            return None
        _, i = self._tree.query([x, y])
        return self.node_ids[int(i)]

    def _row(self, source: int) -> tuple[np.ndarray, np.ndarray]:
        row = self._rows.get(source)
        if row is None:
            dist, pred = dijkstra(self._matrix, directed=True, indices=source, return_predecessors=True)
            row = (np.asarray(dist, dtype=float), np.asarray(pred))
            with self._lock:
                self._rows[source] = row
        return row

    def prepare(self, sources: Iterable[int]) -> None:
        """Compute the missing shortest-path rows of ``sources`` in one scipy call."""
        missing = sorted({s for s in sources if s not in self._rows})
        if not missing:
            return
        dist, pred = dijkstra(self._matrix, directed=True, indices=missing, return_predecessors=True)
        with self._lock:
            for k, s in enumerate(missing):
                self._rows[s] = (np.asarray(dist[k], dtype=float), np.asarray(pred[k]))

    def distances_from(self, source: int) -> np.ndarray:
        """Travel seconds from node index ``source`` to every node (inf where unreachable)."""
        return self._row(source)[0]

    def travel_s(self, a: str, b: str) -> float:
        """Shortest travel time from node ``a`` to node ``b`` in seconds; inf if unknown or unreachable."""
        ia, ib = self.index.get(a), self.index.get(b)
        if ia is None or ib is None:
            return math.inf
        return float(self._row(ia)[0][ib])

    def path(self, a: str, b: str) -> list[tuple[str, float]]:
        """The shortest path ``a -> b`` as (node_id, seconds from a); [] when there is none."""
        ia, ib = self.index.get(a), self.index.get(b)
        if ia is None or ib is None:
            return []
        dist, pred = self._row(ia)
        if not math.isfinite(dist[ib]):
            return []
        out: list[int] = [ib]
        while out[-1] != ia:
            out.append(int(pred[out[-1]]))
        return [(self.node_ids[i], float(dist[i])) for i in reversed(out)]


_CACHE: OrderedDict[tuple[Any, ...], SiteGraph] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def graph_for(site_map: Mapping[str, Any], nominal_speed_mps: float = 1.0) -> SiteGraph:
    """The cached graph of ``site_map``: one per (tenant, site, map version, speed)."""
    key = (
        site_map.get("tenant_id"),
        site_map.get("site_id"),
        int(site_map.get("version", 0)),
        site_map.get("event_id"),
        nominal_speed_mps,
    )
    with _CACHE_LOCK:
        graph = _CACHE.get(key)
        if graph is not None:
            _CACHE.move_to_end(key)
            return graph
    graph = SiteGraph(site_map, nominal_speed_mps)
    with _CACHE_LOCK:
        _CACHE[key] = graph
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return graph
