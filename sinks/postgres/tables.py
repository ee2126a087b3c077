"""The tables the sink writes: for each, one mapping from its columns to the record, and its SQL as text.

A :class:`Table` is one write target. ``columns`` maps every column it writes to where the value comes
from (a record field and, where needed, a conversion); rows are built from that mapping and nothing
else, so the column order exists in one place. ``sql`` moves a batch from the table's staging table
(``stage_<name>``: a ``LIKE <table>`` copy whose time columns hold epoch ms as ``bigint``) into the
table, naming its columns and turning times into ``timestamptz`` with ``to_timestamp(ms / 1000.0)``,
with the table's conflict rule: DO NOTHING for event tables (facts keyed by ``event_id``), a guarded DO
UPDATE for current-state tables (a row only ever moves forward). A time outside years 1..9999 refuses
the record when its row is built, before any write.

For upsert tables ``key`` and ``newest`` say which row of a batch survives per key (Postgres refuses to
update one row twice in a statement, and the older rows would lose against the guard anyway).
"""

from __future__ import annotations

from typing import Any

from sinks.postgres.table import (
    Column,
    Row,
    Table,
    col,
    epoch_ms,
    jsonb,
    or_default,
    spec_category,
    spec_depends_on,
    spec_priority,
    text,
    text_list,
    ts,
)

__all__ = [
    "ALERTS",
    "AUDIT",
    "CONFLICTS",
    "DEACTIVATE_ROBOT",
    "DECISIONS",
    "ROBOT_REGISTRY",
    "ROBOT_STATUS",
    "SITES",
    "SITE_MAPS",
    "TABLES",
    "TASKS",
    "TASK_EVENTS",
    "TENANTS",
    "Row",
    "Table",
    "epoch_ms",
]


def _text_or_null(value: Any) -> Any:
    """Text without NUL characters; null for an empty text."""
    return value.replace("\x00", "") or None if isinstance(value, str) else value


# -------------------------------------------------------------------------------------------- tables
TENANTS = Table(
    "tenants",
    "tenants",
    {"tenant_id": col("tenant_id", required=True), "first_seen_at": ts("first_seen_at", required=True)},
    """
    INSERT INTO tenants AS t (tenant_id, first_seen_at)
    SELECT tenant_id, to_timestamp(first_seen_at / 1000.0) FROM stage_tenants
    ON CONFLICT (tenant_id) DO UPDATE SET first_seen_at = excluded.first_seen_at
    WHERE excluded.first_seen_at < t.first_seen_at
    """,
    key=("tenant_id",),
    newest=("first_seen_at",),
    keep_oldest=True,
)

TASK_EVENTS = Table(
    "task_events",
    "task_events",
    {
        "event_id": col("event_id", required=True),
        "tenant_id": col("tenant_id", required=True),
        "site_id": col("site_id"),
        "task_id": col("task_id", required=True),
        "seq": col("seq", required=True),
        "kind": col("kind", required=True),
        "state": col("state", required=True),
        "previous_state": col("previous_state"),
        "reason": text("reason"),
        "robot_id": col("robot_id"),
        "attempt": col("attempt", required=True),
        "spec": jsonb("spec"),
        "external_id": col("external_id"),
        "causation_id": col("causation_id"),
        "occurred_at": ts("occurred_at", required=True),
    },
    """
    INSERT INTO task_events (event_id, tenant_id, site_id, task_id, seq, kind, state, previous_state, reason,
                             robot_id, attempt, spec, external_id, causation_id, occurred_at)
    SELECT event_id, tenant_id, site_id, task_id, seq, kind, state, previous_state, reason,
           robot_id, attempt, spec, external_id, causation_id,
           to_timestamp(occurred_at / 1000.0)
    FROM stage_task_events
    ON CONFLICT DO NOTHING
    """,
)

