"""What orders need of a site map: node positions, the lane between two nodes, shortest paths, ETAs.

``SiteModel`` is built once per map version from a SiteMap dict (docs/records.md) and shared by every
vehicle of the site (read-only). ``MapLookup`` is how the topology finds a site's current model; the
processor keeps the latest map of every site in memory (``pipelines.vda5050``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from schemas.records import RouteWaypoint
from schemas.sitegraph import NoRouteError, SiteGraph, graph_for

__all__ = ["Lane", "MapLookup", "SiteModel", "model_for"]

Lane = tuple[str, float | None, float]
"""``(lane id, speed limit or None, length in metres)``."""


class SiteModel:
    """Node positions and directed lanes of one map version."""

    def __init__(self, site_map: Mapping[str, Any]) -> None:
        self.site_id: str = str(site_map["site_id"])
        self.tenant_id: str = str(site_map.get("tenant_id") or "")
        self.version = int(site_map.get("version", 0))
        self.positions: dict[str, tuple[float, float]] = {
            str(n["id"]): (float(n["x"]), float(n["y"])) for n in site_map.get("nodes") or ()
        }
        self.lanes: dict[tuple[str, str], Lane] = {}
        for lane in site_map.get("lanes") or ():
            a, b = str(lane["from_node"]), str(lane["to_node"])
            if a not in self.positions or b not in self.positions or a == b:
                continue
            limit = lane.get("speed_limit")
            entry: Lane = (str(lane["id"]), float(limit) if limit else None, self.distance(a, b))
            self.lanes[(a, b)] = entry
            if lane.get("bidirectional", True):
                self.lanes.setdefault((b, a), entry)
        self._graph: SiteGraph = graph_for(site_map)

    def __contains__(self, node_id: object) -> bool:
        return node_id in self.positions

    def distance(self, a: str, b: str) -> float:
        (xa, ya), (xb, yb) = self.positions[a], self.positions[b]
        return math.hypot(xb - xa, yb - ya)

    def lane(self, a: str, b: str) -> Lane | None:
        """The lane a robot drives from ``a`` to ``b`` on, or None when there is none that way."""
        return self.lanes.get((a, b))

    def path(self, a: str, b: str) -> list[str]:
        """Node ids of the shortest path ``a -> b`` (both included); [] when there is none."""
        if a == b:
            return [a] if a in self.positions else []
        try:
            return self._graph.shortest_path(a, b)
        except NoRouteError:
            return []

    def etas(
        self, start_ms: int, x: float, y: float, nodes: Sequence[str], speed: float
    ) -> list[RouteWaypoint]:
        """RouteWaypoints for ``nodes`` driven in order from ``(x, y)`` at ``speed`` m/s (lane limits
        respected), the first ETA counted from ``start_ms``. Unknown nodes are skipped."""
        out: list[RouteWaypoint] = []
        t = float(start_ms)
        px, py = x, y
        prev: str | None = None
        for node in nodes:
            pos = self.positions.get(node)
            if pos is None:
                continue
            v = speed
            if prev is not None:
                lane = self.lanes.get((prev, node))
                if lane is not None and lane[1]:
                    v = min(v, lane[1])
            t += math.hypot(pos[0] - px, pos[1] - py) / max(v, 0.01) * 1000.0
            out.append({"node_id": node, "eta": math.ceil(t)})
            px, py, prev = pos[0], pos[1], node
        return out


MapLookup = Callable[[str, str], SiteModel | None]
"""``(tenant_id, site_id) -> the site's current model`` (None while no map of the site is known)."""

_MODELS: dict[tuple[str, str, int, str], SiteModel] = {}


def model_for(site_map: Mapping[str, Any]) -> SiteModel:
    """The model of a SiteMap, built once per (tenant, site, version, event id)."""
    key = (
        str(site_map.get("tenant_id")),
        str(site_map.get("site_id")),
        int(site_map.get("version", 0)),
        str(site_map.get("event_id")),
    )
    model = _MODELS.get(key)
    if model is None:
        if len(_MODELS) > 64:
            _MODELS.clear()
        model = _MODELS[key] = SiteModel(site_map)
    return model
