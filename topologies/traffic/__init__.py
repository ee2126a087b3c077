"""The traffic topology (key site_id): space-time reservations of planned routes, conflict detection
(vertex, edge, following distance, no-go zones, deadlocks) and resolution (HOLD / RESUME / REROUTE).

``machine.step`` is the monitor's pure per-site transition (inputs tagged with their kind: ``STATUS``, ``MAP``,
``TASK``, ``TICK``), ``site.step`` the site's (monitor and coordinator) and ``builder.build_traffic`` its
adapter to the kernel. Parts:
``reservations`` (the indexed table), ``detect`` (clashes, zone hits, wait-for cycles), ``problems``
(what to resolve, emitted once), ``resolve`` (who yields; HOLD at a safe node), ``detour`` (A* reroutes),
``deadlock`` (cycle breaking), ``resume`` (RESUME with hysteresis), ``graph`` (the view, by node id, of
the shared site graph ``schemas.sitegraph``: lanes, dead ends, no-go zones, searches), ``geometry``
(distance to a lane), ``state`` (the in-memory site), ``records`` (output builders).
"""

from topologies.traffic.builder import KINDS, OUTPUT_TOPICS, TrafficStep, build_traffic
from topologies.traffic.config import OWNER, TrafficConfig
from topologies.traffic.detect import Clash, ZoneHit, clash_between, clashes_of, find_cycle, zone_hits
from topologies.traffic.graph import SiteView
from topologies.traffic.machine import MAP, STATUS, TASK, TICK, new_site, remove_robot, step
from topologies.traffic.records import ALERTS, CONFLICTS, DECISIONS, Output, conflict_id
from topologies.traffic.reservations import OPEN, Reservation, ReservationTable, plan_reservations
from topologies.traffic.state import SiteState, effective_plan, full_plan

__all__ = [
    "ALERTS",
    "CONFLICTS",
    "DECISIONS",
    "KINDS",
    "MAP",
    "OPEN",
    "OUTPUT_TOPICS",
    "OWNER",
    "STATUS",
    "TASK",
    "TICK",
    "Clash",
    "Output",
    "Reservation",
    "ReservationTable",
    "SiteState",
    "SiteView",
    "TrafficConfig",
    "TrafficStep",
    "ZoneHit",
    "build_traffic",
    "clash_between",
    "clashes_of",
    "conflict_id",
    "effective_plan",
    "find_cycle",
    "full_plan",
    "new_site",
    "plan_reservations",
    "remove_robot",
    "step",
    "zone_hits",
]
