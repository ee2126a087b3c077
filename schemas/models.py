"""Pydantic models of every record: the in-process view producers and the gateway use.

The Avro schemas in ``schemas/avro/`` are derived from these models (``schemas.avrogen``) and a test
fails on any difference, so the two cannot drift. Timestamps are ``int`` epoch milliseconds (UTC).
Dump a model for the codec with ``model.model_dump(mode="json")``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.avrotypes import AvroEnum, Long, TimestampMs
from schemas.ids import now_ms, uuid7

__all__ = [
    "RECORD_MODELS",
    "Alert",
    "AlertKind",
    "AuditEvent",
    "Charger",
    "CommandType",
    "Conflict",
    "ConflictKind",
    "Decision",
    "DecisionKind",
    "DependencyPolicy",
    "FleetRecord",
    "Lane",
    "Manager",
    "MisfirePolicy",
    "Node",
    "NodeKind",
    "Point",
    "Pose",
    "Resolution",
    "RobotRegistration",
    "RobotState",
    "RobotStatus",
    "RobotTelemetry",
    "RouteWaypoint",
    "Severity",
    "SiteMap",
    "SiteRecord",
    "SitelessRecord",
    "StatusReason",
    "TaskCommand",
    "TaskEvent",
    "TaskEventKind",
    "TaskPhase",
    "TaskSchedule",
    "TaskSpec",
    "TaskState",
    "TelemetryAggregate",
    "TelemetryMode",
    "Timer",
    "Zone",
    "ZoneKind",
]

_CONFIG = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------------------------- enums


class TelemetryMode(AvroEnum):
    """Operating mode a robot reports about itself."""

    UNKNOWN = "UNKNOWN"
    IDLE = "IDLE"
    MOVING = "MOVING"
    WORKING = "WORKING"
    CHARGING = "CHARGING"
    ERROR = "ERROR"


class TaskPhase(AvroEnum):
    """Progress of the robot's current task as the robot reports it."""

    __avro_default__ = "NONE"
    NONE = "NONE"
    STARTED = "STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


class Manager(AvroEnum):
    """Who dispatches a robot and plans its motion: fleetstream (tasks and traffic grants), an Open-RMF fleet
    adapter, or the robot itself (it takes tasks but plans its own way: traffic only monitors it)."""

    __avro_default__ = "FLEETSTREAM"
    FLEETSTREAM = "FLEETSTREAM"
    RMF = "RMF"
    SELF = "SELF"


class RobotState(AvroEnum):
    """Status derived by the telemetry topology."""

    UNKNOWN = "UNKNOWN"
    IDLE = "IDLE"
    MOVING = "MOVING"
    WORKING = "WORKING"
    CHARGING = "CHARGING"
    ERROR = "ERROR"
    OFFLINE = "OFFLINE"


class StatusReason(AvroEnum):
    """Why a RobotStatus was emitted."""

    UNKNOWN = "UNKNOWN"
    CHANGE = "CHANGE"
    HEARTBEAT = "HEARTBEAT"
    OFFLINE = "OFFLINE"
    RMF = "RMF"


class NodeKind(AvroEnum):
    """Role of a node of the site graph."""

    __avro_default__ = "WAYPOINT"
    WAYPOINT = "WAYPOINT"
    AISLE = "AISLE"
    PICKUP = "PICKUP"
    DROPOFF = "DROPOFF"
    STATION = "STATION"
    CHARGER = "CHARGER"
    PARKING = "PARKING"


class ZoneKind(AvroEnum):
    """Traffic rule of a zone."""

    UNKNOWN = "UNKNOWN"
    NO_GO = "NO_GO"
    SLOW = "SLOW"
    ONE_WAY = "ONE_WAY"


class CommandType(AvroEnum):
    """What a TaskCommand asks the tasks topology to do."""

    UNKNOWN = "UNKNOWN"
    CREATE = "CREATE"
    CANCEL = "CANCEL"
    TIMER = "TIMER"


class DependencyPolicy(AvroEnum):
    """What happens to a task when one of its prerequisites fails."""

    __avro_default__ = "CANCEL"
    CANCEL = "CANCEL"
    FAIL = "FAIL"


class MisfirePolicy(AvroEnum):
    """What a schedule does about fire times missed while it was not running."""

    __avro_default__ = "FIRE_ONCE"
    SKIP = "SKIP"
    FIRE_ONCE = "FIRE_ONCE"


