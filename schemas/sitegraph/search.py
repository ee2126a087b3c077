"""A* over a site graph's lanes, in seconds or metres, to the nearest of several goals and then the next:
the search behind :meth:`SiteGraph.reach <schemas.sitegraph.SiteGraph.reach>` as functions
over the graph's arrays (its lanes out of each node, node positions and id order)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

from schemas.geometry import Point
from schemas.sitegraph.base import Lane

__all__ = ["SearchIndex", "build_index", "reach"]

SearchIndex = tuple[tuple[tuple[Lane, ...], ...], tuple[int, ...], tuple[int, ...]]
"""What a search reads: each node's lanes out; each node's place in id order; the nodes in id order."""

_NONE: frozenset[Any] = frozenset()


def build_index(
    ids: Sequence[str], lanes: Mapping[tuple[int, int], Lane], succ: Sequence[Sequence[int]]
) -> SearchIndex:
    """Each node's lanes out (in id order of their ends, as ``succ`` lists them), and each node's place in
    id order and back."""
    n = len(ids)
    out = tuple(tuple(lanes[(u, v)] for v in succ[u]) for u in range(n))
    order = sorted(range(n), key=ids.__getitem__)
    rank = [0] * n
    for r, i in enumerate(order):
        rank[i] = r
    return out, tuple(rank), tuple(order)


def reach(
    index: SearchIndex,
    pos: Sequence[Point],
    nominal_speed_mps: float,
    a: int,
    goals: Iterable[int],
    *,
    cost: Literal["seconds", "metres"] = "seconds",
    avoid: Container[int] = (),
    avoid_lanes: Container[str] = (),
    nogo_nodes: Container[int] = _NONE,
    nogo_lanes: Container[str] = _NONE,
    blocked: Callable[[int, int], bool] | None = None,
    max_cost: float = math.inf,
    max_expansions: int | None = None,
) -> Iterator[tuple[int, list[int], float]]:
    """The cheapest paths from ``a`` to each of ``goals`` it reaches, nearest first, as ``(goal, index path
    with a first, cost)``, never driving onto a node in ``avoid`` or ``nogo_nodes`` nor along a lane whose
    id is in ``avoid_lanes`` or ``nogo_lanes`` or that ``blocked(u, v)`` says is closed (see
    :meth:`SiteGraph.reach <schemas.sitegraph.SiteGraph.reach>`)."""
    wanted = set(goals)
    if not wanted:
        return
    out, rank, by_rank = index
    metres = cost == "metres"
    speed = 1.0 if metres else nominal_speed_mps
    targets = [pos[g] for g in wanted]
    if len(targets) == 1:
        [(gx, gy)] = targets

        def h(i: int) -> float:
            x, y = pos[i]
            return math.hypot(gx - x, gy - y) / speed

    else:

        def h(i: int) -> float:
            x, y = pos[i]
            return min(math.hypot(tx - x, ty - y) for tx, ty in targets) / speed

    budget = math.inf if max_expansions is None else max_expansions
    best = {a: 0.0}
    parent: dict[int, int] = {}
    heap = [(h(a), 0.0, rank[a])]
    expanded = 0
    while heap and expanded < budget:
        f, g, r = heapq.heappop(heap)
        if f > max_cost:
            return
        u = by_rank[r]
        if g > best[u]:
            continue  # reached more cheaply since
        if u in wanted:
            wanted.discard(u)
            yield u, _path(parent, u), g
            if not wanted:
                return
        expanded += 1
        for lane in out[u]:
            v = lane.v
            ng = g + (lane.length if metres else lane.seconds)
            if (
                ng > max_cost
                or v in avoid
                or v in nogo_nodes
                or lane.lane_id in avoid_lanes
                or lane.lane_id in nogo_lanes
                or (blocked is not None and blocked(u, v))
            ):
                continue
            if ng < best.get(v, math.inf):
                best[v] = ng
                parent[v] = u
                heapq.heappush(heap, (ng + h(v), ng, rank[v]))


def _path(parent: Mapping[int, int], node: int) -> list[int]:
    path = [node]
    while node in parent:
        node = parent[node]
        path.append(node)
    path.reverse()
    return path
