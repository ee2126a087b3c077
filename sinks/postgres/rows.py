"""Which tables each catalog topic feeds, and the rows of a record (built from the tables' mappings)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas import catalog
from schemas.errors import RejectedRecord
from sinks.postgres.table import MissingValue
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
    TENANTS,
    Row,
    Table,
)

__all__ = ["TOPIC_TABLES", "rows_for", "task_rows", "tenant_rows"]

Record = dict[str, Any]

#: catalog topic -> the tables every one of its records is written to (``tasks`` and ``tenants`` rows
#: are built per batch: :func:`task_rows`, :func:`tenant_rows`)
TOPIC_TABLES: dict[str, tuple[Table, ...]] = {
    catalog.TASK_EVENTS: (TASK_EVENTS,),
    catalog.ROBOT_STATUS: (ROBOT_STATUS,),
    catalog.ROBOT_REGISTRY: (ROBOT_REGISTRY,),
    catalog.SITE_MAPS: (SITES, SITE_MAPS),
    catalog.SCHEDULER_DECISIONS: (DECISIONS,),
    catalog.TRAFFIC_CONFLICTS: (CONFLICTS,),
    catalog.ALERTS: (ALERTS,),
    catalog.AUDIT_LOG: (AUDIT,),
}


def rows_for(topic: str, record: Record) -> list[tuple[Table, Row]]:
    """The rows one record of catalog topic ``topic`` writes.

    :raises RejectedRecord: a field is missing or malformed, a required value is empty, or a time lies
        outside years 1..9999.
    """
    out = []
    for table in TOPIC_TABLES[topic]:
        try:
            out.append((table, table.row(record)))
        except MissingValue as exc:
            raise RejectedRecord(f"{topic} record has no {exc.column}") from exc
        except KeyError as exc:
            raise RejectedRecord(f"{topic} record cannot be written: missing field {exc}") from exc
        except (ValueError, OverflowError) as exc:
            raise RejectedRecord(f"{topic} record cannot be written to {table.table}: {exc}") from exc
        except (TypeError, AttributeError) as exc:
            raise RejectedRecord(f"{topic} record cannot be written: malformed {exc}") from exc
    return out


def task_rows(transitions: Iterable[Record]) -> list[Row]:
    """The ``tasks`` rows of a batch of TRANSITION events: one per task, from its newest event (the only
    one the upsert could apply), with the spec and time of its CREATED event when the batch has it too.
    Built per batch rather than per event: most transitions of a busy batch are superseded within it.
    Every field read here was validated by the event's own ``task_events`` row."""
    latest: dict[tuple[str, str], Record] = {}
    created: dict[tuple[str, str], Record] = {}
    for r in transitions:
        key = (r["tenant_id"], r["task_id"])
        current = latest.get(key)
        if current is None or r["seq"] > current["seq"]:
            latest[key] = r
        if r["state"] == "CREATED":
            created[key] = r
    rows = []
    for key, r in latest.items():
        first = r if r["state"] == "CREATED" else created.get(key)
        spec = r.get("spec") or (first.get("spec") if first else None)
        rows.append(TASKS.row({**r, "spec": spec, "created_at": first["occurred_at"] if first else None}))
    return rows


def tenant_rows(records: Iterable[Record]) -> list[Row]:
    """The ``tenants`` rows of a batch: the earliest event time of each tenant in it."""
    first: dict[str, int] = {}
    for r in records:
        tenant, at = r["tenant_id"], r["occurred_at"]
        seen = first.get(tenant)
        if seen is None or at < seen:
            first[tenant] = at
    return [TENANTS.row({"tenant_id": t, "first_seen_at": at}) for t, at in first.items()]
