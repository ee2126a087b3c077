"""Record -> row builders, and which tables each catalog topic feeds (``TOPIC_TABLES``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from schemas.errors import RejectedRecord
from sinks.postgres.tables import (
    ALERTS,
    AUDIT,
    CONFLICTS,
    DECISIONS,
    ROBOT_REGISTRY,
    ROBOT_STATUS,
    SITE_MAPS,
    SITES,
    TASK_EVENTS,
    TASKS,
    Row,
    Table,
)

__all__ = ["DEFERRED", "TOPIC_TABLES", "Builder", "rows_for", "task_rows", "tenant_of"]


def _s(value: Any) -> Any:
    """Text without NUL characters (Postgres text refuses them)."""
    return value.replace("\x00", "") if isinstance(value, str) else value


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode().replace("\\u0000", "")


def _task_event(r: dict[str, Any]) -> Row:
    return (
        r["event_id"],
        r["tenant_id"],
        r.get("site_id"),
        r["task_id"],
        r["seq"],
        r["kind"],
        r["state"],
        r.get("previous_state"),
        _s(r.get("reason")),
        r.get("robot_id"),
        r.get("attempt", 0),
        _json(r.get("spec")),
        r.get("external_id"),
        r.get("causation_id"),
        r["occurred_at"],
    )


def _task(r: dict[str, Any], created: dict[str, Any] | None = None) -> Row:
    """The tasks row of transition ``r``; ``created`` is the task's CREATED event if the batch has it."""
    spec = r.get("spec") or (created.get("spec") if created else None)
    if r["state"] == "CREATED":
        created = r
    return (
        r["tenant_id"],
        r["task_id"],
        r.get("site_id"),
        r["state"],
        r.get("attempt", 0),
        r.get("robot_id"),
        r.get("external_id"),
        _s(r.get("reason")),
        spec["category"] if spec else None,
        spec.get("priority") if spec else None,
        _json(spec),
        list(spec.get("depends_on") or []) if spec else None,
        created["occurred_at"] if created else None,
        r["occurred_at"],
        r["seq"],
        r["event_id"],
    )


