"""Request (``*Create``) and response (``*Public``) models of the REST API.

Times are epoch milliseconds (UTC), as in every record. Public models accept what the readers return
(Redis JSON, Postgres rows with timestamps as ISO strings) and publish a stable shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator

from schemas.models import (
    AlertKind,
    Charger,
    ConflictKind,
    DecisionKind,
    DependencyPolicy,
    Lane,
    Manager,
    MisfirePolicy,
    Node,
    NodeKind,
    Pose,
    Resolution,
    RouteWaypoint,
    Severity,
    TaskSpec,
    Zone,
    ZoneKind,
)

__all__ = [
    "CRON_PATTERN",
    "ID_PATTERN",
    "MAX_TIMESTAMP_MS",
    "TIME_ZONES",
    "Accepted",
    "AlertPublic",
    "ChargerIn",
    "ConflictPublic",
    "DecisionPublic",
    "Dependency",
    "EpochMs",
    "ErrorBody",
    "ErrorItem",
    "Identifier",
    "LaneIn",
    "MapAccepted",
    "NodeIn",
    "Page",
    "PointIn",
    "RobotCreate",
    "RobotPublic",
    "ScheduleCreate",
    "SchedulePublic",
    "SiteMapIn",
    "SiteMapPublic",
    "SitePublic",
    "TaskAccepted",
    "TaskCancel",
    "TaskCreate",
    "TaskPublic",
    "TaskSpecIn",
    "TelemetryPage",
    "TelemetryPoint",
    "ZoneIn",
]

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
#: 9999-12-31T23:59:59.999Z: every epoch-ms instant a record carries lies in years 1970..9999.
MAX_TIMESTAMP_MS = 253_402_300_799_999
Identifier = Annotated[
    str, Field(pattern=ID_PATTERN, description="Id: letters, digits, . _ : -, at most 128.")
]
T = TypeVar("T")


def _names(names: str) -> str:
    return "|".join(f"{n}|{n.lower()}" for n in names.split())


def _cron_field(value: str) -> str:
    item = rf"(?:\*|{value}(?:-{value})?)(?:/[1-9][0-9]?)?"
    return rf"{item}(?:,{item}){{0,15}}"


#: Five cron fields (minute, hour, day of month, month, day of week) of numbers in range, `*`, `a-b`, `/step`
#: and lists, one space apart: every expression of this form is one the schedules accept (tests check it).
CRON_PATTERN = (
    "^"
    + " ".join(
        _cron_field(v)
        for v in (
            "(?:[1-5]?[0-9])",  # minute 0-59
            "(?:2[0-3]|1[0-9]|[0-9])",  # hour 0-23
            "(?:3[01]|[12][0-9]|[1-9])",  # day of month 1-31
            "(?:1[0-2]|[1-9]|"
            + _names("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC")
            + ")",  # month 1-12
            "(?:[0-7]|" + _names("SUN MON TUE WED THU FRI SAT") + ")",  # day of week 0-7 (0 and 7: Sunday)
        )
    )
    + "$"
)
#: The IANA time zones this host knows (what a schedule's `timezone` may be).
TIME_ZONES = sorted(available_timezones())


def _to_ms(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            return int(value)
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return value


EpochMs = Annotated[int, BeforeValidator(_to_ms), Field(description="Epoch milliseconds, UTC.")]


def _number(value: Any) -> Any:
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON number")
    return value


# Request numbers and flags follow JSON Schema: `false` is not 0 and `"3"` is not 3 (but 3.0 is 3).
_NUMBER = BeforeValidator(_number)  # after any Field constraints in Annotated, or they leave the JSON schema
Int = Annotated[int, _NUMBER]
Float = Annotated[float, _NUMBER]
Bool = Annotated[bool, Strict()]
_IN = ConfigDict(extra="forbid")
_OUT = ConfigDict(extra="ignore", populate_by_name=True)


Dependency = Literal["kafka", "postgres", "redis", "influxdb"]


class ErrorItem(BaseModel):
    """One problem: where (path of the field) and what."""

    loc: list[str | int] = Field(
        description='Path of the offending field, e.g. ["body", "lanes", 2, "to_node"].'
    )
    msg: str = Field(description="What is wrong.")
    type: str | None = Field(None, description="Machine-readable kind of problem.")


class ErrorBody(BaseModel):
    """Every error answer has this shape."""

    error: str = Field(description='Short code: "validation_error", "not_found", "unauthorized", ...')
    message: str = Field(description="Human-readable summary.")
    detail: list[ErrorItem] = Field(default_factory=list, description="Each problem with its field path.")
    dependency: Dependency | None = Field(default=None, description="On 503: the service that is down.")


class Page(BaseModel, Generic[T]):
    """A page of items, newest first; pass ``next_cursor`` as ``cursor`` for the next page."""

    items: list[T]
    next_cursor: str | None = None


class Accepted(BaseModel):
    """The command was written to Kafka; its effect becomes visible once the topologies processed it."""

    id: str
    status: Literal["accepted"] = "accepted"


# --------------------------------------------------------------------------------------------- tasks


class TaskSpecIn(BaseModel):
    """What a task asks for."""

    model_config = _IN
    category: str = Field(
        min_length=1, max_length=64, description='"delivery", "patrol", "pick", "charge", ...'
    )
    priority: Int = Field(5, ge=0, le=10, description="0 (low) to 10 (high).")
    pickup_node: Identifier | None = None
    dropoff_node: Identifier | None = None
    required_capabilities: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=32
    )
    deadline: Annotated[int, Field(ge=0, le=MAX_TIMESTAMP_MS), _NUMBER] | None = Field(
        None, description="Epoch ms UTC, in years 1970..9999."
    )
    timeout_ms: Annotated[int, Field(ge=1, le=7 * 86_400_000), _NUMBER] | None = None
    max_attempts: Int = Field(3, ge=1, le=20)
    depends_on: list[Identifier] = Field(default_factory=list, max_length=64, description="Task ids.")
    on_dependency_failure: DependencyPolicy = DependencyPolicy.CANCEL
    fleet_id: Identifier | None = None
    robot_id: Identifier | None = Field(None, description="Pin the task to this robot.")
    labels: dict[Annotated[str, Field(max_length=64)], Annotated[str, Field(max_length=256)]] = Field(
        default_factory=dict, max_length=32
    )
    payload: dict[str, Any] | None = Field(
        None,
        description="Opaque JSON payload handed to the robot: at most `FLEET_TASK_MAX_PAYLOAD_BYTES` (default "
        "16384) bytes as compact JSON; a larger one is refused (422).",
    )

    @field_validator("payload")
    @classmethod
    def _payload_is_portable_json(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        import orjson

        if value is not None:
            try:
                orjson.dumps(value)
            except TypeError as exc:  # e.g. integers beyond 64 bits
                raise ValueError(f"not representable as portable JSON: {exc}") from None
        return value

    def to_record(self) -> TaskSpec:
        import orjson

        data = self.model_dump(exclude={"payload"})
        data["payload_json"] = orjson.dumps(self.payload).decode() if self.payload is not None else None
        return TaskSpec.model_validate(data)


class TaskCreate(BaseModel):
    """A new task at a site."""

    model_config = _IN
    site_id: Identifier
    spec: TaskSpecIn


class TaskCancel(BaseModel):
    model_config = _IN
    reason: str | None = Field(None, max_length=500)


class TaskAccepted(BaseModel):
    """The CREATE command is in Kafka. The same Idempotency-Key always yields the same task id."""

    task_id: str
    status: Literal["accepted"] = "accepted"
    idempotency_key: str | None = None


class TaskPublic(BaseModel):
    """A task as the projections see it: the same fields from GET /v1/tasks/{task_id} and the list."""

    model_config = _OUT
    task_id: str
    site_id: str | None = None
    state: str | None = None
    robot_id: str | None = None
    attempt: int | None = None
    seq: int | None = None
    reason: str | None = None
    category: str | None = None
    priority: int | None = None
    external_id: str | None = Field(
        None, description="The task's id in an external system: Open-RMF's task (booking) id."
    )
    origin: str | None = Field(
        None, description="Where the task came from (e.g. a task Open-RMF created itself), when recorded."
    )
    created_at: EpochMs | None = None
    updated_at: EpochMs | None = None
    source: Literal["redis", "postgres"] = Field(
        "postgres",
        description="`postgres`: the projected row; `redis`: its state is the newer one of the hot view "
        "(Postgres has not caught up, or is down: then the fields only Postgres holds are null).",
    )


# -------------------------------------------------------------------------------------------- robots


class RobotCreate(BaseModel):
    """Register (or update) a robot."""

    model_config = _IN
    robot_id: Identifier
    site_id: Identifier
    fleet_id: Identifier
    name: str = Field(min_length=1, max_length=128)
    model: str | None = Field(None, max_length=128)
    capabilities: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=64
    )
    max_payload_kg: Annotated[float, Field(ge=0, le=100_000), _NUMBER] | None = None
    managed_by: Manager = Manager.FLEETSTREAM
    active: Bool = True


class RobotPublic(BaseModel):
    """A robot's registration and latest status (from Redis when fresh, else Postgres)."""

    model_config = _OUT
    robot_id: str
    site_id: str | None = None
    fleet_id: str | None = None
    name: str | None = None
    model: str | None = None
    capabilities: list[str] | None = None
    status: str | None = None
    battery: float | None = None
    speed: float | None = None
    pose: Pose | None = None
    task_id: str | None = None
    route: list[RouteWaypoint] | None = None
    last_seen_at: EpochMs | None = None
    source: Literal["redis", "postgres"] = "postgres"