#: Built at write time from a task's newest TRANSITION of the batch, with ``spec`` and ``created_at``
#: taken from its CREATED event when the batch has it (``rows.task_rows``).
TASKS = Table(
    "tasks",
    "tasks",
    {
        "tenant_id": col("tenant_id", required=True),
        "task_id": col("task_id", required=True),
        "site_id": col("site_id"),
        "state": col("state", required=True),
        "attempt": col("attempt", required=True),
        "robot_id": col("robot_id"),
        "external_id": col("external_id"),
        "reason": text("reason"),
        "category": Column("spec", spec_category),
        "priority": Column("spec", spec_priority),
        "spec": jsonb("spec"),
        "depends_on": Column("spec", spec_depends_on),
        "created_at": ts("created_at"),
        "updated_at": ts("occurred_at", required=True),
        "seq": col("seq", required=True),
        "last_event_id": col("event_id", required=True),
    },
    """
    INSERT INTO tasks AS t (tenant_id, task_id, site_id, state, attempt, robot_id, external_id, reason,
                            category, priority, spec, depends_on, created_at, updated_at, seq, last_event_id)
    SELECT tenant_id, task_id, site_id, state, attempt, robot_id, external_id, reason,
           category, priority, spec, depends_on,
           to_timestamp(created_at / 1000.0), to_timestamp(updated_at / 1000.0), seq, last_event_id
    FROM stage_tasks
    ON CONFLICT (tenant_id, task_id) DO UPDATE SET
        site_id = excluded.site_id,
        state = excluded.state,
        attempt = excluded.attempt,
        robot_id = excluded.robot_id,
        external_id = COALESCE(excluded.external_id, t.external_id),
        reason = excluded.reason,
        category = COALESCE(excluded.category, t.category),
        priority = COALESCE(excluded.priority, t.priority),
        spec = COALESCE(excluded.spec, t.spec),
        depends_on = COALESCE(excluded.depends_on, t.depends_on),
        created_at = COALESCE(t.created_at, excluded.created_at),
        updated_at = excluded.updated_at,
        seq = excluded.seq,
        last_event_id = excluded.last_event_id
    WHERE t.seq < excluded.seq
    """,
    key=("tenant_id", "task_id"),
    newest=("seq",),
    sticky=("external_id", "category", "priority", "spec", "depends_on", "created_at"),
)

ROBOT_STATUS = Table(
    "robot_status",
    "robots",
    {
        "tenant_id": col("tenant_id", required=True),
        "robot_id": col("robot_id", required=True),
        "site_id": col("site_id"),
        "fleet_id": col("fleet_id"),
        "status": col("status", required=True),
        "previous_status": col("previous_status"),
        "status_reason": col("reason"),
        "battery": col("battery"),
        "pose": jsonb("pose"),
        "speed": col("speed"),
        "task_id": col("task_id"),
        "route": jsonb("route", default_list=True),
        "telemetry_seq": col("seq"),
        "last_seen_at": ts("last_seen_at"),
        "status_at": ts("occurred_at", required=True),
        "status_event_id": col("event_id", required=True),
    },
    """
    INSERT INTO robots AS r (tenant_id, robot_id, site_id, fleet_id, status, previous_status, status_reason,
                             battery, pose, speed, task_id, route, telemetry_seq, last_seen_at, status_at,
                             status_event_id)
    SELECT tenant_id, robot_id, site_id, fleet_id, status, previous_status, status_reason,
           battery, pose, speed, task_id, route, telemetry_seq,
           to_timestamp(last_seen_at / 1000.0), to_timestamp(status_at / 1000.0), status_event_id
    FROM stage_robot_status
    ON CONFLICT (tenant_id, robot_id) DO UPDATE SET
        site_id = excluded.site_id,
        fleet_id = excluded.fleet_id,
        status = excluded.status,
        previous_status = excluded.previous_status,
        status_reason = excluded.status_reason,
        battery = excluded.battery,
        pose = excluded.pose,
        speed = excluded.speed,
        task_id = excluded.task_id,
        route = excluded.route,
        telemetry_seq = excluded.telemetry_seq,
        last_seen_at = excluded.last_seen_at,
        status_at = excluded.status_at,
        status_event_id = excluded.status_event_id
    WHERE r.status_at IS NULL
       OR (excluded.status_at, excluded.status_event_id) > (r.status_at, r.status_event_id)
    """,
    key=("tenant_id", "robot_id"),
    newest=("status_at", "status_event_id"),
)