def task_rows(transitions: list[dict[str, Any]]) -> list[Row]:
    """The tasks rows of a batch of TRANSITION events: one per task, from its newest event (the only one
    the upsert could apply), with the spec of its CREATED event when that is in the batch too. Built at
    flush rather than per event: most transitions of a busy batch are superseded within it."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    created: dict[tuple[str, str], dict[str, Any]] = {}
    for r in transitions:
        key = (r["tenant_id"], r["task_id"])
        current = latest.get(key)
        if current is None or r["seq"] > current["seq"]:
            latest[key] = r
        if r["state"] == "CREATED":
            created[key] = r
    return [_task(r, created.get(key)) for key, r in latest.items()]


def _robot_status(r: dict[str, Any]) -> Row:
    return (
        r["tenant_id"],
        r["robot_id"],
        r.get("site_id"),
        r.get("fleet_id"),
        r["status"],
        r.get("previous_status"),
        r.get("reason"),
        r.get("battery"),
        _json(r.get("pose")),
        r.get("speed"),
        r.get("task_id"),
        _json(r.get("route") or []),
        r.get("seq"),
        r.get("last_seen_at"),
        r["occurred_at"],
        r["event_id"],
    )


def _robot_registry(r: dict[str, Any]) -> Row:
    return (
        r["tenant_id"],
        r["robot_id"],
        r.get("site_id"),
        r.get("fleet_id"),
        _s(r.get("name")),
        _s(r.get("model")),
        [_s(c) for c in r.get("capabilities") or []],
        r.get("max_payload_kg"),
        r.get("managed_by"),
        r.get("active", True),
        r["occurred_at"],
        r["event_id"],
    )


def _site(r: dict[str, Any]) -> Row:
    return (r["tenant_id"], r["site_id"], _s(r.get("name")), r["version"], r["occurred_at"], r["event_id"])


def _site_map(r: dict[str, Any]) -> Row:
    return (
        r["tenant_id"],
        r["site_id"],
        r["version"],
        _s(r.get("name")),
        _json(r.get("nodes") or []),
        _json(r.get("lanes") or []),
        _json(r.get("zones") or []),
        _json(r.get("chargers") or []),
        r["occurred_at"],
        r["event_id"],
    )


def _decision(r: dict[str, Any]) -> Row:
    return (
        r["event_id"],
        r["decision_id"],
        r["tenant_id"],
        r.get("site_id"),
        r["kind"],
        r["robot_id"],
        r.get("task_id"),
        _json(r.get("route") or []),
        r.get("eta"),
        r.get("cost"),
        _s(r.get("reason")),
        r.get("conflict_id"),
        r.get("planner"),
        r["occurred_at"],
    )


def _conflict(r: dict[str, Any]) -> Row:
    return (
        r["event_id"],
        r["conflict_id"],
        r["tenant_id"],
        r.get("site_id"),
        r["kind"],
        list(r.get("robot_ids") or []),
        r.get("node_id"),
        r.get("lane_id"),
        r.get("zone_id"),
        r["window_start"],
        r["window_end"],
        r.get("resolution") or "UNKNOWN",
        r.get("resolved_robot_id"),
        _s(r.get("detail")),
        r["occurred_at"],
    )


def _alert(r: dict[str, Any]) -> Row:
    return (
        r["event_id"],
        r["alert_id"],
        r["tenant_id"],
        r.get("site_id"),
        r["kind"],
        r.get("severity") or "WARNING",
        r["subject_id"],
        _s(r["message"]),
        r["occurred_at"],
    )


def _audit(r: dict[str, Any]) -> Row:
    return (
        r["event_id"],
        r["tenant_id"],
        r.get("site_id"),
        _s(r["actor"]),
        r["role"],
        r["action"],
        r["resource_type"],
        _s(r["resource_id"]),
        r.get("request_id"),
        r["status_code"],
        _s(r.get("details_json")),
        r["occurred_at"],
    )


Builder = Callable[[dict[str, Any]], Row]
Wanted = Callable[[dict[str, Any]], bool] | None

#: catalog topic -> [(table, row builder, which records: None for all)], built per record

TOPIC_TABLES: dict[str, list[tuple[Table, Builder, Wanted]]] = {
    "task.events": [(TASK_EVENTS, _task_event, None)],
    "robot.status": [(ROBOT_STATUS, _robot_status, None)],
    "robot.registry": [(ROBOT_REGISTRY, _robot_registry, None)],
    "site.maps": [(SITES, _site, None), (SITE_MAPS, _site_map, None)],
    "scheduler.decisions": [(DECISIONS, _decision, None)],
    "traffic.conflicts": [(CONFLICTS, _conflict, None)],
    "alerts": [(ALERTS, _alert, None)],
    "audit.log": [(AUDIT, _audit, None)],
}


#: catalog topic -> (table, which records, builder of the rows of a whole batch of them), built at flush.
#: Everything these builders read is validated by the per-record rows of the same record.
DEFERRED: dict[str, tuple[Table, Wanted, Callable[[list[dict[str, Any]]], list[Row]]]] = {
    "task.events": (TASKS, lambda r: r["kind"] == "TRANSITION", task_rows),
}


def rows_for(topic: str, record: dict[str, Any]) -> list[tuple[Table, Row]]:
    """The rows one record of catalog topic ``topic`` writes, or RejectedRecord (see ``tenant_of`` too)."""
    out = []
    try:
        for table, build, wanted in TOPIC_TABLES[topic]:
            if wanted is not None and not wanted(record):
                continue
            row = build(record)
            values = table.required_values(row)
            if None in values or "" in values:
                missing = next(i for i in table.required_index if row[i] is None or row[i] == "")
                raise RejectedRecord(f"{topic} record has no {table.columns[missing].name}")
            out.append((table, row))
    except (KeyError, TypeError, AttributeError) as exc:
        raise RejectedRecord(f"{topic} record cannot be written: missing or malformed {exc}") from exc
    return out


def tenant_of(record: dict[str, Any]) -> Row:
    """The ``tenants`` row of a record: (tenant_id, occurred_at)."""
    return (record["tenant_id"], record["occurred_at"])