# ---------------------------------------------------------------------------------------- sites/maps


class NodeIn(BaseModel):
    """A node of the site graph."""

    model_config = _IN
    id: Identifier
    x: Float = Field(allow_inf_nan=False, description="X coordinate in metres.")
    y: Float = Field(allow_inf_nan=False, description="Y coordinate in metres.")
    kind: NodeKind = NodeKind.WAYPOINT
    name: str | None = Field(None, max_length=128)


class LaneIn(BaseModel):
    """A lane (edge) between two nodes."""

    model_config = _IN
    id: Identifier
    from_node: str = Field(min_length=1, max_length=128)
    to_node: str = Field(min_length=1, max_length=128)
    bidirectional: Bool = True
    speed_limit: Annotated[float, Field(gt=0, allow_inf_nan=False), _NUMBER] | None = Field(
        None, description="m/s."
    )


class PointIn(BaseModel):
    model_config = _IN
    x: Float = Field(allow_inf_nan=False)
    y: Float = Field(allow_inf_nan=False)


class ZoneIn(BaseModel):
    """A polygonal zone with a traffic rule."""

    model_config = _IN
    id: Identifier
    kind: ZoneKind
    polygon: list[PointIn] = Field(max_length=64, description="Corners in order (at most 64).")


class ChargerIn(BaseModel):
    model_config = _IN
    id: Identifier
    node_id: str = Field(min_length=1, max_length=128)


