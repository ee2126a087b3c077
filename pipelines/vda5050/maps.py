"""The latest site map of every site, in memory, for building orders (node positions, lanes, paths).

``site.maps`` is keyed by site and the bridge by robot, so, as the telemetry processor does, the bridge
reads the whole compacted topic beside the application (``SiteMapFeed``) into a :class:`SiteModelIndex`;
the topology only calls :meth:`SiteModelIndex.lookup`.
"""

from __future__ import annotations

import threading
from typing import Any

from topologies.vda5050.sitemodel import SiteModel, model_for

__all__ = ["SiteModelIndex"]


class SiteModelIndex:
    """Latest :class:`SiteModel` per (tenant_id, site_id); thread-safe, never goes back to an older version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], SiteModel] = {}

    def update(self, site_map: dict[str, Any]) -> bool:
        key = (str(site_map["tenant_id"]), str(site_map["site_id"]))
        with self._lock:
            current = self._models.get(key)
            if current is not None and current.version > int(site_map.get("version", 0)):
                return False
            self._models[key] = model_for(site_map)
            return True

    def remove_site(self, site_id: str) -> None:
        with self._lock:
            for key in [k for k in self._models if k[1] == site_id]:
                del self._models[key]

    def lookup(self, tenant_id: str, site_id: str) -> SiteModel | None:
        return self._models.get((tenant_id, site_id))

    def __len__(self) -> int:
        return len(self._models)
