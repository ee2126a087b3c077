"""Fixtures and record factories of the Postgres sink tests (each test gets its own Postgres schema)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from schemas.examples import example
from sinks.postgres import connect, migrate
from topologies.tasks import det_uuid7

T0 = 1_767_225_600_000
DATA_TABLES = (
    "tenants",
    "robots",
    "sites",
    "site_maps",
    "tasks",
    "task_events",
    "decisions",
    "conflicts",
    "alerts",
    "audit",
)
#: catalog topic -> the record name of its values
TOPIC_RECORDS = {
    "task.events": "TaskEvent",
    "robot.status": "RobotStatus",
    "robot.registry": "RobotRegistration",
    "site.maps": "SiteMap",
    "scheduler.decisions": "Decision",
    "traffic.conflicts": "Conflict",
    "alerts": "Alert",
    "audit.log": "AuditEvent",
}
IDENTITY_TOPICS = {t: t for t in TOPIC_RECORDS}


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh, migrated schema of this test's own; dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    migrate(pg_dsn, schema)
    yield schema
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def record(topic: str, tenant: str, i: int, **overrides: Any) -> dict[str, Any]:
    """Record ``i`` of ``topic`` for ``tenant``: unique ids, event time ``T0 + i``."""
    rec = example(TOPIC_RECORDS[topic])
    at = T0 + i
    rec.update(tenant_id=tenant, occurred_at=at, event_id=det_uuid7(at, tenant, topic, i))
    n = i % 7
    if topic == "task.events":
        rec.update(
            task_id=f"{tenant}-task-{i // 4}",
            seq=i % 4 + 1,
            kind="TRANSITION",
            state=["CREATED", "QUEUED", "ASSIGNED", "EXECUTING"][i % 4],
            previous_state=[None, "CREATED", "QUEUED", "ASSIGNED"][i % 4],
        )
        if i % 4:
            rec["spec"] = None
    elif topic in ("robot.status", "robot.registry"):
        rec.update(robot_id=f"robot-{n}", seq=i)
    elif topic == "site.maps":
        rec.update(site_id=f"site-{n}", version=i // 7 + 1)
    elif topic == "scheduler.decisions":
        rec.update(decision_id=f"d-{i}")
    elif topic == "traffic.conflicts":
        rec.update(conflict_id=f"c-{i}")
    elif topic == "alerts":
        rec.update(alert_id=f"a-{i}")
    elif topic == "audit.log":
        rec.update(resource_id=f"res-{i}")
    rec.update(overrides)
    return rec


def mixed_records(tenant: str, n: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` records of every topic for ``tenant`` (topic, record)."""
    return [(topic, record(topic, tenant, i)) for i in range(n) for topic in TOPIC_RECORDS]


def snapshot(dsn: str, schema: str, tenant: str | None = None) -> dict[str, list[str]]:
    """Every row of every data table (as sorted JSON text), optionally of one tenant only."""
    out: dict[str, list[str]] = {}
    with connect(dsn, schema) as conn:
        for table in DATA_TABLES:
            where, params = ("WHERE tenant_id = %s", [tenant]) if tenant else ("", [])
            rows = conn.execute(f"SELECT to_jsonb(t)::text FROM {table} t {where}", params).fetchall()
            out[table] = sorted(r[0] for r in rows)
    return out


def counts(dsn: str, schema: str, tenant: str) -> dict[str, int]:
    with connect(dsn, schema) as conn:
        return {
            t: conn.execute(f"SELECT count(*) FROM {t} WHERE tenant_id = %s", [tenant]).fetchone()[0]  # type: ignore[index]
            for t in DATA_TABLES
        }
