"""Pure rules of the telemetry topology: what is impossible (rejected) and which status a sample means."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from schemas.errors import RejectedRecord
from schemas.records import RobotTelemetry
from schemas.sitegraph import Bounds
from topologies.telemetry.config import TelemetryConfig

if TYPE_CHECKING:
    from topologies.telemetry.machine import Registration

__all__ = ["WORKING_PHASES", "derive_status", "validate_telemetry"]

#: Task phases during which a robot that reports no mode of its own counts as WORKING.
WORKING_PHASES = frozenset({"STARTED", "IN_PROGRESS"})


def validate_telemetry(
    record: RobotTelemetry,
    registration: Registration | None,
    bounds: Bounds | None,
    config: TelemetryConfig,
    now_ms: int,
) -> None:
    """Raise :class:`RejectedRecord` with a precise reason if ``record`` cannot be true.

    Checked in this order: the robot is registered (for this tenant) and active; the sample is not from
    the future (beyond ``future_skew_ms`` of the wall clock ``now_ms``); battery within 0..1; speed
    finite and not negative; pose finite and, when the site has a map, inside its bounds plus margin.
    A site without a known map is not checked (nothing proves the pose impossible).
    """
    robot_id = record["robot_id"]
    tenant_id = record["tenant_id"]
    if registration is None:
        raise RejectedRecord(f"unknown robot {robot_id!r}: not registered on robot.registry")
    if registration["tenant_id"] != tenant_id:
        raise RejectedRecord(
            f"unknown robot {robot_id!r} for tenant {tenant_id!r}: registered to another tenant"
        )
    if not registration.get("active", True):
        raise RejectedRecord(f"robot {robot_id!r} is retired (inactive on robot.registry)")

    ahead = record["occurred_at"] - now_ms
    if ahead > config.future_skew_ms:
        raise RejectedRecord(
            f"occurred_at {record['occurred_at']} is {ahead} ms in the future "
            f"(allowed clock skew {config.future_skew_ms} ms)"
        )

    battery = record["battery"]
    if not 0.0 <= battery <= 1.0:  # also false for NaN
        raise RejectedRecord(f"battery {battery!r} outside 0..1")
    speed = record.get("speed", 0.0)
    if not (speed >= 0.0 and math.isfinite(speed)):
        raise RejectedRecord(f"speed {speed!r} is not a finite non-negative m/s value")

    pose = record["pose"]
    x, y = pose["x"], pose["y"]
    if not (math.isfinite(x) and math.isfinite(y)):
        raise RejectedRecord(f"pose ({x!r}, {y!r}) is not a finite coordinate")
    if bounds is not None and not bounds.contains(x, y, config.map_margin_m):
        raise RejectedRecord(
            f"pose ({x:g}, {y:g}) off the map of site {record['site_id']!r} v{bounds.version}: "
            f"x {bounds.min_x:g}..{bounds.max_x:g}, y {bounds.min_y:g}..{bounds.max_y:g} "
            f"(margin {config.map_margin_m:g} m)"
        )


def derive_status(record: RobotTelemetry, config: TelemetryConfig) -> str:
    """The RobotState a valid telemetry sample means.

    ERROR when the robot says so or reports an error code; CHARGING, WORKING and MOVING when it says so;
    otherwise (IDLE or UNKNOWN) MOVING above ``moving_speed``, WORKING during a started task, else IDLE.
    """
    mode = record.get("mode") or "UNKNOWN"
    if mode == "ERROR" or record.get("error_code"):
        return "ERROR"
    if mode in ("CHARGING", "WORKING", "MOVING"):
        return mode
    if record.get("speed", 0.0) > config.moving_speed:
        return "MOVING"
    if record.get("task_id") and record.get("task_phase") in WORKING_PHASES:
        return "WORKING"
    return "IDLE"