ROBOT_REGISTRY = Table(
    "robot_registry",
    "robots",
    {
        "tenant_id": col("tenant_id", required=True),
        "robot_id": col("robot_id", required=True),
        "site_id": col("site_id"),
        "fleet_id": col("fleet_id"),
        "name": text("name"),
        "model": text("model"),
        "capabilities": Column("capabilities", text_list),
        "max_payload_kg": col("max_payload_kg"),
        "managed_by": col("managed_by"),
        "active": col("active"),
        "registered_at": ts("occurred_at", required=True),
        "registry_event_id": col("event_id", required=True),
    },
    """
    INSERT INTO robots AS r (tenant_id, robot_id, site_id, fleet_id, name, model, capabilities, max_payload_kg,
                             managed_by, active, registered_at, registry_event_id)
    SELECT tenant_id, robot_id, site_id, fleet_id, name, model, capabilities, max_payload_kg,
           managed_by, active, to_timestamp(registered_at / 1000.0), registry_event_id
    FROM stage_robot_registry
    ON CONFLICT (tenant_id, robot_id) DO UPDATE SET
        site_id = excluded.site_id,
        fleet_id = excluded.fleet_id,
        name = excluded.name,
        model = excluded.model,
        capabilities = excluded.capabilities,
        max_payload_kg = excluded.max_payload_kg,
        managed_by = excluded.managed_by,
        active = excluded.active,
        registered_at = excluded.registered_at,
        registry_event_id = excluded.registry_event_id
    WHERE r.registered_at IS NULL
       OR (excluded.registered_at, excluded.registry_event_id) > (r.registered_at, r.registry_event_id)
    """,
    key=("tenant_id", "robot_id"),
    newest=("registered_at", "registry_event_id"),
)

#: A deleted registration (tombstone, keyed by robot id only): (epoch ms, robot_id, epoch ms).
DEACTIVATE_ROBOT = """
    UPDATE robots SET active = false, registered_at = to_timestamp(%s / 1000.0), registry_event_id = ''
    WHERE robot_id = %s AND (registered_at IS NULL OR registered_at <= to_timestamp(%s / 1000.0))
"""

SITES = Table(
    "sites",
    "sites",
    {
        "tenant_id": col("tenant_id", required=True),
        "site_id": col("site_id", required=True),
        "name": text("name"),
        "map_version": col("version", required=True),
        "updated_at": ts("occurred_at", required=True),
        "map_event_id": col("event_id", required=True),
    },
    """
    INSERT INTO sites AS s (tenant_id, site_id, name, map_version, updated_at, map_event_id)
    SELECT tenant_id, site_id, name, map_version, to_timestamp(updated_at / 1000.0), map_event_id
    FROM stage_sites
    ON CONFLICT (tenant_id, site_id) DO UPDATE SET
        name = excluded.name,
        map_version = excluded.map_version,
        updated_at = excluded.updated_at,
        map_event_id = excluded.map_event_id
    WHERE s.map_version IS NULL
       OR (excluded.map_version, excluded.updated_at, excluded.map_event_id)
        > (s.map_version, s.updated_at, s.map_event_id)
    """,
    key=("tenant_id", "site_id"),
    newest=("map_version", "updated_at", "map_event_id"),
)

SITE_MAPS = Table(
    "site_maps",
    "site_maps",
    {
        "tenant_id": col("tenant_id", required=True),
        "site_id": col("site_id", required=True),
        "version": col("version", required=True),
        "name": text("name"),
        "nodes": jsonb("nodes", default_list=True),
        "lanes": jsonb("lanes", default_list=True),
        "zones": jsonb("zones", default_list=True),
        "chargers": jsonb("chargers", default_list=True),
        "occurred_at": ts("occurred_at", required=True),
        "event_id": col("event_id", required=True),
    },
    """
    INSERT INTO site_maps AS m (tenant_id, site_id, version, name, nodes, lanes, zones, chargers, occurred_at,
                                event_id)
    SELECT tenant_id, site_id, version, name, nodes, lanes, zones, chargers,
           to_timestamp(occurred_at / 1000.0), event_id
    FROM stage_site_maps
    ON CONFLICT (tenant_id, site_id, version) DO UPDATE SET
        name = excluded.name,
        nodes = excluded.nodes,
        lanes = excluded.lanes,
        zones = excluded.zones,
        chargers = excluded.chargers,
        occurred_at = excluded.occurred_at,
        event_id = excluded.event_id
    WHERE m.occurred_at IS NULL OR (excluded.occurred_at, excluded.event_id) > (m.occurred_at, m.event_id)
    """,
    key=("tenant_id", "site_id", "version"),
    newest=("occurred_at", "event_id"),
)

