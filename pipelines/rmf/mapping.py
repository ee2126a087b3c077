"""RMF fleet states -> our RobotStatus records (pure): ``step(memory, fleet_state_update, ...) -> records``.

- One RobotStatus per robot of ``data.robots``, ``robot_id`` = robot name, ``fleet_id`` = fleet name,
  ``reason`` = RMF, ``seq`` = RMF's ``unix_millis_time`` (increasing per robot), ``last_seen_at`` the same.
- RMF status -> RobotState: uninitialized -> UNKNOWN, offline / shutdown -> OFFLINE, idle -> IDLE,
  charging -> CHARGING, working -> WORKING, error -> ERROR (no status: UNKNOWN).
- battery: RMF's fraction 0..1 as is; location ``{map, x, y, yaw}`` -> Pose(x, y, yaw, map_name=map).
- Duplicates and repeats are dropped: a robot state not newer than the last one seen (RMF re-sends on
  reconnect), or whose status, battery, pose and task did not change, yields nothing.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

from schemas.ids import uuid7

__all__ = ["RMF_ROBOT_STATUS", "robot_statuses"]

RMF_ROBOT_STATUS: dict[str, str] = {
    "uninitialized": "UNKNOWN",
    "offline": "OFFLINE",
    "shutdown": "OFFLINE",
    "idle": "IDLE",
    "charging": "CHARGING",
    "working": "WORKING",
    "error": "ERROR",
}

#: Per robot: (last unix_millis_time, fingerprint of what was last emitted, last status).
Memory = MutableMapping[str, tuple[int, tuple[Any, ...], str]]


def robot_statuses(
    memory: Memory,
    message: dict[str, Any],
    *,
    tenant_id: str,
    site_id: str,
    received_ms: int,
    new_id: Callable[[], str] = uuid7,
) -> list[dict[str, Any]]:
    """The RobotStatus dicts a ``fleet_state_update`` means, updating ``memory`` (keyed fleet/robot)."""
    data = message.get("data") if message.get("type") == "fleet_state_update" else None
    if not isinstance(data, dict):
        return []
    fleet = str(data.get("name") or "")
    out: list[dict[str, Any]] = []
    for name, robot in sorted((data.get("robots") or {}).items()):
        if not isinstance(robot, dict):
            continue
        robot_id = str(robot.get("name") or name)
        at = int(robot.get("unix_millis_time") or received_ms)
        key = f"{fleet}/{robot_id}"
        last = memory.get(key)
        if last is not None and at <= last[0]:
            continue  # a duplicate or an older state
        location = robot.get("location") or {}
        status = RMF_ROBOT_STATUS.get(str(robot.get("status")), "UNKNOWN")
        pose: dict[str, Any] = {
            "x": float(location.get("x", 0.0)),
            "y": float(location.get("y", 0.0)),
            "yaw": float(location.get("yaw", 0.0)),
            "node_id": None,
            "map_name": location.get("map"),
        }
        battery = float(robot.get("battery", 0.0))
        task_id = robot.get("task_id") or None
        fingerprint = (status, round(battery, 4), round(pose["x"], 3), round(pose["y"], 3), round(pose["yaw"], 3),
                       pose["map_name"], task_id)  # fmt: skip
        if last is not None and last[1] == fingerprint:
            memory[key] = (at, fingerprint, last[2])
            continue
        out.append(
            {
                "event_id": new_id(),
                "tenant_id": tenant_id,
                "site_id": site_id,
                "occurred_at": at,
                "robot_id": robot_id,
                "fleet_id": fleet,
                "status": status,
                "previous_status": last[2] if last else None,
                "battery": battery,
                "pose": pose,
                "speed": 0.0,
                "task_id": task_id,
                "route": [],
                "seq": at,
                "last_seen_at": at,
                "reason": "RMF",
            }
        )
        memory[key] = (at, fingerprint, status)
    return out
