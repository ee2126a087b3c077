"""The write targets: tables, their columns and conflict rules (``rows`` builds the rows for them).

A ``Table`` is one INSERT target: its columns (timestamps are staged as epoch ms and converted in SQL),
its conflict clause (DO NOTHING for event tables, a guarded DO UPDATE for current-state tables) and, for
upserts, the key and order used to keep only the newest row per key of a batch (Postgres refuses to
update one row twice in one statement, and the older rows would lose against the guard anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

__all__ = [
    "ALERTS",
    "AUDIT",
    "CONFLICTS",
    "DECISIONS",
    "ROBOT_REGISTRY",
    "ROBOT_STATUS",
    "SITES",
    "SITE_MAPS",
    "TABLES",
    "TASKS",
    "TASK_EVENTS",
    "TENANTS",
    "Column",
    "Row",
    "Table",
]

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # the staging column type; "ms" = epoch milliseconds stored as timestamptz

    @property
    def stage_type(self) -> str:
        return "bigint" if self.type == "ms" else self.type

    @property
    def select(self) -> str:
        return f"to_timestamp({self.name} / 1000.0)" if self.type == "ms" else self.name

    @property
    def placeholder(self) -> str:
        return "to_timestamp(%s / 1000.0)" if self.type == "ms" else "%s"


@dataclass(frozen=True, slots=True)
class Table:
    """One write target. ``name`` identifies the writer; ``table`` is the Postgres table it writes."""

    name: str
    table: str
    columns: tuple[Column, ...]
    conflict: str
    key: tuple[str, ...] = ()
    order: tuple[str, ...] = ()  # keep the row with the largest (order) per key
    keep_min: bool = False  # keep the smallest instead
    sticky: tuple[str, ...] = ()  # columns filled from an older row of the batch when the newest has None
    required: tuple[str, ...] = ()  # columns a record must fill (NOT NULL in the table)
    index: dict[str, int] = field(init=False, compare=False)
    required_index: tuple[int, ...] = field(init=False, compare=False)
    required_values: Callable[[Row], tuple[Any, ...]] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "index", {c.name: i for i, c in enumerate(self.columns)})
        unknown = set(self.required) - {c.name for c in self.columns}
        if unknown:
            raise ValueError(f"{self.name}: required columns {sorted(unknown)} are not columns")
        required = [i for i, c in enumerate(self.columns) if c.name in self.required]
        object.__setattr__(self, "required_index", tuple(required))
        getter = itemgetter(*required, required[0])  # always a tuple, even for one column
        object.__setattr__(self, "required_values", getter)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _cols(spec: str) -> tuple[Column, ...]:
    out = []
    for part in spec.split(","):
        name, _, kind = part.strip().partition(":")
        out.append(Column(name, kind or "text"))
    return tuple(out)


def _update(
    table: str, columns: Sequence[str], guard: str, coalesce: Sequence[str] = (), keep: Sequence[str] = ()
) -> str:
    sets = []
    for col in columns:
        if col in keep:
            sets.append(f"{col} = COALESCE({table}.{col}, excluded.{col})")
        elif col in coalesce:
            sets.append(f"{col} = COALESCE(excluded.{col}, {table}.{col})")
        else:
            sets.append(f"{col} = excluded.{col}")
    return f"DO UPDATE SET {', '.join(sets)} WHERE {guard}"


def _newer(table: str, cols: Sequence[str]) -> str:
    mine = ", ".join(f"{table}.{c}" for c in cols)
    theirs = ", ".join(f"excluded.{c}" for c in cols)
    return f"{table}.{cols[0]} IS NULL OR ({theirs}) > ({mine})"


# ------------------------------------------------------------------------------------------- tables
TENANTS = Table(
    "tenants",
    "tenants",
    _cols("tenant_id, first_seen_at:ms"),
    "ON CONFLICT (tenant_id) DO UPDATE SET first_seen_at = excluded.first_seen_at "
    "WHERE excluded.first_seen_at < tenants.first_seen_at",
    key=("tenant_id",),
    order=("first_seen_at",),
    keep_min=True,
    required=("tenant_id", "first_seen_at"),
)
TASK_EVENTS = Table(
    "task_events",
    "task_events",
    _cols(
        "event_id, tenant_id, site_id, task_id, seq:bigint, kind, state, previous_state, reason, robot_id, "
        "attempt:integer, spec:jsonb, external_id, causation_id, occurred_at:ms"
    ),
    "ON CONFLICT DO NOTHING",
    required=("event_id", "tenant_id", "task_id", "seq", "kind", "state", "attempt", "occurred_at"),
)
_TASK_COLUMNS = (
    "site_id, state, attempt:integer, robot_id, external_id, reason, category, priority:integer, "
    "spec:jsonb, depends_on:text[], created_at:ms, updated_at:ms, seq:bigint, last_event_id"
)
TASKS = Table(
    "tasks",
    "tasks",
    _cols("tenant_id, task_id, " + _TASK_COLUMNS),
    "ON CONFLICT (tenant_id, task_id) "
    + _update(
        "tasks",
        [c.name for c in _cols(_TASK_COLUMNS)],
        "tasks.seq < excluded.seq",
        coalesce=("external_id", "category", "priority", "spec", "depends_on"),
        keep=("created_at",),
    ),
    key=("tenant_id", "task_id"),
    order=("seq",),
    sticky=("external_id", "category", "priority", "spec", "depends_on", "created_at"),
    required=("tenant_id", "task_id", "state", "attempt", "updated_at", "seq", "last_event_id"),
)
_STATUS_COLUMNS = (
    "site_id, fleet_id, status, previous_status, status_reason, battery:double precision, "
    "pose:jsonb, "
    "speed:double precision, task_id, route:jsonb, telemetry_seq:bigint, last_seen_at:ms, "
    "status_at:ms, status_event_id"
)
ROBOT_STATUS = Table(
    "robot_status",
    "robots",
    _cols("tenant_id, robot_id, " + _STATUS_COLUMNS),
    "ON CONFLICT (tenant_id, robot_id) "
    + _update(
        "robots", [c.name for c in _cols(_STATUS_COLUMNS)], _newer("robots", ("status_at", "status_event_id"))
    ),
    key=("tenant_id", "robot_id"),
    order=("status_at", "status_event_id"),
    required=("tenant_id", "robot_id", "status", "status_at", "status_event_id"),
)
_REGISTRY_COLUMNS = (
    "site_id, fleet_id, name, model, capabilities:text[], max_payload_kg:double precision, "
    "managed_by, active:boolean, registered_at:ms, registry_event_id"
)
ROBOT_REGISTRY = Table(
    "robot_registry",
    "robots",
    _cols("tenant_id, robot_id, " + _REGISTRY_COLUMNS),
    "ON CONFLICT (tenant_id, robot_id) "
    + _update(
        "robots",
        [c.name for c in _cols(_REGISTRY_COLUMNS)],
        _newer("robots", ("registered_at", "registry_event_id")),
    ),
    key=("tenant_id", "robot_id"),
    order=("registered_at", "registry_event_id"),
    required=("tenant_id", "robot_id", "registered_at", "registry_event_id"),
)
SITES = Table(
    "sites",
    "sites",
    _cols("tenant_id, site_id, name, map_version:integer, updated_at:ms, map_event_id"),
    "ON CONFLICT (tenant_id, site_id) "
    + _update(
        "sites",
        ["name", "map_version", "updated_at", "map_event_id"],
        _newer("sites", ("map_version", "updated_at", "map_event_id")),
    ),
    key=("tenant_id", "site_id"),
    order=("map_version", "updated_at", "map_event_id"),
    required=("tenant_id", "site_id", "map_version", "updated_at", "map_event_id"),
)
_MAP_COLUMNS = "name, nodes:jsonb, lanes:jsonb, zones:jsonb, chargers:jsonb, occurred_at:ms, event_id"
SITE_MAPS = Table(
    "site_maps",
    "site_maps",
    _cols("tenant_id, site_id, version:integer, " + _MAP_COLUMNS),
    "ON CONFLICT (tenant_id, site_id, version) "
    + _update(
        "site_maps", [c.name for c in _cols(_MAP_COLUMNS)], _newer("site_maps", ("occurred_at", "event_id"))
    ),
    key=("tenant_id", "site_id", "version"),
    order=("occurred_at", "event_id"),
    required=("tenant_id", "site_id", "version", "occurred_at", "event_id"),
)
DECISIONS = Table(
    "decisions",
    "decisions",
    _cols(
        "event_id, decision_id, tenant_id, site_id, kind, robot_id, task_id, route:jsonb, eta:ms, "
        "cost:double precision, reason, conflict_id, planner, occurred_at:ms"
    ),
    "ON CONFLICT DO NOTHING",
    required=("event_id", "decision_id", "tenant_id", "kind", "robot_id", "occurred_at"),
)
CONFLICTS = Table(
    "conflicts",
    "conflicts",
    _cols(
        "event_id, conflict_id, tenant_id, site_id, kind, robot_ids:text[], node_id, lane_id, zone_id, "
        "window_start:ms, window_end:ms, resolution, resolved_robot_id, detail, occurred_at:ms"
    ),
    "ON CONFLICT DO NOTHING",
    required=("event_id", "conflict_id", "tenant_id", "kind", "window_start", "window_end", "occurred_at"),
)
ALERTS = Table(
    "alerts",
    "alerts",
    _cols("event_id, alert_id, tenant_id, site_id, kind, severity, subject_id, message, occurred_at:ms"),
    "ON CONFLICT DO NOTHING",
    required=("event_id", "alert_id", "tenant_id", "kind", "subject_id", "message", "occurred_at"),
)
AUDIT = Table(
    "audit",
    "audit",
    _cols(
        "event_id, tenant_id, site_id, actor, role, action, resource_type, resource_id, request_id, "
        "status_code:integer, details_json, occurred_at:ms"
    ),
    "ON CONFLICT DO NOTHING",
    required=(
        "event_id",
        "tenant_id",
        "actor",
        "role",
        "action",
        "resource_type",
        "resource_id",
        "status_code",
        "occurred_at",
    ),
)
TABLES: tuple[Table, ...] = (
    TENANTS,
    TASK_EVENTS,
    TASKS,
    ROBOT_STATUS,
    ROBOT_REGISTRY,
    SITES,
    SITE_MAPS,
    DECISIONS,
    CONFLICTS,
    ALERTS,
    AUDIT,
)
