"""The traffic monitor's view of the shared site graph (:class:`schemas.sitegraph.SiteGraph`), by node id.

The monitor's plans, reservations and holds name nodes by id; the SiteGraph works by node index. A
:class:`SiteView` translates between the two and nothing more: the map is parsed once, by the SiteGraph
(lanes, dead ends, NO_GO zones), and every search is :meth:`SiteGraph.reach <schemas.sitegraph.SiteGraph.reach>`
in metres, keeping out of no-go zones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterator, Mapping

from schemas.sitegraph import SiteGraph

__all__ = ["SiteView"]

Point = tuple[float, float]


class SiteView:
    """One SiteGraph seen by node id: ``tips`` (dead-end ends: docks, parking spots, chargers),
    ``exits[n]`` (the way out of the dead end ``n`` is in, the junction last), ``nogo_nodes`` /
    ``nogo_lanes`` (node id / lane id -> the NO_GO zone it is in or enters) and ``nogo_zones``."""

    __slots__ = ("exits", "graph", "nogo_lanes", "nogo_nodes", "nogo_zones", "tips")

    def __init__(self, graph: SiteGraph) -> None:
        ids = graph.ids
        self.graph = graph
        self.tips: frozenset[str] = frozenset(ids[i] for i in graph.tips)
        self.exits: Mapping[str, tuple[str, ...]] = {
            ids[i]: tuple(ids[j] for j in way) for i, way in graph.exits.items()
        }
        self.nogo_nodes: Mapping[str, str] = {ids[i]: zone for i, zone in graph.nogo_nodes.items()}
        self.nogo_lanes: Mapping[str, str] = graph.nogo_lanes
        self.nogo_zones: frozenset[str] = graph.nogo_zones

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.graph.index

    def position(self, node_id: str) -> Point:
        """Where a node is (KeyError if the map has no such node)."""
        graph = self.graph
        return graph.pos[graph.index[node_id]]

    def lane_id(self, u: str, v: str) -> str | None:
        """The id of the lane driven from ``u`` to ``v``; None when there is none that way."""
        graph = self.graph
        i, j = graph.index.get(u), graph.index.get(v)
        if i is None or j is None:
            return None
        lane = graph.lanes.get((i, j))
        return lane.lane_id if lane is not None else None

    def successors(self, node_id: str) -> tuple[str, ...]:
        """The nodes a lane leads to from ``node_id``, in id order (none for a node not on the map)."""
        graph = self.graph
        i = graph.index.get(node_id)
        return () if i is None else tuple(graph.ids[j] for j in graph.succ[i])

    def predecessors(self, node_id: str) -> tuple[str, ...]:
        """The nodes a lane leads from into ``node_id``, in id order (none for a node not on the map)."""
        graph = self.graph
        i = graph.index.get(node_id)
        return () if i is None else tuple(graph.ids[j] for j in graph.pred[i])

    def length(self, u: str, v: str) -> float:
        """The straight distance between two nodes, in metres."""
        return math.dist(self.position(u), self.position(v))

    def drive_ms(self, u: str, v: str, speed_mps: float) -> float:
        """How long driving from ``u`` to ``v`` takes at ``speed_mps`` (or the lane's lower limit)."""
        graph = self.graph
        i, j = graph.index[u], graph.index[v]
        lane = graph.lanes.get((i, j))
        limit = lane.speed_limit if lane is not None and lane.speed_limit else speed_mps
        return math.dist(graph.pos[i], graph.pos[j]) / min(speed_mps, limit) * 1000

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
        """The shortest node path ``start`` → ``goal`` and its length in metres, avoiding the given
        nodes/lanes and no-go zones; None when there is none shorter than ``max_length``. ``start`` itself
        is never avoided; ``blocked`` is asked about every other node but the goal reached (e.g. "does a
        robot stand there") and avoids it if true."""
        if goal in avoid_nodes or goal in self.nogo_nodes:
            return None
        for _goal, path, length in self.reach(
            start,
            (goal,),
            avoid_nodes=avoid_nodes,
            avoid_lanes=avoid_lanes,
            max_length=max_length,
            blocked=blocked,
        ):
            return path, length
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
        """Shortest paths from ``start`` to each of ``targets`` it reaches within ``max_length`` metres,
        nearest first, as ``(target, path, length)`` (one search, stopping when the caller stops asking),
        with the avoidance rules of :meth:`shortest_path` (``blocked`` is not asked about targets)."""
        graph = self.graph
        index, ids = graph.index, graph.ids
        a = index.get(start)
        goals = {index[t] for t in targets if t in index}
        if a is None or not goals:
            return
        avoid = {index[n] for n in avoid_nodes if n in index}
        closed: Callable[[int, int], bool] | None = None
        if blocked is not None:
            is_blocked = blocked

            def closed(_u: int, v: int) -> bool:
                return v not in goals and is_blocked(ids[v])

        for goal, path, length in graph.reach(
            a,
            goals,
            cost="metres",
            avoid=avoid,
            avoid_lanes=avoid_lanes,
            keep_out=True,
            blocked=closed,
            max_cost=max_length,
        ):
            yield ids[goal], [ids[i] for i in path], length
