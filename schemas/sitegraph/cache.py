"""The shared graphs: :func:`graph_for` gives every caller the same :class:`SiteGraph` of a map version
(a bounded cache, most recently used kept)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from schemas.sitegraph.graph import SiteGraph

__all__ = ["graph_for"]

_CACHE: OrderedDict[tuple[Any, ...], SiteGraph] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 64


def graph_for(site_map: Mapping[str, Any], nominal_speed_mps: float = 1.0) -> SiteGraph:
    """The shared graph of ``site_map``: one per (tenant, site, version, event id, size, zones, nominal speed).

    A SiteMap record is known by its ``event_id`` (every map the gateway takes gets a new one): two maps
    that share an event id, a version and their counts of nodes and lanes are taken for the same map, and
    its no-go zones are compared too (a test or a replay that reuses an event id for another map must
    change one of these).
    """
    zones = site_map.get("zones") or ()
    key = (
        site_map.get("tenant_id"),
        site_map.get("site_id"),
        int(site_map.get("version", 0)),
        site_map.get("event_id"),
        len(site_map.get("nodes") or ()),
        len(site_map.get("lanes") or ()),
        tuple(
            (z.get("id"), z.get("kind"), tuple((p.get("x"), p.get("y")) for p in z.get("polygon") or ()))
            for z in zones
        ),
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
