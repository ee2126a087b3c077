"""Site map bounds for the pose check: the latest map of every site, in memory, shared by all robots.

``site.maps`` is keyed by site, the telemetry topology by robot, so a robot's state cannot join it.
Maps are small and change rarely, so every telemetry process keeps the bounding box of the latest
version of every site's map in memory (:class:`SiteMapIndex`), fed by a reader of the whole compacted
topic that the processor runs beside the application. The topology only calls :meth:`SiteMapIndex.bounds`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["SiteBounds", "SiteMapIndex", "bounds_of"]


@dataclass(frozen=True, slots=True)
class SiteBounds:
    """Axis-aligned bounding box of a site map (nodes and zone corners), in map metres."""

    version: int
    min_x: float
    min_y: float
    max_x: float
    max_y: float

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        return (
            self.min_x - margin <= x <= self.max_x + margin
            and self.min_y - margin <= y <= self.max_y + margin
        )


def bounds_of(site_map: dict[str, Any]) -> SiteBounds | None:
    """The bounding box of a SiteMap dict, or None for a map without any coordinates."""
    xs: list[float] = [float(n["x"]) for n in site_map.get("nodes") or ()]
    ys: list[float] = [float(n["y"]) for n in site_map.get("nodes") or ()]
    for zone in site_map.get("zones") or ():
        for point in zone.get("polygon") or ():
            xs.append(float(point["x"]))
            ys.append(float(point["y"]))
    if not xs:
        return None
    return SiteBounds(int(site_map.get("version", 0)), min(xs), min(ys), max(xs), max(ys))


class SiteMapIndex:
    """Latest bounds per (tenant_id, site_id); thread-safe, never moves a site back to an older version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bounds: dict[tuple[str, str], SiteBounds] = {}

    def update(self, site_map: dict[str, Any]) -> bool:
        """Apply a SiteMap dict; returns whether it changed the index (older versions are ignored)."""
        key = (site_map["tenant_id"], site_map["site_id"])
        bounds = bounds_of(site_map)
        with self._lock:
            current = self._bounds.get(key)
            if current is not None and current.version > int(site_map.get("version", 0)):
                return False
            if bounds is None:
                return self._bounds.pop(key, None) is not None
            self._bounds[key] = bounds
            return True

    def remove(self, tenant_id: str, site_id: str) -> None:
        with self._lock:
            self._bounds.pop((tenant_id, site_id), None)

    def remove_site(self, site_id: str) -> None:
        """Forget a site for every tenant (a tombstone on ``site.maps`` carries only the site id)."""
        with self._lock:
            for key in [k for k in self._bounds if k[1] == site_id]:
                del self._bounds[key]

    def bounds(self, tenant_id: str, site_id: str) -> SiteBounds | None:
        # A dict read is atomic under the GIL; the lock only orders writers.
        return self._bounds.get((tenant_id, site_id))

    def __len__(self) -> int:
        return len(self._bounds)
