"""Site maps for the pose check, through state: a site directory keyed by site, bounds kept by each robot.

``site.maps`` is keyed by site and the telemetry topology by robot, so a robot's state cannot read a map.
The maps reach the robots through the processor's inbox, like every input that is not keyed by robot:

1. A feed sends each site map, reduced to the bounds of its shared graph (:func:`map_message`), to the site's key
   (:func:`site_key`) in the inbox. There, :func:`on_site_map` keeps the latest version per tenant and
   sends the bounds to every robot of that tenant that joined the site (``site_bounds``).
2. A robot joins a site the first time it registers or reports there (``site_join`` to the site's key,
   :func:`join`); :func:`on_site_join` records it and answers with the current bounds (None: no map).
3. The robot keeps the bounds of its site in its own state (:func:`on_site_bounds`) and checks poses
   against them. A robot whose site's bounds have not arrived yet is not pose-checked (as on a site
   without a map): that is the first inbox round trip after its registration or first sample at a site.

Everything is state and log, so replaying the same topics gives the same bounds; only the samples a robot
reports within that first round trip depend on timing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NotRequired, TypedDict

from schemas.errors import RejectedRecord
from schemas.records import SiteMap
from schemas.sitegraph import Bounds, graph_for
from topologies.kernel import Envelope, KeyState, Output
from topologies.telemetry.records import INBOX

if TYPE_CHECKING:
    from topologies.telemetry.machine import RobotEntry

__all__ = [
    "SITE_BOUNDS",
    "SITE_JOIN",
    "SITE_MAP",
    "SiteBounds",
    "SiteJoin",
    "SiteMapMessage",
    "bounds_from_list",
    "bounds_of",
    "bounds_to_list",
    "join",
    "map_message",
    "on_site_bounds",
    "on_site_join",
    "on_site_map",
    "site_key",
]

#: Kinds of the inbox messages of the site directory.
SITE_MAP, SITE_JOIN, SITE_BOUNDS = "site_map", "site_join", "site_bounds"
#: State sub-keys of a site key. Renaming one orphans the stored state.
_MAPS, _MEMBERS = "maps", "members"


class SiteMapMessage(TypedDict):
    """``site_map``: a site's map reduced to its bounds (``[version, min_x, min_y, max_x, max_y]``, None
    for a map without coordinates), or its deletion (``deleted``, then only ``site_id`` is set)."""

    site_id: str
    tenant_id: NotRequired[str]
    version: NotRequired[int]
    bounds: NotRequired[list[float] | None]
    deleted: NotRequired[bool]


class SiteJoin(TypedDict):
    """``site_join``: a robot asks its site's key for the bounds of the site's map."""

    tenant_id: str
    site_id: str
    robot_id: str


class SiteBounds(TypedDict):
    """``site_bounds``: the bounds of a site's map for one robot (None: no map)."""

    tenant_id: str
    site_id: str
    bounds: list[float] | None


class _KeptMap(TypedDict):
    version: int
    bounds: list[float] | None


def bounds_of(site_map: SiteMap) -> Bounds | None:
    """The bounding box of a SiteMap (nodes and zone corners), from its shared graph (``schemas.sitegraph``);
    None for a map without coordinates. :class:`RejectedRecord` for a map that is not a graph."""
    try:
        return graph_for(site_map).bounds
    except ValueError as exc:  # a lane to an unknown node, a duplicate node id
        raise RejectedRecord(f"site map v{site_map.get('version')} is not a graph: {exc}") from exc


def bounds_to_list(bounds: Bounds | None) -> list[float] | None:
    """Bounds as stored in a robot's state and sent in messages: ``[version, min_x, min_y, max_x, max_y]``."""
    if bounds is None:
        return None
    return [bounds.version, bounds.min_x, bounds.min_y, bounds.max_x, bounds.max_y]


def bounds_from_list(values: list[float] | None) -> Bounds | None:
    if not values:
        return None
    version, min_x, min_y, max_x, max_y = values
    return Bounds(int(version), min_x, min_y, max_x, max_y)


def site_key(site_id: str) -> str:
    """The inbox key of a site (robot ids and site keys share the inbox and the state store)."""
    return f"site:{site_id}"


def map_message(site_map: SiteMap | None, key: str) -> list[tuple[str, SiteMapMessage]]:
    """What the site-map feed sends for a ``site.maps`` record (key: the site id): the bounds, or a
    deletion for a tombstone."""
    if site_map is None:
        return [(site_key(key), {"site_id": key, "deleted": True})]
    message: SiteMapMessage = {
        "site_id": site_map["site_id"],
        "tenant_id": site_map["tenant_id"],
        "version": int(site_map["version"]),
        "bounds": bounds_to_list(bounds_of(site_map)),
    }
    return [(site_key(site_map["site_id"]), message)]


def _bounds(robot_id: str, tenant_id: str, site_id: str, bounds: list[float] | None) -> Output:
    message: SiteBounds = {"tenant_id": tenant_id, "site_id": site_id, "bounds": bounds}
    return Output(INBOX, robot_id, Envelope(SITE_BOUNDS, message))


def on_site_map(state: KeyState, message: SiteMapMessage) -> list[Output]:
    """A site map (or its deletion) at the site's key: keep it, tell the robots of its tenant."""
    maps: dict[str, _KeptMap] = dict(state.get(_MAPS) or {})
    members: dict[str, list[str]] = state.get(_MEMBERS) or {}
    site_id = message["site_id"]
    if message.get("deleted"):
        state.set(_MAPS, {})
        return [_bounds(r, tenant, site_id, None) for tenant in sorted(maps) for r in members.get(tenant, ())]
    tenant = message["tenant_id"]
    current = maps.get(tenant)
    if current is not None and current["version"] > message["version"]:
        return []  # an older version than the one kept
    maps[tenant] = {"version": message["version"], "bounds": message["bounds"]}
    state.set(_MAPS, maps)
    return [_bounds(r, tenant, site_id, message["bounds"]) for r in members.get(tenant, ())]


def on_site_join(state: KeyState, message: SiteJoin) -> list[Output]:
    """A robot joins the site: remember it, answer with the current bounds of its tenant."""
    tenant, robot_id = message["tenant_id"], message["robot_id"]
    members: dict[str, list[str]] = state.get(_MEMBERS) or {}
    if robot_id not in members.get(tenant, ()):
        state.set(_MEMBERS, {**members, tenant: sorted({*members.get(tenant, ()), robot_id})})
    current = (state.get(_MAPS) or {}).get(tenant)
    return [_bounds(robot_id, tenant, message["site_id"], current["bounds"] if current else None)]


def join(robot_id: str, tenant_id: str, site_id: str) -> Output:
    """A robot's request for the bounds of ``site_id`` (answered by :func:`on_site_join`)."""
    message: SiteJoin = {"tenant_id": tenant_id, "site_id": site_id, "robot_id": robot_id}
    return Output(INBOX, site_key(site_id), Envelope(SITE_JOIN, message))


def on_site_bounds(entry: RobotEntry, message: SiteBounds) -> RobotEntry | None:
    """The robot entry with the bounds of ``message`` when they are of the site it joined last (None:
    not its site any more, nothing to change)."""
    if entry.get("joined") != [message["tenant_id"], message["site_id"]]:
        return None
    return {**entry, "bounds": message["bounds"]}
