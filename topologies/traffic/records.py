"""Builders of the records the traffic topology emits, with deterministic ids.

``conflict_id`` is a UUIDv5 over the conflict's kind, its sorted robots, the node/lane/zone and the time
bucket of its window, so the same conflict seen again (another status of the same robots) has the same
id. ``event_id``s are UUIDv7 whose time is the output's event time and whose other bits hash what the
output is about: reprocessing the same input yields the same ids (idempotent sinks across replays).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from schemas import catalog
from schemas.ids import det_uuid7
from schemas.records import (
    Alert,
    Conflict,
    DecisionCore,
    RobotStatus,
    RouteWaypoint,
    SiteMap,
    TaskEvent,
)
from topologies.kernel.output import Output
from topologies.traffic.config import OWNER

if TYPE_CHECKING:
    from topologies.traffic.state import RobotEntry, SiteIds

__all__ = [
    "ALERTS",
    "CONFLICTS",
    "DECISIONS",
    "GrantDecision",
    "MonitorInput",
    "Output",
    "TrafficDecision",
    "alert",
    "conflict",
    "conflict_id",
    "decision",
    "det_uuid7",
]

# Catalog names of the output topics.
CONFLICTS = catalog.TRAFFIC_CONFLICTS
DECISIONS = catalog.SCHEDULER_DECISIONS
ALERTS = catalog.ALERTS

#: A record of the monitor's (``machine``) inputs, as its kind tags it: ``status`` RobotStatus, ``map``
#: SiteMap, ``task`` TaskEvent (``tick`` carries none; the site adds ``registration`` RobotRegistration).
MonitorInput = RobotStatus | SiteMap | TaskEvent


class TrafficDecision(DecisionCore):
    """A HOLD / RESUME / REROUTE :class:`~schemas.records.Decision` as the monitor writes it: without the
    fields that are not traffic's (``granted``, ``plan_id``, ``plan_seq``, ``pickup_node``,
    ``dropoff_node``, ``labels``), which the codec writes with their defaults (null, ``{}``)."""


class GrantDecision(TrafficDecision):
    """A GRANT Decision of the coordinator (``coordinate``): a :class:`TrafficDecision` with its grant."""

    granted: int
    plan_id: str
    plan_seq: int


_NAMESPACE = uuid.UUID("5b0c1f2e-6a53-4c39-9d7e-7f1e0c0a7a11")


def conflict_id(kind: str, robot_ids: Iterable[str], resource: str, start_ms: int, bucket_ms: int) -> str:
    """Deterministic id: uuid5 over kind, sorted robots, node/lane/zone and the window's time bucket."""
    robots = ",".join(sorted(robot_ids))
    return str(uuid.uuid5(_NAMESPACE, f"{kind}|{robots}|{resource}|{start_ms // bucket_ms}"))


def _waypoints(plan: Sequence[tuple[str, int]]) -> list[RouteWaypoint]:
    return [{"node_id": node, "eta": int(eta)} for node, eta in plan]


def decision(
    robot: RobotEntry,
    *,
    kind: str,
    route: Sequence[tuple[str, int]],
    occurred_at: int,
    reason: str,
    conflict: str | None,
    cost: float | None = None,
) -> Output:
    """A HOLD / RESUME / REROUTE Decision for a robot (key: robot_id)."""
    event_id = det_uuid7(occurred_at, robot["tenant_id"], robot["robot_id"], kind, conflict, robot["seq"])
    value: TrafficDecision = {
        "event_id": event_id,
        "tenant_id": robot["tenant_id"],
        "site_id": robot["site_id"],
        "occurred_at": occurred_at,
        "decision_id": event_id,
        "kind": kind,
        "robot_id": robot["robot_id"],
        "task_id": robot.get("task_id"),
        "route": _waypoints(route),
        "eta": int(route[-1][1]) if route else None,
        "cost": cost,
        "reason": reason,
        "conflict_id": conflict,
        "planner": OWNER,
    }
    return Output(DECISIONS, robot["robot_id"], value)


def conflict(
    site: SiteIds,
    *,
    cid: str,
    kind: str,
    robot_ids: Sequence[str],
    window: tuple[int, int],
    resolution: str,
    resolved_robot_id: str | None,
    occurred_at: int,
    node_id: str | None = None,
    lane_id: str | None = None,
    zone_id: str | None = None,
    detail: str | None = None,
    open_ended: bool = False,
) -> Output:
    """A Conflict with its resolution (key: site_id). ``site`` carries tenant_id and site_id.

    ``window`` holds real times: a window with no known end (``open_ended``) ends, in the record, at the
    last instant known when it is emitted; it never carries a sentinel."""
    value: Conflict = {
        "event_id": det_uuid7(occurred_at, site["tenant_id"], cid, "conflict"),
        "tenant_id": site["tenant_id"],
        "site_id": site["site_id"],
        "occurred_at": occurred_at,
        "conflict_id": cid,
        "kind": kind,
        "robot_ids": sorted(robot_ids),
        "node_id": node_id,
        "lane_id": lane_id,
        "zone_id": zone_id,
        "window_start": int(window[0]),
        "window_end": int(max(window)),
        "resolution": resolution,
        "resolved_robot_id": resolved_robot_id,
        "detail": detail,
        "open_ended": open_ended,
    }
    return Output(CONFLICTS, site["site_id"], value)


def alert(
    site: SiteIds,
    *,
    subject_id: str,
    cid: str,
    message: str,
    occurred_at: int,
    kind: str = "CONFLICT_UNRESOLVED",
) -> Output:
    """A CONFLICT_UNRESOLVED (or CONFLICT_CLEARED) alert (key: subject_id, the robot concerned)."""
    event_id = det_uuid7(occurred_at, site["tenant_id"], cid, "alert", subject_id, kind)
    value: Alert = {
        "event_id": event_id,
        "tenant_id": site["tenant_id"],
        "site_id": site["site_id"],
        "occurred_at": occurred_at,
        "alert_id": event_id,
        "kind": kind,
        "severity": "CRITICAL" if kind == "CONFLICT_UNRESOLVED" else "INFO",
        "subject_id": subject_id,
        "message": message,
    }
    return Output(ALERTS, subject_id, value)