class TaskEventKind(AvroEnum):
    """Whether a TaskEvent is a transition or the refusal of an input."""

    UNKNOWN = "UNKNOWN"
    TRANSITION = "TRANSITION"
    REJECTED = "REJECTED"
    DUPLICATE = "DUPLICATE"


class TaskState(AvroEnum):
    """States of the task state machine."""

    UNKNOWN = "UNKNOWN"
    CREATED = "CREATED"
    WAITING = "WAITING"
    QUEUED = "QUEUED"
    ASSIGNED = "ASSIGNED"
    DISPATCHED = "DISPATCHED"
    EXECUTING = "EXECUTING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


class DecisionKind(AvroEnum):
    """What a scheduler decision tells a robot or the tasks topology."""

    UNKNOWN = "UNKNOWN"
    ASSIGN = "ASSIGN"
    UNASSIGN = "UNASSIGN"
    CHARGE = "CHARGE"
    HOLD = "HOLD"
    RESUME = "RESUME"
    REROUTE = "REROUTE"
    GRANT = "GRANT"


class ConflictKind(AvroEnum):
    """Kind of traffic conflict."""

    UNKNOWN = "UNKNOWN"
    VERTEX = "VERTEX"
    EDGE = "EDGE"
    FOLLOWING = "FOLLOWING"
    NO_GO_ZONE = "NO_GO_ZONE"
    DEADLOCK = "DEADLOCK"


class Resolution(AvroEnum):
    """How the traffic topology resolved a conflict."""

    UNKNOWN = "UNKNOWN"
    HOLD = "HOLD"
    REROUTE = "REROUTE"
    NONE = "NONE"


class AlertKind(AvroEnum):
    """Kind of alert."""

    UNKNOWN = "UNKNOWN"
    ROBOT_OFFLINE = "ROBOT_OFFLINE"
    ROBOT_ONLINE = "ROBOT_ONLINE"
    BATTERY_LOW = "BATTERY_LOW"
    BATTERY_OK = "BATTERY_OK"
    TASK_FAILED = "TASK_FAILED"
    CONFLICT_UNRESOLVED = "CONFLICT_UNRESOLVED"
    CONFLICT_CLEARED = "CONFLICT_CLEARED"


class Severity(AvroEnum):
    """Severity of an alert."""

    __avro_default__ = "WARNING"
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


# -------------------------------------------------------------------------------------- shared types


class Pose(BaseModel):
    """Position of a robot on a site map."""

    model_config = _CONFIG
    x: float = Field(description="X coordinate in metres, map frame.")
    y: float = Field(description="Y coordinate in metres, map frame.")
    yaw: float = Field(default=0.0, description="Heading in radians, map frame.")
    node_id: str | None = Field(default=None, description="Graph node the robot is at, if it is at one.")
    map_name: str | None = Field(default=None, description="Map (floor/level) the coordinates refer to.")


class RouteWaypoint(BaseModel):
    """One node of a planned route with the estimated arrival time."""

    model_config = _CONFIG
    node_id: str = Field(description="Graph node of the site map.")
    eta: TimestampMs = Field(description="Estimated arrival at the node, epoch ms UTC.")


class TaskSpec(BaseModel):
    """What a task asks for: category, places, constraints and dependencies."""

    model_config = _CONFIG
    category: str = Field(description='Task category: "delivery", "patrol", "pick", "charge", "compose", ...')
    priority: int = Field(default=5, description="Priority, 0 (low) to 10 (high).")
    pickup_node: str | None = Field(default=None, description="Graph node to pick up at.")
    dropoff_node: str | None = Field(default=None, description="Graph node to drop off at.")
    required_capabilities: list[str] = Field(
        default_factory=list, description="Capabilities a robot needs to take the task."
    )
    deadline: TimestampMs | None = Field(
        default=None, description="Time the task should be done by, epoch ms UTC."
    )
    timeout_ms: Long | None = Field(
        default=None, description="Time after which a running task times out, in ms."
    )
    max_attempts: int = Field(default=3, description="Attempts before the task fails for good.")
    depends_on: list[str] = Field(default_factory=list, description="Task ids that must succeed first.")
    on_dependency_failure: DependencyPolicy = Field(
        default=DependencyPolicy.CANCEL, description="What to do with this task when a prerequisite fails."
    )
    fleet_id: str | None = Field(default=None, description="Restrict the task to this fleet.")
    robot_id: str | None = Field(default=None, description="Pin the task to this robot.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")
    payload_json: str | None = Field(default=None, description="Opaque task payload as a JSON document.")


# ------------------------------------------------------------------------------------------- records


