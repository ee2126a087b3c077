"""One immutable graph per site map version, shared by every part that routes or checks poses.

A :class:`SiteGraph` is built from a SiteMap dict (docs/records.md) once per ``(tenant, site, version)``
and cached (:func:`graph_for`); nothing in it changes after construction, so every processor, thread and
simulated robot can share it. Nodes are indexed ``0..n-1`` in map order (``ids[i]``, ``index[id]``);
a bidirectional lane gives two directed edges, a one-way lane one.

Weights: ``length(u, v)`` is the straight distance between the lane's end nodes in metres; routing cost
is travel time in seconds at ``nominal_speed_mps`` (or the lane's ``speed_limit`` where lower), so with
no speed limits the shortest path is the shortest in metres. Shortest-path rows (from a source, or to a
target over the reversed lanes) come from scipy's Dijkstra and are cached per graph, so a site with V
nodes costs at most 2V rows however many robots and tasks use it.

Also here: bounds (for the telemetry pose check), the nearest node to a position, dead ends (``tips``:
docks, parking spots, nodes with a single neighbour; ``exits``: the way out of each), the nodes and lanes
of NO_GO zones, and :meth:`SiteGraph.reach`: A* in seconds or metres to the nearest of several goals, then
the next, around avoided nodes and lanes, no-go zones and lanes a caller says are closed (detours).

Modules: :mod:`~schemas.sitegraph.base` (``Lane``, ``Bounds``, ``STATION_KINDS``, ``NoRouteError``),
:mod:`~schemas.sitegraph.graph` (``SiteGraph``: lookups and shortest paths), :mod:`~schemas.sitegraph.search`
(the A* behind ``reach``), :mod:`~schemas.sitegraph.build` (dead ends, no-go zones and bounds, derived at
construction), :mod:`~schemas.sitegraph.cache` (``graph_for``).
"""

from schemas.sitegraph.base import STATION_KINDS, Bounds, Lane, NoRouteError
from schemas.sitegraph.cache import graph_for
from schemas.sitegraph.graph import SiteGraph

__all__ = [
    "STATION_KINDS",
    "Bounds",
    "Lane",
    "NoRouteError",
    "SiteGraph",
    "graph_for",
]
