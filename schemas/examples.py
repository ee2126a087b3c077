"""One realistic example of every record, as a model and as a codec dict (docs, tests, demos)."""

from __future__ import annotations

from typing import Any

from schemas import models as m

__all__ = ["example", "example_model"]

_T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_ROUTE = [m.RouteWaypoint(node_id="n12", eta=_T0 + 4_000), m.RouteWaypoint(node_id="n13", eta=_T0 + 9_000)]
_SPEC = m.TaskSpec(
    category="delivery",
    priority=7,
    pickup_node="n3",
    dropoff_node="n42",
    required_capabilities=["lift"],
    deadline=_T0 + 600_000,
    timeout_ms=900_000,
    depends_on=["task-0001"],
    labels={"order": "SO-1001"},
    payload_json='{"sku": "A-17", "qty": 2}',
)
_BASE: dict[str, Any] = {"tenant_id": "tenant-a", "site_id": "site-1", "occurred_at": _T0}


def _examples() -> dict[str, m.FleetRecord]:
    pose = m.Pose(x=12.5, y=3.25, yaw=1.57, node_id="n12", map_name="L1")
    return {
        "RobotTelemetry": m.RobotTelemetry(
            **_BASE,
            robot_id="robot-0001",
            fleet_id="fleet-a",
            seq=42,
            pose=pose,
            battery=0.81,
            speed=0.9,
            mode=m.TelemetryMode.MOVING,
            task_id="task-0002",
            task_phase=m.TaskPhase.IN_PROGRESS,
            route=_ROUTE,
        ),
        "RobotRegistration": m.RobotRegistration(
            **_BASE,
            robot_id="robot-0001",
            fleet_id="fleet-a",
            name="AMR 1",
            model="MiR250",
            capabilities=["lift", "tow"],
            max_payload_kg=250.0,
        ),
        "RobotStatus": m.RobotStatus(
            **_BASE,
            robot_id="robot-0001",
            fleet_id="fleet-a",
            status=m.RobotState.MOVING,
            previous_status=m.RobotState.IDLE,
            battery=0.81,
            pose=pose,
            speed=0.9,
            task_id="task-0002",
            route=_ROUTE,
            seq=42,
            last_seen_at=_T0,
            reason=m.StatusReason.CHANGE,
        ),
        "TelemetryAggregate": m.TelemetryAggregate(
            **_BASE,
            robot_id="robot-0001",
            fleet_id="fleet-a",
            window_start=_T0,
            window_end=_T0 + 60_000,
            count=60,
            battery_min=0.8,
            battery_max=0.82,
            battery_avg=0.81,
            speed_avg=0.7,
            speed_max=1.2,
            distance_m=42.0,
        ),
        "SiteMap": m.SiteMap(
            **_BASE,
            version=3,
            name="Warehouse 1",
            nodes=[
                m.Node(id="n1", x=0, y=0),
                m.Node(id="c1", x=5, y=0, kind=m.NodeKind.CHARGER, name="Dock"),
            ],
            lanes=[m.Lane(id="l1", from_node="n1", to_node="c1", speed_limit=1.0)],
            zones=[
                m.Zone(
                    id="z1",
                    kind=m.ZoneKind.NO_GO,
                    polygon=[m.Point(x=0, y=0), m.Point(x=1, y=0), m.Point(x=1, y=1)],
                )
            ],
            chargers=[m.Charger(id="ch1", node_id="c1")],
        ),
        "TaskCommand": m.TaskCommand(
            **_BASE,
            task_id="task-0002",
            command=m.CommandType.CREATE,
            idempotency_key="req-77",
            spec=_SPEC,
            requested_by="alice",
        ),
        "TaskSchedule": m.TaskSchedule(
            **_BASE,
            schedule_id="sched-1",
            cron="*/15 6-22 * * 1-5",
            timezone="Europe/Berlin",
            template=_SPEC,
        ),
        "TaskEvent": m.TaskEvent(
            **_BASE,
            task_id="task-0002",
            seq=1,
            kind=m.TaskEventKind.TRANSITION,
            state=m.TaskState.CREATED,
            spec=_SPEC,
            causation_id="01950000-0000-7000-8000-000000000000",
        ),
        "Decision": m.Decision(
            **_BASE,
            decision_id="dec-1",
            kind=m.DecisionKind.ASSIGN,
            robot_id="robot-0001",
            task_id="task-0002",
            route=_ROUTE,
            eta=_T0 + 9_000,
            cost=12.5,
            reason="cheapest travel",
        ),
        "Conflict": m.Conflict(
            **_BASE,
            conflict_id="conf-1",
            kind=m.ConflictKind.VERTEX,
            robot_ids=["robot-0001", "robot-0002"],
            node_id="n13",
            window_start=_T0 + 8_000,
            window_end=_T0 + 10_000,
            resolution=m.Resolution.HOLD,
            resolved_robot_id="robot-0002",
        ),
        "Alert": m.Alert(
            **_BASE,
            alert_id="alert-1",
            kind=m.AlertKind.BATTERY_LOW,
            subject_id="robot-0001",
            message="battery 14% below 15%",
        ),
        "AuditEvent": m.AuditEvent(
            tenant_id="tenant-a",
            occurred_at=_T0,
            actor="alice",
            role="operator",
            action="task.create",
            resource_type="task",
            resource_id="task-0002",
            request_id="req-77",
            status_code=202,
        ),
        "Timer": m.Timer(
            **_BASE,
            timer_id="offline:robot-0001",
            owner="telemetry",
            target_key="robot-0001",
            due_at=_T0 + 30_000,
            payload_json='{"kind": "offline"}',
        ),
    }


def example_model(record: str) -> m.FleetRecord:
    """A fresh example model of ``record`` (e.g. ``"RobotTelemetry"``)."""
    return _examples()[record]


def example(record: str) -> dict[str, Any]:
    """The example of ``record`` as the dict the codec writes and reads (timestamps as int ms)."""
    return example_model(record).model_dump(mode="json")
