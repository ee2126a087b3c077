"""Builders of the records the telemetry topology emits, with deterministic UUIDv7 event ids.

An output's ``event_id`` is a UUIDv7 whose time is the output's event time and whose random bits are a
hash of what the output is about (robot, seq, kind, ...). Reprocessing the same input therefore yields
the same ids, which keeps every downstream sink idempotent even across a replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from schemas import catalog
from schemas.ids import det_uuid7
from schemas.records import Alert, TelemetryAggregate
from topologies import timers
from topologies.kernel import Output
from topologies.status import robot_status
from topologies.telemetry.config import OWNER

if TYPE_CHECKING:
    from topologies.telemetry.machine import RobotRuntime, Window

__all__ = [
    "ACCEPTED",
    "AGGREGATES",
    "ALERTS",
    "INBOX",
    "STATUS",
    "TIMERS",
    "Output",
    "aggregate",
    "alert",
    "det_uuid7",
    "offline_timer",
    "offline_timer_id",
    "status",
]

# Catalog names of the output topics.
STATUS = catalog.ROBOT_STATUS
ALERTS = catalog.ALERTS
AGGREGATES = catalog.ROBOT_TELEMETRY_1M
TIMERS = catalog.TIMERS
ACCEPTED = catalog.ROBOT_TELEMETRY_ACCEPTED
INBOX = catalog.inbox(OWNER)


def status(
    robot: RobotRuntime, *, status_value: str, previous: str | None, reason: str, occurred_at: int
) -> Output:
    """The RobotStatus of a robot's runtime state (see ``machine``)."""
    return robot_status(
        event_id=det_uuid7(
            occurred_at, robot["tenant_id"], robot["robot_id"], "status", robot["seq"], reason
        ),
        tenant_id=robot["tenant_id"],
        site_id=robot["site_id"],
        occurred_at=occurred_at,
        robot_id=robot["robot_id"],
        fleet_id=robot["fleet_id"],
        status=status_value,
        previous_status=previous,
        battery=robot["battery"],
        pose=robot["pose"],
        speed=robot["speed"],
        task_id=robot["task_id"],
        route=robot["route"],
        seq=robot["seq"],
        last_seen_at=robot["last_seen"],
        reason=reason,
    )


def alert(robot: RobotRuntime, *, kind: str, severity: str, message: str, occurred_at: int) -> Output:
    """An Alert about a robot (key: ``subject_id`` = robot id)."""
    event_id = det_uuid7(occurred_at, robot["tenant_id"], robot["robot_id"], "alert", kind, robot["seq"])
    record: Alert = {
        "event_id": event_id,
        "tenant_id": robot["tenant_id"],
        "site_id": robot["site_id"],
        "occurred_at": occurred_at,
        "alert_id": event_id,
        "kind": kind,
        "severity": severity,
        "subject_id": robot["robot_id"],
        "message": message,
    }
    return Output(ALERTS, robot["robot_id"], record)


def aggregate(robot: RobotRuntime, window: Window, window_ms: int) -> Output:
    """The TelemetryAggregate of an open window accumulator (``occurred_at`` = ``window_start``)."""
    start = window["start"]
    count = window["count"]
    record: TelemetryAggregate = {
        "event_id": det_uuid7(start, robot["tenant_id"], robot["robot_id"], "1m", count, window["last_seq"]),
        "tenant_id": robot["tenant_id"],
        "site_id": window["site_id"],
        "occurred_at": start,
        "robot_id": robot["robot_id"],
        "fleet_id": robot["fleet_id"],
        "window_start": start,
        "window_end": start + window_ms,
        "count": count,
        "battery_min": window["bmin"],
        "battery_max": window["bmax"],
        "battery_avg": window["bsum"] / count,
        "speed_avg": window["ssum"] / count,
        "speed_max": window["smax"],
        "distance_m": window["dist"],
    }
    return Output(AGGREGATES, robot["robot_id"], record)


def offline_timer_id(tenant_id: str, robot_id: str) -> str:
    """One offline timer per robot: re-arming overwrites it on the compacted ``timers`` topic."""
    return f"{OWNER}:offline:{tenant_id}:{robot_id}"


def offline_timer(robot: RobotRuntime, *, due_at: int, occurred_at: int) -> Output:
    """A Timer asking the timer service to hand ``due_at`` back to this robot's key."""
    return timers.arm(
        owner=OWNER,
        timer_id=offline_timer_id(robot["tenant_id"], robot["robot_id"]),
        target_key=robot["robot_id"],
        due_at=due_at,
        at=occurred_at,
        tenant_id=robot["tenant_id"],
        site_id=robot["site_id"],
        payload={"kind": "offline"},
    )