_EVENT_ID_DOC = "UUIDv7 of this record; the idempotency key of every sink."
_OCCURRED_AT_DOC = "Event time, epoch ms UTC."


class FleetRecord(BaseModel):
    """Fields every record carries (base of :class:`SiteRecord` and :class:`SitelessRecord`)."""

    model_config = _CONFIG
    event_id: str = Field(default_factory=uuid7, description=_EVENT_ID_DOC)
    tenant_id: str = Field(description="Tenant that owns the record.")


class SiteRecord(FleetRecord):
    """A record that always belongs to one site."""

    site_id: str = Field(description="Site (warehouse) the record belongs to.")
    occurred_at: TimestampMs = Field(default_factory=now_ms, description=_OCCURRED_AT_DOC)


class SitelessRecord(FleetRecord):
    """A record where the site does not always apply (``site_id`` nullable)."""

    site_id: str | None = Field(default=None, description="Site the record concerns, if any.")
    occurred_at: TimestampMs = Field(default_factory=now_ms, description=_OCCURRED_AT_DOC)


class RobotTelemetry(SiteRecord):
    """One telemetry sample reported by a robot (topic robot.telemetry, key robot_id)."""

    robot_id: str = Field(description="Robot that reported the sample.")
    fleet_id: str = Field(description="Fleet the robot belongs to.")
    seq: Long = Field(description="Per-robot sequence number, increasing.")
    pose: Pose = Field(description="Where the robot is.")
    battery: float = Field(description="State of charge, 0..1.")
    speed: float = Field(default=0.0, description="Speed in m/s.")
    mode: TelemetryMode = Field(description="Operating mode the robot reports.")
    error_code: str | None = Field(default=None, description="Vendor error code when mode is ERROR.")
    task_id: str | None = Field(default=None, description="Task the robot is working on.")
    task_phase: TaskPhase = Field(
        default=TaskPhase.NONE, description="Progress of that task as the robot sees it."
    )
    route: list[RouteWaypoint] = Field(
        default_factory=list, description="Planned route, first entry the robot's next node."
    )


class RobotRegistration(SiteRecord):
    """A robot known to the fleet (topic robot.registry, compacted, key robot_id)."""

    robot_id: str = Field(description="Robot id, unique per tenant.")
    fleet_id: str = Field(description="Fleet the robot belongs to.")
    name: str = Field(description="Human-readable name.")
    model: str | None = Field(default=None, description="Vendor model.")
    capabilities: list[str] = Field(default_factory=list, description="What the robot can do.")
    max_payload_kg: float | None = Field(default=None, description="Maximum payload in kg.")
    managed_by: Manager = Field(default=Manager.FLEETSTREAM, description="Who dispatches the robot.")
    active: bool = Field(default=True, description="False once the robot is retired.")


class RobotStatus(SiteRecord):
    """Derived robot status (topic robot.status, key robot_id)."""

    robot_id: str = Field(description="Robot the status is about.")
    fleet_id: str = Field(description="Fleet the robot belongs to.")
    status: RobotState = Field(description="Current derived status.")
    previous_status: RobotState | None = Field(default=None, description="Status before this change.")
    battery: float = Field(description="State of charge, 0..1.")
    pose: Pose = Field(description="Last known pose.")
    speed: float = Field(description="Last known speed in m/s.")
    task_id: str | None = Field(default=None, description="Task the robot is working on.")
    route: list[RouteWaypoint] = Field(default_factory=list, description="Planned route.")
    seq: Long = Field(description="Sequence number of the telemetry this status derives from.")
    last_seen_at: TimestampMs = Field(description="Time of the last telemetry, epoch ms UTC.")
    reason: StatusReason = Field(description="Why this status was emitted.")


class TelemetryAggregate(SiteRecord):
    """One-minute tumbling aggregate of a robot's telemetry (topic robot.telemetry.1m)."""

    robot_id: str = Field(description="Robot the aggregate is about.")
    fleet_id: str = Field(description="Fleet the robot belongs to.")
    window_start: TimestampMs = Field(description="Window start (inclusive), epoch ms UTC.")
    window_end: TimestampMs = Field(description="Window end (exclusive), epoch ms UTC.")
    count: int = Field(description="Telemetry samples in the window.")
    battery_min: float = Field(description="Lowest state of charge in the window.")
    battery_max: float = Field(description="Highest state of charge in the window.")
    battery_avg: float = Field(description="Mean state of charge in the window.")
    speed_avg: float = Field(description="Mean speed in m/s.")
    speed_max: float = Field(description="Highest speed in m/s.")
    distance_m: float = Field(description="Distance travelled in the window, metres.")


