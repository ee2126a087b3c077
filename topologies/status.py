"""RobotStatus, built in one place: the telemetry topology (our robots), RMF ingest (Open-RMF robots) and
the VDA 5050 bridge (VDA 5050 vehicles) all emit it, and every consumer (dispatch, traffic, the sinks, SSE)
must see the same record."""

from __future__ import annotations

from collections.abc import Sequence

from schemas.catalog import ROBOT_STATUS
from schemas.records import Pose, RobotStatus, RouteWaypoint
from topologies.kernel import Output

__all__ = ["robot_status"]


def robot_status(
    *,
    event_id: str,
    tenant_id: str,
    site_id: str,
    occurred_at: int,
    robot_id: str,
    fleet_id: str,
    status: str,
    previous_status: str | None,
    battery: float,
    pose: Pose,
    speed: float,
    task_id: str | None,
    route: Sequence[RouteWaypoint],
    seq: int,
    last_seen_at: int,
    reason: str,
) -> Output:
    """A RobotStatus for ``robot.status`` (key robot_id). ``event_id`` must be derived from what the
    status is about (see the callers), so a replay emits the same id."""
    record: RobotStatus = {
        "event_id": event_id,
        "tenant_id": tenant_id,
        "site_id": site_id,
        "occurred_at": occurred_at,
        "robot_id": robot_id,
        "fleet_id": fleet_id,
        "status": status,
        "previous_status": previous_status,
        "battery": battery,
        "pose": pose,
        "speed": speed,
        "task_id": task_id,
        "route": list(route),
        "seq": seq,
        "last_seen_at": last_seen_at,
        "reason": reason,
    }
    return Output(ROBOT_STATUS, robot_id, record)
