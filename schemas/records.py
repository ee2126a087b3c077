"""Typed dicts of the records as topologies see them: what the Avro codec decodes and encodes.

The pydantic models (``schemas.models``) are the producers' and the gateway's view; topologies work on
plain dicts for speed, typed here so that mypy checks field names and types. Every dict the codec
decodes has all fields (the reader fills defaults), hence ``total=True``.
``tests/unit/schemas/test_records.py`` checks each of these against ``schemas/avro/*.avsc`` (field
names, nullability, nested records), so they cannot drift from the contract.

Enum fields are plain ``str`` (the Avro symbol); the sets of task states live here too, once.
"""

from __future__ import annotations

from typing import Any, TypedDict

__all__ = [
    "ACTIVE_TASK_STATES",
    "RECORD_TYPES",
    "RUNNING_TASK_STATES",
    "TASK_STATES",
    "TERMINAL_TASK_STATES",
    "Alert",
    "Charger",
    "Conflict",
    "Decision",
    "DecisionCore",
    "Lane",
    "Node",
    "Point",
    "Pose",
    "RobotRegistration",
    "RobotStatus",
    "RobotTelemetry",
    "RouteWaypoint",
    "SiteMap",
    "TaskCommand",
    "TaskEvent",
    "TaskSchedule",
    "TaskSpec",
    "TelemetryAggregate",
    "Timer",
    "Zone",
    "task_spec",
]

#: TaskState symbols in lifecycle order (``schemas.models.TaskState`` without its UNKNOWN default).
TASK_STATES = (
    "CREATED",
    "WAITING",
    "QUEUED",
    "ASSIGNED",
    "DISPATCHED",
    "EXECUTING",
    "RETRYING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "TIMED_OUT",
)
#: A task in one of these states is finished for good.
TERMINAL_TASK_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
#: A robot holds the task: the attempt timeout runs, progress and UNASSIGN apply.
RUNNING_TASK_STATES = frozenset({"ASSIGNED", "DISPATCHED", "EXECUTING"})
#: Created and not finished.
ACTIVE_TASK_STATES = frozenset(TASK_STATES) - TERMINAL_TASK_STATES


class Pose(TypedDict):
    x: float
    y: float
    yaw: float
    node_id: str | None
    map_name: str | None


class RouteWaypoint(TypedDict):
    node_id: str
    eta: int


class TaskSpec(TypedDict):
    category: str
    priority: int
    pickup_node: str | None
    dropoff_node: str | None
    required_capabilities: list[str]
    deadline: int | None
    timeout_ms: int | None
    max_attempts: int
    depends_on: list[str]
    on_dependency_failure: str
    fleet_id: str | None
    robot_id: str | None
    labels: dict[str, str]
    payload_json: str | None


def task_spec(**fields: Any) -> TaskSpec:
    """A new TaskSpec: no category, priority 5, one attempt and no constraint, then ``fields``. What code
    reads of a task that has no spec (yet), and the base of the specs fleetstream writes itself."""
    spec: TaskSpec = {
        "category": "",
        "priority": 5,
        "pickup_node": None,
        "dropoff_node": None,
        "required_capabilities": [],
        "deadline": None,
        "timeout_ms": None,
        "max_attempts": 1,
        "depends_on": [],
        "on_dependency_failure": "CANCEL",
        "fleet_id": None,
        "robot_id": None,
        "labels": {},
        "payload_json": None,
    }
    spec.update(fields)  # type: ignore[typeddict-item]
    return spec


class RobotTelemetry(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    robot_id: str
    fleet_id: str
    seq: int
    pose: Pose
    battery: float
    speed: float
    mode: str
    error_code: str | None
    task_id: str | None
    task_phase: str
    route: list[RouteWaypoint]


class RobotRegistration(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    robot_id: str
    fleet_id: str
    name: str
    model: str | None
    capabilities: list[str]
    max_payload_kg: float | None
    managed_by: str
    active: bool


class RobotStatus(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    robot_id: str
    fleet_id: str
    status: str
    previous_status: str | None
    battery: float
    pose: Pose
    speed: float
    task_id: str | None
    route: list[RouteWaypoint]
    seq: int
    last_seen_at: int
    reason: str


class TelemetryAggregate(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    robot_id: str
    fleet_id: str
    window_start: int
    window_end: int
    count: int
    battery_min: float
    battery_max: float
    battery_avg: float
    speed_avg: float
    speed_max: float
    distance_m: float


class Node(TypedDict):
    id: str
    x: float
    y: float
    kind: str
    name: str | None


class Lane(TypedDict):
    id: str
    from_node: str
    to_node: str
    bidirectional: bool
    speed_limit: float | None


class Point(TypedDict):
    x: float
    y: float


class Zone(TypedDict):
    id: str
    kind: str
    polygon: list[Point]


class Charger(TypedDict):
    id: str
    node_id: str


class SiteMap(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    version: int
    name: str
    nodes: list[Node]
    lanes: list[Lane]
    zones: list[Zone]
    chargers: list[Charger]


class TaskCommand(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    task_id: str
    command: str
    idempotency_key: str | None
    spec: TaskSpec | None
    reason: str | None
    requested_by: str | None
    timer: str | None


class TaskSchedule(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    schedule_id: str
    cron: str
    timezone: str
    template: TaskSpec
    enabled: bool
    misfire_policy: str


class TaskEvent(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    task_id: str
    seq: int
    kind: str
    state: str
    previous_state: str | None
    reason: str | None
    robot_id: str | None
    attempt: int
    spec: TaskSpec | None
    external_id: str | None
    causation_id: str | None


class DecisionCore(TypedDict):
    """The fields of a :class:`Decision` every producer writes (traffic's HOLD / RESUME / REROUTE have only
    these: the codec writes the others with their defaults)."""

    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    decision_id: str
    kind: str
    robot_id: str
    task_id: str | None
    route: list[RouteWaypoint]
    eta: int | None
    cost: float | None
    reason: str | None
    conflict_id: str | None
    planner: str


class Decision(DecisionCore):
    granted: int | None
    plan_id: str | None
    plan_seq: int | None
    pickup_node: str | None
    dropoff_node: str | None
    labels: dict[str, str]


class Conflict(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    conflict_id: str
    kind: str
    robot_ids: list[str]
    node_id: str | None
    lane_id: str | None
    zone_id: str | None
    window_start: int
    window_end: int
    resolution: str
    resolved_robot_id: str | None
    detail: str | None
    open_ended: bool


class Alert(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    alert_id: str
    kind: str
    severity: str
    subject_id: str
    message: str


class Timer(TypedDict):
    event_id: str
    tenant_id: str
    site_id: str | None
    occurred_at: int
    timer_id: str
    owner: str
    target_key: str
    due_at: int
    payload_json: str | None


#: The typed dict of every top-level record a topology reads or writes, by Avro record name.
RECORD_TYPES: dict[str, type] = {
    t.__name__: t
    for t in (
        RobotTelemetry,
        RobotRegistration,
        RobotStatus,
        TelemetryAggregate,
        SiteMap,
        TaskCommand,
        TaskSchedule,
        TaskEvent,
        Decision,
        Conflict,
        Alert,
        Timer,
    )
}