class Node(BaseModel):
    """A node of the site graph."""

    model_config = _CONFIG
    id: str = Field(description="Node id, unique in the map.")
    x: float = Field(description="X coordinate in metres.")
    y: float = Field(description="Y coordinate in metres.")
    kind: NodeKind = Field(default=NodeKind.WAYPOINT, description="Role of the node.")
    name: str | None = Field(default=None, description="Human-readable name.")


class Lane(BaseModel):
    """A lane (edge) of the site graph."""

    model_config = _CONFIG
    id: str = Field(description="Lane id, unique in the map.")
    from_node: str = Field(description="Start node.")
    to_node: str = Field(description="End node.")
    bidirectional: bool = Field(default=True, description="Whether robots may drive the lane both ways.")
    speed_limit: float | None = Field(default=None, description="Speed limit in m/s.")


class Point(BaseModel):
    """A 2D point in metres."""

    model_config = _CONFIG
    x: float = Field(description="X coordinate in metres.")
    y: float = Field(description="Y coordinate in metres.")


class Zone(BaseModel):
    """A polygonal zone with a traffic rule."""

    model_config = _CONFIG
    id: str = Field(description="Zone id, unique in the map.")
    kind: ZoneKind = Field(description="Traffic rule of the zone.")
    polygon: list[Point] = Field(description="Polygon corners, in order.")


class Charger(BaseModel):
    """A charging station."""

    model_config = _CONFIG
    id: str = Field(description="Charger id.")
    node_id: str = Field(description="Graph node of the charger.")


class SiteMap(SiteRecord):
    """A versioned site graph (topic site.maps, compacted, key site_id)."""

    version: int = Field(description="Map version, increasing per site.")
    name: str = Field(description="Human-readable map name.")
    nodes: list[Node] = Field(description="Nodes of the graph.")
    lanes: list[Lane] = Field(description="Lanes of the graph.")
    zones: list[Zone] = Field(default_factory=list, description="Zones with traffic rules.")
    chargers: list[Charger] = Field(default_factory=list, description="Charging stations.")


class TaskCommand(SiteRecord):
    """A command to the tasks topology (topic task.commands, key task_id)."""

    task_id: str = Field(description="Task the command is about.")
    command: CommandType = Field(description="What to do.")
    idempotency_key: str | None = Field(
        default=None, description="Client key that makes creation idempotent."
    )
    spec: TaskSpec | None = Field(default=None, description="Task specification, for CREATE.")
    reason: str | None = Field(default=None, description="Why, for CANCEL.")
    requested_by: str | None = Field(default=None, description="User or service that sent the command.")
    timer: str | None = Field(default=None, description="Which timer fired, for TIMER.")


class TaskSchedule(SiteRecord):
    """A cron schedule that creates tasks (topic task.schedules, compacted, key schedule_id)."""

    schedule_id: str = Field(description="Schedule id.")
    cron: str = Field(description="Cron expression, five fields.")
    timezone: str = Field(default="UTC", description="IANA time zone the cron expression is read in.")
    template: TaskSpec = Field(description="Specification of the tasks the schedule creates.")
    enabled: bool = Field(default=True, description="Whether the schedule fires.")
    misfire_policy: MisfirePolicy = Field(
        default=MisfirePolicy.FIRE_ONCE, description="What to do about missed fires."
    )


class TaskEvent(SiteRecord):
    """A transition of a task, or the refusal of an input (topic task.events, key task_id)."""

    task_id: str = Field(description="Task the event is about.")
    seq: Long = Field(description="Per-task sequence number, gapless from 1.")
    kind: TaskEventKind = Field(description="Transition or refusal.")
    state: TaskState = Field(description="State after the event.")
    previous_state: TaskState | None = Field(default=None, description="State before the event.")
    reason: str | None = Field(default=None, description="Why the transition or refusal happened.")
    robot_id: str | None = Field(default=None, description="Robot the task is assigned to.")
    attempt: int = Field(default=0, description="Attempt number, 0 before the first.")
    spec: TaskSpec | None = Field(default=None, description="Task specification, on CREATED.")
    external_id: str | None = Field(default=None, description="Task id in an external system (RMF).")
    causation_id: str | None = Field(
        default=None, description="event_id of the input that caused this event."
    )


