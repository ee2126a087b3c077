"""The traffic topology's pure per-site transition: ``step(site, kind, event, now_ms) -> outputs``.

A site holds two kinds of robots:

- robots fleetstream *coordinates* (its own fleets, VDA 5050 vehicles): they drive only onto what the
  :class:`~topologies.traffic.coordinate.Coordinator` grants them, exclusively, so they cannot collide;
- robots whose own system plans their traffic (Open-RMF fleets: their statuses carry ``reason = RMF``):
  they are *monitored* by the reservation model (``machine``), which detects conflicts and resolves them
  with HOLD / RESUME / REROUTE.

They share the site: the nodes a monitored robot stands on or is about to reach are not granted to a
coordinated robot until it has passed, and a monitored robot's way across what a coordinated robot holds
is a conflict the monitor resolves by holding the monitored robot.

Which kind a robot is comes from its RobotRegistration (``managed_by``: FLEETSTREAM is coordinated, RMF
and SELF are monitored) or, for a robot not registered here, from its statuses (``reason`` RMF).

Kinds of input (tagged when the topology is wired): ``status`` (RobotStatus), ``registration``
(RobotRegistration), ``map`` (SiteMap), ``task`` (TaskEvent, for task priorities), ``tick`` (no record:
time passes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from schemas.records import RobotStatus, SiteMap
from schemas.sitegraph import graph_for
from topologies.traffic import machine
from topologies.traffic.config import TrafficConfig
from topologies.traffic.coordinate import Coordinator
from topologies.traffic.machine import MAP, STATUS, TASK, TICK
from topologies.traffic.records import Output
from topologies.traffic.state import SiteState

__all__ = ["MAP", "REGISTRATION", "STATUS", "TASK", "TICK", "TrafficSite", "block_monitored", "step"]

logger = logging.getLogger(__name__)

#: The site's kinds of input: the monitor's (``machine``: status, map, task, tick) and registrations.
REGISTRATION = "registration"
#: Who plans the traffic of a robot, by its registration's ``managed_by``: fleetstream, or the robot's own system.
_MONITORED_MANAGERS = frozenset({"RMF", "SELF"})

#: How far ahead (ms) a monitored robot's reported route keeps its nodes from being granted.
_MONITOR_AHEAD_MS = 4_000


@dataclass
class TrafficSite:
    """Everything the traffic topology knows of one site."""

    config: TrafficConfig
    monitor: SiteState
    coordinator: Coordinator | None = None
    monitored: set[str] = field(default_factory=set)  # robots that plan their own traffic
    tick_due: int | None = None  # due time of the planning tick armed through the timer service

    @classmethod
    def new(cls, config: TrafficConfig, site_id: str = "", tenant_id: str = "") -> TrafficSite:
        return cls(config=config, monitor=machine.new_site(config, site_id, tenant_id))

    @property
    def site_map(self) -> SiteMap | None:
        return self.monitor.site_map


def _coordinated(site: TrafficSite, record: RobotStatus) -> bool:
    rid = record["robot_id"]
    if record.get("reason") == "RMF":
        site.monitored.add(rid)
    return rid not in site.monitored


def _on_map(site: TrafficSite, record: SiteMap, now: int) -> list[Output]:
    current = site.site_map
    if current is not None and int(record.get("version", 0)) < int(current.get("version", 0)):
        return []
    _, out = machine.step(site.monitor, MAP, record, now)
    graph = graph_for(record, site.config.speed_mps)
    old = site.coordinator
    if old is not None and old.graph is graph:
        return out
    coordinator = Coordinator(graph, site.config)
    if old is not None:  # the robots keep what they hold where the new map still has it
        coordinator.load(old.records(old.table.movers).values())  # type: ignore[arg-type]
        coordinator.changed |= set(old.table.movers)
        logger.info(
            "traffic site %s: map v%s, %d coordinated robots carried over",
            site.monitor.site_id,
            record.get("version"),
            len(old.table.movers),
        )
    site.coordinator = coordinator
    return out


def block_monitored(site: TrafficSite, now: int) -> None:
    """Keep the coordinator off the nodes monitored robots stand on or reach within the next seconds."""
    coordinator = site.coordinator
    if coordinator is None:
        return
    index = coordinator.graph.index
    blocked: set[int] = set()
    for rid in site.monitored:
        entry = site.monitor.robots.get(rid)
        if entry is None:
            continue
        node = index.get(entry.get("node") or "")
        if node is not None:
            blocked.add(node)
        for node_id, eta in entry.get("route") or ():
            if int(eta) > now + _MONITOR_AHEAD_MS:
                break
            i = index.get(node_id)
            if i is not None:
                blocked.add(i)
    coordinator.table.blocked = blocked


def step(site: TrafficSite, kind: str, event: Any, now_ms: int) -> list[Output]:
    """Apply one input of ``kind`` at event time ``now_ms``; mutates ``site``, returns the outputs.

    ``event`` is the record of its kind's type (:mod:`schemas.records`; the kind tags it, as the feed it
    came from): RobotStatus (``status``), RobotRegistration (``registration``), SiteMap (``map``),
    TaskEvent (``task``), None (``tick``)."""
    out: list[Output] = []
    if kind == MAP and event is not None:
        out.extend(_on_map(site, event, now_ms))
    elif kind == STATUS and event is not None:
        if _coordinated(site, event):
            if site.coordinator is not None:
                site.coordinator.priorities = site.monitor.tasks.get
                out.extend(site.coordinator.on_status(event, now_ms))
        else:
            if site.coordinator is not None and event["robot_id"] in site.coordinator.table.movers:
                out.extend(site.coordinator.remove(event["robot_id"], now_ms))
            _, monitor_out = machine.step(site.monitor, STATUS, event, now_ms)
            out.extend(monitor_out)
            block_monitored(site, now_ms)
    elif kind == REGISTRATION and event is not None:
        rid = event["robot_id"]
        if event.get("managed_by") in _MONITORED_MANAGERS and event.get("active", True):
            site.monitored.add(rid)
            if site.coordinator is not None and rid in site.coordinator.table.movers:
                out.extend(site.coordinator.remove(rid, now_ms))  # what it held is free: the monitor has it
        elif event.get("managed_by") == "FLEETSTREAM":
            site.monitored.discard(rid)
    elif kind == TASK and event is not None:
        _, monitor_out = machine.step(site.monitor, TASK, event, now_ms)
        out.extend(monitor_out)
    elif kind == TICK:
        _, monitor_out = machine.step(site.monitor, TICK, None, now_ms)
        out.extend(monitor_out)
    else:
        raise ValueError(f"not a traffic input kind: {kind!r}")
    if site.coordinator is not None:
        out.extend(site.coordinator.plan(now_ms))
    return out
