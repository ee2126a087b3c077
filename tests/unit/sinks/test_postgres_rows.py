"""Rows, dedupe, SQL and error classes of the Postgres sink, without a database."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest

from schemas.errors import RejectedRecord
from schemas.examples import example
from sinks.postgres import (
    TABLES,
    TOPIC_TABLES,
    MigrationError,
    TableWriter,
    dedupe,
    is_data_error,
    is_outage,
    load_migrations,
    rows_for,
)
from sinks.postgres.rows import task_rows, tenant_rows
from sinks.postgres.tables import ROBOT_STATUS, TASKS, TENANTS

RECORDS = {
    "task.events": "TaskEvent",
    "robot.status": "RobotStatus",
    "robot.registry": "RobotRegistration",
    "site.maps": "SiteMap",
    "scheduler.decisions": "Decision",
    "traffic.conflicts": "Conflict",
    "alerts": "Alert",
    "audit.log": "AuditEvent",
}


def as_dict(table, row) -> dict:  # type: ignore[no-untyped-def]
    return dict(zip(table.names, row, strict=True))


def test_task_event_rows_transition_and_refusal() -> None:
    created = example("TaskEvent")
    assert [t.name for t, _ in rows_for("task.events", created)] == ["task_events"]
    later = [
        {**created, "seq": 3, "state": "ASSIGNED", "spec": None, "occurred_at": created["occurred_at"] + 9},
        {**created, "seq": 2, "state": "QUEUED", "spec": None, "occurred_at": created["occurred_at"] + 5},
    ]
    (row,) = task_rows([created, *later])  # one row per task: the newest, with the CREATED spec
    task = as_dict(TASKS, row)
    assert task["state"] == "ASSIGNED" and task["seq"] == 3 and task["last_event_id"] == created["event_id"]
    assert task["category"] == "delivery" and task["priority"] == 7 and task["depends_on"] == ["task-0001"]
    assert task["created_at"] == created["occurred_at"] and task["updated_at"] == created["occurred_at"] + 9
    (alone,) = task_rows(later)
    assert as_dict(TASKS, alone)["spec"] is None and as_dict(TASKS, alone)["created_at"] is None


def test_every_topic_has_rows_with_one_value_per_column() -> None:
    assert set(RECORDS) == set(TOPIC_TABLES)
    for topic, record in RECORDS.items():
        for table, row in rows_for(topic, example(record)):
            assert len(row) == len(table.names), table.name


def test_rows_follow_the_mapping_by_name() -> None:
    status = example("RobotStatus")
    ((table, row),) = rows_for("robot.status", status)
    got = as_dict(table, row)
    assert got["status_reason"] == status["reason"] and got["telemetry_seq"] == status["seq"]
    assert got["status_at"] == status["occurred_at"] and got["status_event_id"] == status["event_id"]
    assert got["route"] == '[{"node_id":"n12","eta":1767225604000},{"node_id":"n13","eta":1767225609000}]'


def test_missing_or_impossible_values_are_rejected_naming_the_field() -> None:
    with pytest.raises(RejectedRecord, match="no robot_id"):
        rows_for("robot.status", {**example("RobotStatus"), "robot_id": None})
    with pytest.raises(RejectedRecord, match="missing field 'event_id'"):
        rows_for("alerts", {"tenant_id": "t"})
    with pytest.raises(
        RejectedRecord,
        match=r"cannot be written to conflicts: window_end = 4611686018427387903 is not a time in years 1\.\.9999",
    ):
        rows_for("traffic.conflicts", {**example("Conflict"), "window_end": 4611686018427387903})


def test_refused_requests_are_audited_without_a_resource_and_open_windows_have_no_end() -> None:
    ((audit, row),) = rows_for("audit.log", {**example("AuditEvent"), "resource_id": "", "status_code": 403})
    assert as_dict(audit, row)["resource_id"] is None and as_dict(audit, row)["status_code"] == 403
    ((conflicts, row),) = rows_for("traffic.conflicts", {**example("Conflict"), "window_end": None})
    assert as_dict(conflicts, row)["window_end"] is None


def test_nul_characters_are_stripped_from_text_and_json() -> None:
    ((table, row),) = rows_for("alerts", {**example("Alert"), "message": "bad\x00byte"})
    assert as_dict(table, row)["message"] == "badbyte"
    ((table, row),) = rows_for("task.events", {**example("TaskEvent"), "spec": {"category": "x\x00y"}})
    assert as_dict(table, row)["spec"] == '{"category":"xy"}'


def row(table, **values) -> tuple:  # type: ignore[no-untyped-def]
    return tuple(values.get(c) for c in table.names)


def test_dedupe_keeps_the_newest_row_per_key_and_fills_sticky_columns() -> None:
    rows = [
        row(TASKS, tenant_id="t", task_id="a", seq=1, state="CREATED", category="delivery", spec="{}"),
        row(TASKS, tenant_id="t", task_id="a", seq=3, state="ASSIGNED"),
        row(TASKS, tenant_id="t", task_id="a", seq=2, state="QUEUED"),
        row(TASKS, tenant_id="t", task_id="b", seq=1, state="CREATED"),
    ]
    out = {as_dict(TASKS, r)["task_id"]: as_dict(TASKS, r) for r in dedupe(TASKS, rows)}
    assert out["a"]["seq"] == 3 and out["a"]["state"] == "ASSIGNED" and out["a"]["category"] == "delivery"
    assert out["b"]["seq"] == 1


def test_dedupe_breaks_time_ties_by_event_id_and_tenants_keep_the_first_seen() -> None:
    rows = [
        row(ROBOT_STATUS, tenant_id="t", robot_id="r", status_at=5, status_event_id=e, status=e)
        for e in "bca"
    ]
    (kept,) = dedupe(ROBOT_STATUS, rows)
    assert as_dict(ROBOT_STATUS, kept)["status"] == "c"
    assert tenant_rows([{"tenant_id": "t", "occurred_at": ms} for ms in (9, 3, 5)]) == [("t", 3)]
    (tenant,) = dedupe(TENANTS, [("t", 9), ("t", 3), ("t", 5)])
    assert tenant == ("t", 3)


def _columns(sql: str, clause: str) -> list[str]:
    match = re.search(clause, sql, re.S)
    assert match, sql
    return [c.strip() for c in match.group(1).split(",")]


@pytest.mark.parametrize("table", TABLES, ids=lambda t: t.name)
def test_each_statement_names_exactly_the_mapped_columns(table) -> None:  # type: ignore[no-untyped-def]
    insert = _columns(table.sql, rf"INSERT INTO {table.table}(?: AS \w+)? \((.*?)\)\s*SELECT")
    select = _columns(table.sql, r"SELECT (.*?)\s*FROM")
    times = [table.names[i] for i in table.times]
    assert insert == list(table.names)
    assert select == [f"to_timestamp({c} / 1000.0)" if c in times else c for c in table.names]
    assert f"FROM stage_{table.name}\n" in table.sql
    assert ("ON CONFLICT DO NOTHING" in table.sql) == table.insert_only
    writer = TableWriter(table)
    assert writer.copy_sql == f"COPY stage_{table.name} ({', '.join(table.names)}) FROM STDIN"
    assert writer.create_stage_sql.startswith(f"CREATE TEMP TABLE IF NOT EXISTS stage_{table.name} (LIKE ")
    assert writer.stage_times_sql.count("TYPE bigint") == len(times)


def test_outages_and_data_errors_are_told_apart_by_sqlstate() -> None:
    assert is_outage(psycopg.OperationalError("connection refused"))  # no SQLSTATE: the connection
    assert is_outage(psycopg.errors.AdminShutdown())
    assert is_outage(psycopg.errors.DiskFull())
    assert is_outage(psycopg.errors.QueryCanceled())
    assert is_outage(psycopg.errors.ReadOnlySqlTransaction())
    for data in (
        psycopg.errors.DatetimeFieldOverflow(),
        psycopg.errors.NumericValueOutOfRange(),
        psycopg.errors.NotNullViolation(),
        psycopg.errors.ProgramLimitExceeded(),
        psycopg.errors.CharacterNotInRepertoire(),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    ):
        assert is_data_error(data) and not is_outage(data), data
    for bug in (psycopg.errors.UndefinedColumn(), psycopg.errors.InsufficientPrivilege(), KeyError("x")):
        assert not is_data_error(bug) and not is_outage(bug), bug


def test_migration_files_are_versioned(tmp_path: Path) -> None:
    assert [m.version for m in load_migrations()] == [1, 2, 3]
    (tmp_path / "V001__a.sql").write_text("SELECT 1")
    (tmp_path / "V1__b.sql").write_text("SELECT 2")
    with pytest.raises(MigrationError, match="two migrations with version 1"):
        load_migrations(tmp_path)
    (tmp_path / "V1__b.sql").unlink()
    (tmp_path / "init.sql").write_text("SELECT 3")
    with pytest.raises(MigrationError, match=r"named V<version>__<name>\.sql"):
        load_migrations(tmp_path)