class SiteMapIn(BaseModel):
    """A site graph. Validated before it is produced: see PUT /v1/sites/{site_id}/map."""

    model_config = _IN
    version: Int = Field(ge=1, le=2**31 - 1, description="Map version, increasing per site.")
    name: str = Field(min_length=1, max_length=128)
    nodes: list[NodeIn] = Field(min_length=1, max_length=20_000)
    lanes: list[LaneIn] = Field(default_factory=list, max_length=50_000)
    zones: list[ZoneIn] = Field(default_factory=list, max_length=1000)
    chargers: list[ChargerIn] = Field(default_factory=list, max_length=1000)


class SiteMapPublic(BaseModel):
    model_config = _OUT
    site_id: str
    version: int
    name: str | None = None
    nodes: list[Node] = Field(default_factory=list)
    lanes: list[Lane] = Field(default_factory=list)
    zones: list[Zone] = Field(default_factory=list)
    chargers: list[Charger] = Field(default_factory=list)
    occurred_at: EpochMs | None = None


class MapAccepted(BaseModel):
    """The map version is in Kafka; it becomes the site's map once the topologies and sinks read it."""

    site_id: str
    version: int
    status: Literal["accepted"] = "accepted"


class SitePublic(BaseModel):
    model_config = _OUT
    site_id: str
    name: str | None = None
    map_version: int | None = None
    updated_at: EpochMs | None = None


