"""The :class:`SiteGraph`: nodes, directed lanes and cached shortest paths of one SiteMap version.

Built once per map (see :func:`~schemas.sitegraph.graph_for`) and never changed after, so every processor,
thread and simulated robot can share it. Nodes are indexed ``0..n-1`` in map order (``ids[i]``,
``index[id]``); a bidirectional lane gives two directed edges, a one-way lane one. Shortest-path rows come
from scipy's Dijkstra and are cached here; the A* of :meth:`SiteGraph.reach` is in
:mod:`schemas.sitegraph.search`, what is derived from the map at construction in
:mod:`schemas.sitegraph.build`.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from schemas.geometry import Point
from schemas.sitegraph import search
from schemas.sitegraph.base import STATION_KINDS, Lane, NoRouteError
from schemas.sitegraph.build import bounds, dead_ends, no_go

__all__ = ["SiteGraph"]

#: Shortest-path rows kept per graph and direction (``FLEET_GRAPH_ROW_BUDGET_MB``, default 256): a site
#: with more robots' goals than rows recomputes trees every planning round (docs/traffic.md).
_ROW_BUDGET_BYTES = int(os.environ.get("FLEET_GRAPH_ROW_BUDGET_MB", "256")) * 1024 * 1024

_NONE: frozenset[Any] = frozenset()


class SiteGraph:
    """Nodes, directed lanes and cached shortest paths of one SiteMap version (immutable)."""

    def __init__(self, site_map: Mapping[str, Any], nominal_speed_mps: float = 1.0) -> None:
        if nominal_speed_mps <= 0:
            raise ValueError("nominal_speed_mps must be > 0")
        self.source = site_map
        """The SiteMap dict this graph was built from (sent as is to an external planner)."""
        self.tenant_id: str | None = site_map.get("tenant_id")
        self.site_id: str | None = site_map.get("site_id")
        self.version = int(site_map.get("version", 0))
        self.nominal_speed_mps = nominal_speed_mps
        nodes = list(site_map.get("nodes") or ())
        self.ids: tuple[str, ...] = tuple(str(n["id"]) for n in nodes)
        self.index: dict[str, int] = {}
        for i, node_id in enumerate(self.ids):
            if node_id in self.index:
                raise ValueError(f"duplicate node id {node_id!r}")
            self.index[node_id] = i
        self.kinds: tuple[str, ...] = tuple(str(n.get("kind") or "WAYPOINT") for n in nodes)
        self.pos: tuple[Point, ...] = tuple((float(n["x"]), float(n["y"])) for n in nodes)
        self.xy = np.array(self.pos, dtype=float).reshape(-1, 2)
        self.chargers: tuple[tuple[str, str], ...] = tuple(
            sorted(
                (str(c["id"]), str(c["node_id"]))
                for c in site_map.get("chargers") or ()
                if str(c["node_id"]) in self.index
            )
        )
        self.lanes: dict[tuple[int, int], Lane] = {}
        ends: dict[str, tuple[int, int]] = {}  # lane id -> its end nodes, as the map gives them
        for lane in site_map.get("lanes") or ():
            a, b = str(lane["from_node"]), str(lane["to_node"])
            for end in (a, b):
                if end not in self.index:
                    raise ValueError(f"lane {lane['id']!r} references unknown node {end!r}")
            u, v = self.index[a], self.index[b]
            ends[str(lane["id"])] = (u, v)
            if u == v:
                continue
            length = math.dist(self.pos[u], self.pos[v])
            limit = float(lane["speed_limit"]) if lane.get("speed_limit") else None
            speed = min(nominal_speed_mps, limit) if limit else nominal_speed_mps
            seconds = max(length / speed, 1e-9)
            pairs = ((u, v), (v, u)) if lane.get("bidirectional", True) else ((u, v),)
            for p, q in pairs:
                old = self.lanes.get((p, q))
                if old is None or seconds < old.seconds:
                    self.lanes[(p, q)] = Lane(str(lane["id"]), p, q, length, seconds, limit)
        n = len(self.ids)
        succ: list[list[int]] = [[] for _ in range(n)]
        pred: list[list[int]] = [[] for _ in range(n)]
        for u, v in self.lanes:
            succ[u].append(v)
            pred[v].append(u)
        key = self.ids.__getitem__
        self.succ: tuple[tuple[int, ...], ...] = tuple(tuple(sorted(s, key=key)) for s in succ)
        self.pred: tuple[tuple[int, ...], ...] = tuple(tuple(sorted(p, key=key)) for p in pred)
        self.neighbours: tuple[tuple[int, ...], ...] = tuple(
            tuple(sorted(set(succ[i]) | set(pred[i]), key=key)) for i in range(n)
        )
        self.tips: frozenset[int] = frozenset(i for i in range(n) if len(self.neighbours[i]) == 1)
        self.exits: Mapping[int, tuple[int, ...]] = MappingProxyType(
            dead_ends(self.neighbours, self.tips, key)
        )
        """For every node of a dead end (a spur, or a chain of nodes leading to one), the nodes a robot
        standing there passes to get out, up to and including the junction where it meets the rest."""
        nogo_nodes, nogo_lanes = no_go(site_map, self.xy, ends)
        self.nogo_nodes: Mapping[int, str] = MappingProxyType(nogo_nodes)
        """Node -> the NO_GO zone it lies in (the first in map order; on an edge counts as in)."""
        self.nogo_lanes: Mapping[str, str] = MappingProxyType(nogo_lanes)
        """Lane id -> the NO_GO zone it enters (an end inside, or crossing an edge)."""
        self.nogo_zones: frozenset[str] = frozenset(nogo_nodes.values()) | frozenset(nogo_lanes.values())
        self._nogo_nodes = frozenset(nogo_nodes)
        self._nogo_lanes = frozenset(nogo_lanes)
        self._search: search.SearchIndex | None = None  # built on the first search (see _search_index)
        self.bounds = bounds(site_map, self.version)
        edges = list(self.lanes.values())
        self._matrix = csr_matrix(
            ([e.seconds for e in edges], ([e.u for e in edges], [e.v for e in edges])), shape=(n, n)
        )
        self._from: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._to: OrderedDict[int, np.ndarray] = OrderedDict()
        # Rows are cached up to a memory budget (a large site has tens of thousands of nodes).
        self._max_rows = max(64, _ROW_BUDGET_BYTES // max(1, n * 12))
        self._transposed: csr_matrix | None = None
        self._lock = threading.Lock()
        self._tree = cKDTree(self.xy) if n else None

    # -- lookups -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.index

    def node(self, node_id: str) -> int:
        """The index of ``node_id``; :class:`NoRouteError` if the map has no such node."""
        try:
            return self.index[node_id]
        except KeyError:
            raise NoRouteError(f"unknown node {node_id!r} on map {self.site_id} v{self.version}") from None

    def position(self, node_id: str) -> Point:
        return self.pos[self.node(node_id)]

    def kind(self, node_id: str) -> str:
        return self.kinds[self.node(node_id)]

    def nodes_of_kind(self, *kinds: str) -> list[str]:
        return [self.ids[i] for i, k in enumerate(self.kinds) if k in kinds]

    def lane(self, u: int, v: int) -> Lane:
        try:
            return self.lanes[(u, v)]
        except KeyError:
            raise NoRouteError(f"no lane may be driven from {self.ids[u]!r} to {self.ids[v]!r}") from None

    def lane_between(self, a: str, b: str) -> Lane:
        return self.lane(self.node(a), self.node(b))

    def has_lane(self, a: str, b: str) -> bool:
        ia, ib = self.index.get(a), self.index.get(b)
        return ia is not None and ib is not None and (ia, ib) in self.lanes

    def nearest_node(self, x: float, y: float) -> str | None:
        """The node closest to a position in a straight line (None on an empty map)."""
        if self._tree is None:
            return None
        _, i = self._tree.query([x, y])
        return self.ids[int(i)]

    # -- shortest paths ------------------------------------------------------------------------------------
    @property
    def cached_rows(self) -> int:
        """How many shortest-path rows per direction the graph keeps (its memory budget over its size)."""
        return self._max_rows

    def _keep(self, cache: OrderedDict[int, Any], key: int, row: Any) -> None:
        with self._lock:
            cache[key] = row
            while len(cache) > self._max_rows:
                cache.popitem(last=False)

    def _row(self, source: int) -> tuple[np.ndarray, np.ndarray]:
        row = self._from.get(source)
        if row is None:
            dist, pred = dijkstra(self._matrix, directed=True, indices=source, return_predecessors=True)
            row = (np.asarray(dist, dtype=float), np.asarray(pred, dtype=np.int32))
            self._keep(self._from, source, row)
        return row

    def prepare(self, sources: Iterable[int]) -> None:
        """Compute the missing rows of ``sources`` in one scipy call (a batch of robots at once)."""
        missing = sorted({s for s in sources if s not in self._from})
        if not missing:
            return
        dist, pred = dijkstra(self._matrix, directed=True, indices=missing, return_predecessors=True)
        for k, s in enumerate(missing):
            self._keep(self._from, s, (np.asarray(dist[k], dtype=float), np.asarray(pred[k], dtype=np.int32)))

    def seconds_from(self, source: int) -> np.ndarray:
        """Travel seconds from node ``source`` to every node (inf where unreachable)."""
        return self._row(source)[0]

    def seconds_to(self, target: int) -> np.ndarray:
        """Travel seconds from every node to node ``target`` over the lanes' directions (inf: none)."""
        row = self._to.get(target)
        if row is None:
            row = self.seconds_to_with(target, None)
            self._keep(self._to, target, row)
        return row

    def seconds_to_with(self, target: int, penalty: Mapping[int, float] | None) -> np.ndarray:
        """Like :meth:`seconds_to`, with ``penalty[n]`` seconds added for driving onto node ``n`` (robots
        that stand in the way for long); not cached."""
        if self._transposed is None:
            self._transposed = self._matrix.T.tocsr()
        matrix = self._transposed
        if penalty:
            coo = self._matrix.tocoo()
            extra = np.array([penalty.get(int(v), 0.0) for v in coo.col])
            matrix = csr_matrix((coo.data + extra, (coo.col, coo.row)), shape=coo.shape)
        return np.asarray(dijkstra(matrix, directed=True, indices=target), dtype=float)

    def travel_s(self, a: str, b: str) -> float:
        """Shortest travel time ``a -> b`` in seconds; inf if a node is unknown or unreachable."""
        ia, ib = self.index.get(a), self.index.get(b)
        if ia is None or ib is None:
            return math.inf
        return float(self._row(ia)[0][ib])

    def path_indices(self, a: int, b: int) -> list[int]:
        """The quickest path ``a -> b`` as node indices, both ends included; [] when there is none."""
        dist, pred = self._row(a)
        if not math.isfinite(dist[b]):
            return []
        out = [b]
        while out[-1] != a:
            out.append(int(pred[out[-1]]))
        out.reverse()
        return out

    def descend(
        self, a: int, to_goal: Any, limit: int, penalty: Mapping[int, float] | None = None
    ) -> list[int]:
        """Up to ``limit`` nodes after ``a`` along a quickest way to a goal, given ``to_goal`` (seconds from
        every node to it, as :meth:`seconds_to` or :meth:`seconds_to_with` with the same ``penalty``
        give): each step takes the successor with the least lane time, penalty and time to go, the first
        in id order on a tie. No new search."""
        out: list[int] = []
        u = a
        extra = penalty or {}
        while len(out) < limit and to_goal[u] > 0.0 and math.isfinite(to_goal[u]):
            best, best_cost = -1, math.inf
            for v in self.succ[u]:
                cost = self.lanes[(u, v)].seconds + extra.get(v, 0.0) + float(to_goal[v])
                if cost < best_cost:
                    best, best_cost = v, cost
            if best < 0 or not math.isfinite(best_cost):
                break
            out.append(best)
            u = best
        return out

    def shortest_path(self, a: str, b: str) -> list[str]:
        """Node ids from ``a`` to ``b`` inclusive along lanes, quickest first; :class:`NoRouteError` if none."""
        path = self.path_indices(self.node(a), self.node(b))
        if not path:
            raise NoRouteError(f"no route from {a!r} to {b!r}")
        return [self.ids[i] for i in path]

    def timed_path(self, a: str, b: str) -> list[tuple[str, float]]:
        """The quickest path ``a -> b`` as (node id, seconds from ``a``); [] when there is none."""
        ia, ib = self.index.get(a), self.index.get(b)
        if ia is None or ib is None:
            return []
        dist = self._row(ia)[0]
        return [(self.ids[i], float(dist[i])) for i in self.path_indices(ia, ib)]

    def path_length(self, path: Iterable[str]) -> float:
        """Total lane length in metres of a path of adjacent nodes."""
        idx = [self.node(n) for n in path]
        return sum(self.lane(u, v).length for u, v in itertools.pairwise(idx))

    def expand(self, start: str, waypoints: Iterable[str]) -> list[str]:
        """The adjacent-node path from ``start`` through each waypoint in turn (``start`` excluded).

        Consecutive waypoints not joined by a lane are connected by quickest paths, so a sparse route
        (only a task's pickup and drop-off, say) becomes drivable.
        """
        path: list[str] = []
        here = start
        for target in waypoints:
            if target == here:
                continue
            if self.has_lane(here, target):
                path.append(target)
            else:
                path.extend(self.shortest_path(here, target)[1:])
            here = target
        return path

    def nearest(self, source: str, candidates: Iterable[str]) -> tuple[str, float] | None:
        """The candidate quickest to reach from ``source``, with its travel seconds; None if none is."""
        dist = self.seconds_from(self.node(source))
        best: tuple[str, float] | None = None
        for node_id in sorted(set(candidates)):
            i = self.index.get(node_id)
            d = float(dist[i]) if i is not None else math.inf
            if d < math.inf and (best is None or d < best[1]):
                best = (node_id, d)
        return best

    def is_stop(self, path: list[int], i: int, prev: int | None = None) -> bool:
        """Whether a route must stop at its ``i``-th node rather than drive through: the last node, a
        station (:data:`STATION_KINDS`), a dead end, or where the route turns back (``prev`` is the node
        before ``path[0]``, when known)."""
        v = path[i]
        if i == len(path) - 1 or self.kinds[v] in STATION_KINDS or v in self.tips:
            return True
        before = path[i - 1] if i > 0 else prev
        return before is not None and before == path[i + 1]

    def stops(self, path: list[int], prev: int | None = None) -> list[int]:
        """The positions in ``path`` where a robot driving it stops (see :meth:`is_stop`)."""
        return [i for i in range(len(path)) if self.is_stop(path, i, prev)]

    def _search_index(self) -> search.SearchIndex:
        """Each node's lanes out (in id order of their ends), and each node's place in id order and back;
        built once, on the first search (a graph nobody searches does not pay for it)."""
        found = self._search
        if found is None:
            # two threads at once: built twice
            found = self._search = search.build_index(self.ids, self.lanes, self.succ)
        return found

    def reach(
        self,
        a: int,
        goals: Iterable[int],
        *,
        cost: Literal["seconds", "metres"] = "seconds",
        avoid: Container[int] = (),
        avoid_lanes: Container[str] = (),
        keep_out: bool = False,
        blocked: Callable[[int, int], bool] | None = None,
        max_cost: float = math.inf,
        max_expansions: int | None = None,
    ) -> Iterator[tuple[int, list[int], float]]:
        """The cheapest paths from ``a`` to each of ``goals`` it reaches, nearest first, as ``(goal, index
        path with a first, cost)``: one A* search towards the nearest goal, going on to the next while the
        caller asks.

        ``cost`` is travel seconds at the nominal speed (the lane's limit where lower) or lane length in
        metres; the heuristic, the straight line to the nearest goal at nominal speed (or in metres), is
        admissible and consistent. The search never drives onto a node in ``avoid`` (``a`` itself is never
        avoided), a lane whose id is in ``avoid_lanes``, with ``keep_out`` a node or lane of a NO_GO zone
        (:attr:`nogo_nodes`, :attr:`nogo_lanes`), nor a lane ``blocked(u, v)`` says is closed (asked
        last). It stops once the cheapest estimate exceeds ``max_cost`` or after ``max_expansions`` nodes.
        Ties go to the node first in id order, so the same inputs give the same paths.
        """
        wanted = set(goals)
        if not wanted:
            return  # nothing to search for (and no search index to build)
        yield from search.reach(
            self._search_index(),
            self.pos,
            self.nominal_speed_mps,
            a,
            wanted,
            cost=cost,
            avoid=avoid,
            avoid_lanes=avoid_lanes,
            nogo_nodes=self._nogo_nodes if keep_out else _NONE,
            nogo_lanes=self._nogo_lanes if keep_out else _NONE,
            blocked=blocked,
            max_cost=max_cost,
            max_expansions=max_expansions,
        )