DECISIONS = Table(
    "decisions",
    "decisions",
    {
        "event_id": col("event_id", required=True),
        "decision_id": col("decision_id", required=True),
        "tenant_id": col("tenant_id", required=True),
        "site_id": col("site_id"),
        "kind": col("kind", required=True),
        "robot_id": col("robot_id", required=True),
        "task_id": col("task_id"),
        "route": jsonb("route", default_list=True),
        "eta": ts("eta"),
        "cost": col("cost"),
        "reason": text("reason"),
        "conflict_id": col("conflict_id"),
        "planner": col("planner"),
        "occurred_at": ts("occurred_at", required=True),
    },
    """
    INSERT INTO decisions (event_id, decision_id, tenant_id, site_id, kind, robot_id, task_id, route, eta, cost,
                           reason, conflict_id, planner, occurred_at)
    SELECT event_id, decision_id, tenant_id, site_id, kind, robot_id, task_id, route,
           to_timestamp(eta / 1000.0), cost, reason, conflict_id, planner, to_timestamp(occurred_at / 1000.0)
    FROM stage_decisions
    ON CONFLICT DO NOTHING
    """,
)

#: ``window_end`` is null while a conflict's window is open (V003).
CONFLICTS = Table(
    "conflicts",
    "conflicts",
    {
        "event_id": col("event_id", required=True),
        "conflict_id": col("conflict_id", required=True),
        "tenant_id": col("tenant_id", required=True),
        "site_id": col("site_id"),
        "kind": col("kind", required=True),
        "robot_ids": Column("robot_ids", text_list),
        "node_id": col("node_id"),
        "lane_id": col("lane_id"),
        "zone_id": col("zone_id"),
        "window_start": ts("window_start", required=True),
        "window_end": ts("window_end"),
        "resolution": Column("resolution", or_default("UNKNOWN")),
        "resolved_robot_id": col("resolved_robot_id"),
        "detail": text("detail"),
        "occurred_at": ts("occurred_at", required=True),
    },
    """
    INSERT INTO conflicts (event_id, conflict_id, tenant_id, site_id, kind, robot_ids, node_id, lane_id, zone_id,
                           window_start, window_end, resolution, resolved_robot_id, detail, occurred_at)
    SELECT event_id, conflict_id, tenant_id, site_id, kind, robot_ids, node_id, lane_id, zone_id,
           to_timestamp(window_start / 1000.0), to_timestamp(window_end / 1000.0), resolution,
           resolved_robot_id, detail, to_timestamp(occurred_at / 1000.0)
    FROM stage_conflicts
    ON CONFLICT DO NOTHING
    """,
)

ALERTS = Table(
    "alerts",
    "alerts",
    {
        "event_id": col("event_id", required=True),
        "alert_id": col("alert_id", required=True),
        "tenant_id": col("tenant_id", required=True),
        "site_id": col("site_id"),
        "kind": col("kind", required=True),
        "severity": Column("severity", or_default("WARNING")),
        "subject_id": col("subject_id", required=True),
        "message": text("message", required=True),
        "occurred_at": ts("occurred_at", required=True),
    },
    """
    INSERT INTO alerts (event_id, alert_id, tenant_id, site_id, kind, severity, subject_id, message, occurred_at)
    SELECT event_id, alert_id, tenant_id, site_id, kind, severity, subject_id, message,
           to_timestamp(occurred_at / 1000.0)
    FROM stage_alerts
    ON CONFLICT DO NOTHING
    """,
)

#: Every audit event is kept, refused and invalid requests included: those name no resource, so
#: ``resource_id`` is null when the event's is empty (V003).
AUDIT = Table(
    "audit",
    "audit",
    {
        "event_id": col("event_id", required=True),
        "tenant_id": col("tenant_id", required=True),
        "site_id": col("site_id"),
        "actor": text("actor"),
        "role": col("role"),
        "action": col("action"),
        "resource_type": col("resource_type"),
        "resource_id": Column("resource_id", _text_or_null),
        "request_id": col("request_id"),
        "status_code": col("status_code", required=True),
        "details_json": text("details_json"),
        "occurred_at": ts("occurred_at", required=True),
    },
    """
    INSERT INTO audit (event_id, tenant_id, site_id, actor, role, action, resource_type, resource_id, request_id,
                       status_code, details_json, occurred_at)
    SELECT event_id, tenant_id, site_id, actor, role, action, resource_type, resource_id, request_id,
           status_code, details_json, to_timestamp(occurred_at / 1000.0)
    FROM stage_audit
    ON CONFLICT DO NOTHING
    """,
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