# ----------------------------------------------------------------------------------------- schedules


class ScheduleCreate(BaseModel):
    """A cron schedule that creates tasks from a template."""

    model_config = _IN
    site_id: Identifier
    cron: str = Field(
        min_length=9,
        max_length=128,
        pattern=CRON_PATTERN,
        description="Five-field cron expression (minute hour day-of-month month day-of-week) that fires "
        "at least once (not only on a day no month has, like 31 2): numbers, `*`, ranges `a-b`, steps `/n` "
        "and comma lists; months and days of the week also by name (`JAN`, `mon`).",
    )
    timezone: str = Field(
        "UTC",
        max_length=64,
        description="IANA time zone the expression is read in.",
        json_schema_extra={"enum": list[Any](TIME_ZONES)},
    )
    template: TaskSpecIn
    misfire_policy: MisfirePolicy = MisfirePolicy.FIRE_ONCE
    enabled: Bool = True

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class SchedulePublic(BaseModel):
    model_config = _OUT
    schedule_id: str
    site_id: str
    cron: str
    timezone: str
    template: TaskSpec
    enabled: bool
    misfire_policy: MisfirePolicy
    occurred_at: EpochMs | None = None


# ----------------------------------------------------------------------------------------- telemetry


class TelemetryPoint(BaseModel):
    model_config = _OUT
    time: int = Field(description="Point time or bucket start, epoch ms UTC.")
    battery: float | None = None
    speed: float | None = None
    x: float | None = None
    y: float | None = None
    battery_min: float | None = None
    battery_max: float | None = None
    samples: int | None = None


class TelemetryPage(BaseModel):
    robot_id: str
    every: str
    source: Literal["raw", "rollup"]
    points: list[TelemetryPoint]
    next_cursor: str | None = None


# ------------------------------------------------------------------------- decisions/conflicts/alerts


class DecisionPublic(BaseModel):
    model_config = _OUT
    decision_id: str
    site_id: str | None = None
    kind: DecisionKind | str
    robot_id: str | None = None
    task_id: str | None = None
    route: list[RouteWaypoint] | None = None
    eta: EpochMs | None = None
    cost: float | None = None
    reason: str | None = None
    conflict_id: str | None = None
    planner: str | None = None
    occurred_at: EpochMs | None = None


class ConflictPublic(BaseModel):
    model_config = _OUT
    conflict_id: str
    site_id: str | None = None
    kind: ConflictKind | str
    robot_ids: list[str] = Field(default_factory=list)
    node_id: str | None = None
    lane_id: str | None = None
    zone_id: str | None = None
    window_start: EpochMs | None = None
    window_end: EpochMs | None = None
    resolution: Resolution | str | None = None
    resolved_robot_id: str | None = None
    detail: str | None = None
    occurred_at: EpochMs | None = None


class AlertPublic(BaseModel):
    model_config = _OUT
    alert_id: str
    site_id: str | None = None
    kind: AlertKind | str
    severity: Severity | str | None = None
    subject_id: str | None = None
    message: str | None = None
    occurred_at: EpochMs | None = None
