from collections.abc import Iterable as _Iterable
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar

from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from google.protobuf.internal import containers as _containers

DESCRIPTOR: _descriptor.FileDescriptor

class SiteRef(_message.Message):
    __slots__ = ("site_id", "site_map_json", "tenant_id", "version")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    SITE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SITE_MAP_JSON_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    site_id: str
    version: int
    site_map_json: str
    def __init__(
        self,
        tenant_id: str | None = ...,
        site_id: str | None = ...,
        version: int | None = ...,
        site_map_json: str | None = ...,
    ) -> None: ...

class Robot(_message.Message):
    __slots__ = ("battery", "capabilities", "fleet_id", "node", "robot_id")
    ROBOT_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    BATTERY_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    FLEET_ID_FIELD_NUMBER: _ClassVar[int]
    robot_id: str
    node: str
    battery: float
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    fleet_id: str
    def __init__(
        self,
        robot_id: str | None = ...,
        node: str | None = ...,
        battery: float | None = ...,
        capabilities: _Iterable[str] | None = ...,
        fleet_id: str | None = ...,
    ) -> None: ...

class Task(_message.Message):
    __slots__ = (
        "created_at_ms",
        "deadline_ms",
        "dropoff",
        "fleet_id",
        "pickup",
        "priority",
        "queued_at_ms",
        "required_capabilities",
        "robot_id",
        "task_id",
    )
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PICKUP_FIELD_NUMBER: _ClassVar[int]
    DROPOFF_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FLEET_ID_FIELD_NUMBER: _ClassVar[int]
    ROBOT_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    priority: int
    pickup: str
    dropoff: str
    required_capabilities: _containers.RepeatedScalarFieldContainer[str]
    deadline_ms: int
    created_at_ms: int
    queued_at_ms: int
    fleet_id: str
    robot_id: str
    def __init__(
        self,
        task_id: str | None = ...,
        priority: int | None = ...,
        pickup: str | None = ...,
        dropoff: str | None = ...,
        required_capabilities: _Iterable[str] | None = ...,
        deadline_ms: int | None = ...,
        created_at_ms: int | None = ...,
        queued_at_ms: int | None = ...,
        fleet_id: str | None = ...,
        robot_id: str | None = ...,
    ) -> None: ...

class AssignRequest(_message.Message):
    __slots__ = ("config_json", "now_ms", "robots", "site", "tasks")
    SITE_FIELD_NUMBER: _ClassVar[int]
    NOW_MS_FIELD_NUMBER: _ClassVar[int]
    ROBOTS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    site: SiteRef
    now_ms: int
    robots: _containers.RepeatedCompositeFieldContainer[Robot]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    config_json: str
    def __init__(
        self,
        site: SiteRef | _Mapping | None = ...,
        now_ms: int | None = ...,
        robots: _Iterable[Robot | _Mapping] | None = ...,
        tasks: _Iterable[Task | _Mapping] | None = ...,
        config_json: str | None = ...,
    ) -> None: ...

class Pair(_message.Message):
    __slots__ = ("cost", "robot_id", "task_id", "travel_s")
    ROBOT_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    COST_FIELD_NUMBER: _ClassVar[int]
    TRAVEL_S_FIELD_NUMBER: _ClassVar[int]
    robot_id: str
    task_id: str
    cost: float
    travel_s: float
    def __init__(
        self,
        robot_id: str | None = ...,
        task_id: str | None = ...,
        cost: float | None = ...,
        travel_s: float | None = ...,
    ) -> None: ...

class AssignResponse(_message.Message):
    __slots__ = ("assignments", "solver", "total_cost")
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_COST_FIELD_NUMBER: _ClassVar[int]
    SOLVER_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Pair]
    total_cost: float
    solver: str
    def __init__(
        self,
        assignments: _Iterable[Pair | _Mapping] | None = ...,
        total_cost: float | None = ...,
        solver: str | None = ...,
    ) -> None: ...

class RouteRequest(_message.Message):
    __slots__ = ("config_json", "site", "start_ms", "via")
    SITE_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    VIA_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    site: SiteRef
    start_ms: int
    via: _containers.RepeatedScalarFieldContainer[str]
    config_json: str
    def __init__(
        self,
        site: SiteRef | _Mapping | None = ...,
        start_ms: int | None = ...,
        via: _Iterable[str] | None = ...,
        config_json: str | None = ...,
    ) -> None: ...

class Waypoint(_message.Message):
    __slots__ = ("eta_ms", "node_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ETA_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    eta_ms: int
    def __init__(self, node_id: str | None = ..., eta_ms: int | None = ...) -> None: ...

class RouteResponse(_message.Message):
    __slots__ = ("eta_ms", "travel_s", "waypoints")
    WAYPOINTS_FIELD_NUMBER: _ClassVar[int]
    ETA_MS_FIELD_NUMBER: _ClassVar[int]
    TRAVEL_S_FIELD_NUMBER: _ClassVar[int]
    waypoints: _containers.RepeatedCompositeFieldContainer[Waypoint]
    eta_ms: int
    travel_s: float
    def __init__(
        self,
        waypoints: _Iterable[Waypoint | _Mapping] | None = ...,
        eta_ms: int | None = ...,
        travel_s: float | None = ...,
    ) -> None: ...
