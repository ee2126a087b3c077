"""Rows, dedupe and SQL of the Postgres sink, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.errors import RejectedRecord
from schemas.examples import example
from sinks.postgres import (
    TABLES,
    TOPIC_TABLES,
    MigrationError,
    TableWriter,
    dedupe,
    load_migrations,
    rows_for,
)
from sinks.postgres.rows import DEFERRED, task_rows, tenant_of
from sinks.postgres.tables import ROBOT_STATUS, TASKS, TENANTS


def by_table(topic: str, rec: dict) -> dict[str, tuple]:
    return {t.name: row for t, row in rows_for(topic, rec)}


def test_task_event_rows_transition_and_refusal() -> None:
    created = example("TaskEvent")
    assert set(by_table("task.events", created)) == {"task_events"}
    assert tenant_of(created) == ("tenant-a", created["occurred_at"])
    later = [
        {**created, "seq": 3, "state": "ASSIGNED", "spec": None, "occurred_at": created["occurred_at"] + 9},
        {**created, "seq": 2, "state": "QUEUED", "spec": None, "occurred_at": created["occurred_at"] + 5},
    ]
    (row,) = task_rows([created, *later])  # one row per task: the newest, with the CREATED spec
    task = dict(zip(TASKS.column_names, row, strict=True))
    assert task["state"] == "ASSIGNED" and task["seq"] == 3
    assert task["category"] == "delivery" and task["priority"] == 7 and task["depends_on"] == ["task-0001"]
    assert task["created_at"] == created["occurred_at"] and task["updated_at"] == created["occurred_at"] + 9
    (alone,) = task_rows(later)
    assert alone[TASKS.index["spec"]] is None and alone[TASKS.index["created_at"]] is None
    wanted = DEFERRED["task.events"][1]
    assert wanted is not None and wanted({**created, "kind": "REJECTED"}) is False


def test_every_topic_has_rows_with_one_value_per_column() -> None:
    names = {
        "task.events": "TaskEvent",
        "robot.status": "RobotStatus",
        "robot.registry": "RobotRegistration",
        "site.maps": "SiteMap",
        "scheduler.decisions": "Decision",
        "traffic.conflicts": "Conflict",
        "alerts": "Alert",
        "audit.log": "AuditEvent",
    }
    assert set(names) == set(TOPIC_TABLES)
    for topic, record in names.items():
        for table, row in rows_for(topic, example(record)):
            assert len(row) == len(table.columns), table.name


def test_missing_required_values_are_rejected() -> None:
    with pytest.raises(RejectedRecord, match="no robot_id"):
        rows_for("robot.status", {**example("RobotStatus"), "robot_id": None})
    with pytest.raises(RejectedRecord, match="malformed"):
        rows_for("alerts", {"tenant_id": "t"})


def row(table, **values) -> tuple:  # type: ignore[no-untyped-def]
    return tuple(values.get(c) for c in table.column_names)


def test_dedupe_keeps_the_newest_row_per_key_and_fills_sticky_columns() -> None:
    rows = [
        row(TASKS, tenant_id="t", task_id="a", seq=1, state="CREATED", category="delivery", spec="{}"),
        row(TASKS, tenant_id="t", task_id="a", seq=3, state="ASSIGNED"),
        row(TASKS, tenant_id="t", task_id="a", seq=2, state="QUEUED"),
        row(TASKS, tenant_id="t", task_id="b", seq=1, state="CREATED"),
    ]
    out = {
        r[TASKS.index["task_id"]]: dict(zip(TASKS.column_names, r, strict=True)) for r in dedupe(TASKS, rows)
    }
    assert out["a"]["seq"] == 3 and out["a"]["state"] == "ASSIGNED" and out["a"]["category"] == "delivery"
    assert out["b"]["seq"] == 1


def test_dedupe_breaks_time_ties_by_event_id_and_tenants_keep_the_first_seen() -> None:
    rows = [
        row(ROBOT_STATUS, tenant_id="t", robot_id="r", status_at=5, status_event_id=e, status=e)
        for e in "bca"
    ]
    (kept,) = dedupe(ROBOT_STATUS, rows)
    assert kept[ROBOT_STATUS.index["status"]] == "c"
    (tenant,) = dedupe(TENANTS, [("t", 9), ("t", 3), ("t", 5)])
    assert tenant == ("t", 3)


def test_sql_converts_ms_and_keeps_guards() -> None:
    writer = TableWriter(TASKS)
    assert "to_timestamp(updated_at / 1000.0)" in writer.insert_select_sql
    assert "WHERE tasks.seq < excluded.seq" in writer.insert_values_sql
    assert writer.create_stage_sql.startswith("CREATE TEMP TABLE IF NOT EXISTS stage_tasks (")
    assert all("ON CONFLICT" in TableWriter(t).insert_select_sql for t in TABLES)


def test_migration_files_are_versioned(tmp_path: Path) -> None:
    assert [m.version for m in load_migrations()] == [1, 2]
    (tmp_path / "V001__a.sql").write_text("SELECT 1")
    (tmp_path / "V1__b.sql").write_text("SELECT 2")
    with pytest.raises(MigrationError, match="two migrations with version 1"):
        load_migrations(tmp_path)
    (tmp_path / "V1__b.sql").unlink()
    (tmp_path / "init.sql").write_text("SELECT 3")
    with pytest.raises(MigrationError, match=r"named V<version>__<name>\.sql"):
        load_migrations(tmp_path)