class Decision(SiteRecord):
    """A dispatch or traffic decision (topic scheduler.decisions)."""

    decision_id: str = Field(description="Decision id.")
    kind: DecisionKind = Field(description="What is decided.")
    robot_id: str = Field(description="Robot the decision is about.")
    task_id: str | None = Field(default=None, description="Task the decision is about.")
    route: list[RouteWaypoint] = Field(default_factory=list, description="Route the robot should follow.")
    eta: TimestampMs | None = Field(default=None, description="Estimated arrival at the goal, epoch ms UTC.")
    cost: float | None = Field(default=None, description="Cost of the assignment.")
    reason: str | None = Field(default=None, description="Why the decision was made.")
    conflict_id: str | None = Field(default=None, description="Conflict that caused the decision.")
    planner: str = Field(default="in_process", description="Planner that made the decision.")
    granted: int | None = Field(
        default=None,
        description="How many waypoints of route, from its start, the robot may drive onto (the released "
        "base); the rest of route is the planned horizon. Null: not a grant.",
    )
    plan_id: str | None = Field(
        default=None, description="Movement plan (one goal of one robot) the decision belongs to."
    )
    plan_seq: int | None = Field(
        default=None, description="0 for the plan's first decision, +1 for each update of the plan."
    )
    pickup_node: str | None = Field(
        default=None,
        description="ASSIGN: the task's pickup node (from its spec), for robots driven by order.",
    )
    dropoff_node: str | None = Field(
        default=None,
        description="ASSIGN: the task's drop-off node (from its spec), for robots driven by order.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="ASSIGN: the task's labels (from its spec: loadId, loadType, ...)."
    )


class Conflict(SiteRecord):
    """A traffic conflict with its resolution (topic traffic.conflicts, key site_id)."""

    conflict_id: str = Field(description="Conflict id.")
    kind: ConflictKind = Field(description="Kind of conflict.")
    robot_ids: list[str] = Field(description="Robots involved.")
    node_id: str | None = Field(default=None, description="Node where the conflict happens.")
    lane_id: str | None = Field(default=None, description="Lane where the conflict happens.")
    zone_id: str | None = Field(default=None, description="Zone entered, for NO_GO_ZONE.")
    window_start: TimestampMs = Field(description="Start of the conflicting window, epoch ms UTC.")
    window_end: TimestampMs = Field(
        description="End of the conflicting window, epoch ms UTC; with open_ended, the last instant known "
        "when it was emitted (the window goes on: a robot that stands until further notice)."
    )
    resolution: Resolution = Field(description="How the conflict was resolved.")
    resolved_robot_id: str | None = Field(default=None, description="Robot that holds or re-routes.")
    detail: str | None = Field(default=None, description="Human-readable detail.")
    open_ended: bool = Field(
        default=False, description="The window had no known end when the conflict was emitted."
    )


class Alert(SiteRecord):
    """An alert raised by a topology (topic alerts, key subject id)."""

    alert_id: str = Field(description="Alert id.")
    kind: AlertKind = Field(description="Kind of alert.")
    severity: Severity = Field(default=Severity.WARNING, description="Severity.")
    subject_id: str = Field(description="Robot, task or site the alert is about.")
    message: str = Field(description="Human-readable message.")


class AuditEvent(SitelessRecord):
    """One mutating call to the gateway (topic audit.log, key tenant_id)."""

    site_id: str | None = Field(default=None, description="Site the call concerned, if any.")
    actor: str = Field(description="User or service that made the call.")
    role: str = Field(description="Role the actor acted in.")
    action: str = Field(description='What was done, e.g. "task.create".')
    resource_type: str = Field(description="Type of the resource acted on.")
    resource_id: str = Field(description="Id of the resource acted on.")
    request_id: str | None = Field(default=None, description="Request id for correlation.")
    status_code: int = Field(description="HTTP status code of the answer.")
    details_json: str | None = Field(default=None, description="Extra details as a JSON document.")


class Timer(SitelessRecord):
    """A timer a topology arms (topic timers, key timer_id; fired to timers.due.<owner>)."""

    site_id: str | None = Field(default=None, description="Site the timer belongs to, if any.")
    timer_id: str = Field(description="Timer id, the key on the timers topic.")
    owner: str = Field(description="Processor that owns the timer.")
    target_key: str = Field(description="Key of the owner's input the due timer is produced with.")
    due_at: TimestampMs = Field(description="When the timer is due, epoch ms UTC.")
    payload_json: str | None = Field(default=None, description="Opaque payload as a JSON document.")


#: Every top-level record, by Avro record name.
RECORD_MODELS: dict[str, type[FleetRecord]] = {
    m.__name__: m
    for m in (
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
        AuditEvent,
        Timer,
    )
}
