"""The Postgres sink against the real Postgres: migrations, idempotent writes, guards, RLS, backpressure."""

from __future__ import annotations

import math
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from quixstreams.sinks import SinkBackpressureError

from schemas.errors import RejectedRecord
from sinks.deadletters import RecordRefused
from sinks.postgres import MIGRATIONS_DIR, MigrationError, PostgresSink, connect, migrate
from tests.integration.sinks.conftest import DeadLetters
from tests.integration.sinks.test_postgres_support import (
    IDENTITY_TOPICS,
    TOPIC_RECORDS,
    counts,
    mixed_records,
    pg_schema,
    record,
    snapshot,
)

__all__ = ["pg_schema"]  # the fixture, imported for pytest


def make_sink(dsn: str, schema: str, **kw: Any) -> PostgresSink:
    sink = PostgresSink(dsn, IDENTITY_TOPICS, schema=schema, migrate_on_start=False, **kw)
    sink.setup()
    return sink


def feed(sink: PostgresSink, records: list[tuple[str, dict[str, Any]]], flush: bool = True) -> None:
    for offset, (topic, rec) in enumerate(records):
        key = rec.get("task_id") or rec.get("robot_id") or rec.get("site_id")
        sink.add(rec, key, rec["occurred_at"], [], topic, offset % 3, offset)
    if flush:
        sink.flush()


def test_migrations_apply_once_in_order_and_refuse_an_edited_file(pg_dsn: str, tmp_path: Path) -> None:
    schema = f"t_{uuid.uuid4().hex[:10]}"
    try:
        assert [m.version for m in migrate(pg_dsn, schema)] == [1, 2, 3]
        assert migrate(pg_dsn, schema) == []
        with connect(pg_dsn, schema) as conn:
            assert conn.execute("SELECT version, name FROM schema_migrations ORDER BY 1").fetchall() == [
                (1, "init"),
                (2, "row_level_security"),
                (3, "audit_without_resource_open_windows"),
            ]
        edited = tmp_path / "migrations"
        shutil.copytree(MIGRATIONS_DIR, edited)
        (edited / "V001__init.sql").write_text((edited / "V001__init.sql").read_text() + "\n-- edited\n")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            migrate(pg_dsn, schema, edited)
        (edited / "V001__init.sql").write_text((MIGRATIONS_DIR / "V001__init.sql").read_text())
        (edited / "V901__extra.sql").write_text("CREATE TABLE extra (id int PRIMARY KEY);")
        assert [m.version for m in migrate(pg_dsn, schema, edited)] == [901]
        (edited / "V902__broken.sql").write_text("CREATE TABLE ok4 (id int); SELECT no_such_function();")
        with pytest.raises(MigrationError, match=r"V902__broken\.sql failed"):
            migrate(pg_dsn, schema, edited)
        with connect(pg_dsn, schema) as conn:  # the failed migration left nothing behind
            assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (901,)
            assert conn.execute("SELECT to_regclass('ok4')").fetchone() == (None,)
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@pytest.mark.parametrize("strategy", ["copy", "executemany"])
def test_every_topic_lands_in_its_tables(pg_dsn: str, pg_schema: str, strategy: str) -> None:
    sink = make_sink(pg_dsn, pg_schema, strategy=strategy)
    feed(sink, mixed_records("acme", 28))
    got = counts(pg_dsn, pg_schema, "acme")
    assert got == {
        "tenants": 1,
        "robots": 7,
        "sites": 7,
        "site_maps": 28,
        "tasks": 7,
        "task_events": 28,
        "decisions": 28,
        "conflicts": 28,
        "alerts": 28,
        "audit": 28,
    }
    with connect(pg_dsn, pg_schema) as conn:
        task = conn.execute(
            "SELECT state, seq, category, spec->>'category', created_at < updated_at "
            "FROM tasks WHERE task_id = 'acme-task-0'"
        ).fetchone()
        assert task == ("EXECUTING", 4, "delivery", "delivery", True)
        robot = conn.execute(
            "SELECT status, name, capabilities, pose->>'node_id', route->0->>'node_id', "
            "updated_at = to_timestamp(%s / 1000.0) FROM robots WHERE robot_id = 'robot-6'",
            [record("robot.status", "acme", 27)["occurred_at"]],
        ).fetchone()
        assert robot == ("MOVING", "AMR 1", ["lift", "tow"], "n12", "n12", True)
        assert conn.execute("SELECT map_version FROM sites WHERE site_id = 'site-0'").fetchone() == (4,)
        assert conn.execute(
            "SELECT first_seen_at = to_timestamp(%s / 1000.0) FROM tenants WHERE tenant_id = 'acme'",
            [record("alerts", "acme", 0)["occurred_at"]],
        ).fetchone() == (True,)
    sink.close()


def test_replaying_everything_changes_nothing(pg_dsn: str, pg_schema: str) -> None:
    records = mixed_records("replay", 40)
    sink = make_sink(pg_dsn, pg_schema)
    feed(sink, records)
    first = snapshot(pg_dsn, pg_schema, "replay")
    # again, in other batch sizes and partition order (as after a crash before the offset commit)
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    for start in range(0, len(shuffled), 37):
        feed(sink, shuffled[start : start + 37])
    assert snapshot(pg_dsn, pg_schema, "replay") == first
    sink.close()


def test_state_rows_never_move_backwards(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    newer = [
        ("task.events", record("task.events", "g", 3)),  # task-0 seq 4 EXECUTING
        ("robot.status", record("robot.status", "g", 100, status="CHARGING")),
        ("site.maps", record("site.maps", "g", 14)),  # site-0 version 3
    ]
    older = [
        ("task.events", record("task.events", "g", 1)),  # task-0 seq 2 QUEUED
        ("robot.status", record("robot.status", "g", 2, robot_id="robot-2", status="IDLE")),
        ("site.maps", record("site.maps", "g", 7)),  # site-0 version 2
    ]
    feed(sink, newer)
    feed(sink, older)
    with connect(pg_dsn, pg_schema) as conn:
        assert conn.execute("SELECT state, seq FROM tasks WHERE task_id = 'g-task-0'").fetchone() == (
            "EXECUTING",
            4,
        )
        assert conn.execute("SELECT status FROM robots WHERE robot_id = 'robot-2'").fetchone() == (
            "CHARGING",
        )
        assert conn.execute("SELECT map_version FROM sites WHERE site_id = 'site-0'").fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM site_maps WHERE site_id = 'site-0'").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM task_events WHERE task_id = 'g-task-0'").fetchone() == (2,)
    sink.close()


def test_one_batch_with_a_task_s_whole_life_keeps_its_spec(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    feed(sink, [("task.events", record("task.events", "life", i)) for i in range(4)])
    with connect(pg_dsn, pg_schema) as conn:
        row = conn.execute(
            "SELECT state, seq, category, priority, depends_on, created_at IS NOT NULL FROM tasks "
            "WHERE task_id = 'life-task-0'"
        ).fetchone()
    assert row == ("EXECUTING", 4, "delivery", 7, ["task-0001"], True)
    sink.close()


def test_refusals_are_events_but_do_not_touch_the_task_row(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    feed(
        sink,
        [
            ("task.events", record("task.events", "r", 0)),
            ("task.events", record("task.events", "r", 1)),
            (
                "task.events",
                record(
                    "task.events",
                    "r",
                    2,
                    kind="REJECTED",
                    state="QUEUED",
                    previous_state=None,
                    reason="cannot unassign a QUEUED task",
                ),
            ),
        ],
    )
    with connect(pg_dsn, pg_schema) as conn:
        assert conn.execute("SELECT state, seq FROM tasks WHERE tenant_id = 'r'").fetchone() == ("QUEUED", 2)
        assert conn.execute("SELECT kind FROM task_events WHERE tenant_id = 'r' ORDER BY seq").fetchall() == [
            ("TRANSITION",),
            ("TRANSITION",),
            ("REJECTED",),
        ]
    sink.close()


def test_registry_tombstone_deactivates_the_robot(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    feed(sink, [("robot.registry", record("robot.registry", "z", 0))])
    sink.add(None, b"robot-0", record("robot.registry", "z", 5)["occurred_at"], [], "robot.registry", 0, 9)
    sink.flush()
    with connect(pg_dsn, pg_schema) as conn:
        assert conn.execute("SELECT active FROM robots WHERE robot_id = 'robot-0'").fetchone() == (False,)
    sink.close()


@pytest.mark.parametrize(
    ("topic", "change", "reason"),
    [
        ("task.events", {"task_id": None}, "no task_id"),
        ("alerts", {"tenant_id": ""}, "no tenant_id"),
        ("scheduler.decisions", {"occurred_at": None}, "occurred_at"),
        ("robot.status", {"status": None}, "no status"),
    ],
)
def test_records_that_cannot_be_written_are_rejected_before_the_batch(
    pg_dsn: str, pg_schema: str, topic: str, change: dict[str, Any], reason: str
) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    rec = record(topic, "bad", 0)
    rec.update(change)
    with pytest.raises(RejectedRecord, match=reason):
        feed(sink, [(topic, rec)], flush=False)
    sink.close()


def test_text_with_nul_characters_is_cleaned(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    feed(sink, [("alerts", record("alerts", "nul", 0, message="bad\x00byte"))])
    with connect(pg_dsn, pg_schema) as conn:
        assert conn.execute("SELECT message FROM alerts WHERE tenant_id = 'nul'").fetchone() == ("badbyte",)
    sink.close()


def test_row_level_security_isolates_tenants(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    feed(sink, mixed_records("tenant-a", 3) + mixed_records("tenant-b", 5))
    sink.close()
    with connect(pg_dsn, pg_schema, autocommit=True) as conn:
        conn.execute("SET ROLE fleet_reader")
        with conn.transaction():
            conn.execute("SELECT set_config('fleet.tenant_id', 'tenant-a', true)")
            seen = {
                t: conn.execute(f"SELECT DISTINCT tenant_id FROM {t}").fetchall() for t in TABLES_WITH_ROWS
            }
            assert all(v == [("tenant-a",)] for v in seen.values()), seen
            assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (3,)
        with conn.transaction():  # transaction-local: gone after the commit, so nothing is visible
            assert conn.execute("SELECT count(*) FROM alerts").fetchone() == (0,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO alerts SELECT * FROM alerts")


TABLES_WITH_ROWS = (
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


def test_unreachable_postgres_is_backpressure_with_growing_pauses(pg_schema: str) -> None:
    sink = PostgresSink(
        "postgresql://fleet@127.0.0.1:1/fleetstream",
        IDENTITY_TOPICS,
        schema=pg_schema,
        migrate_on_start=False,
        retry_after_s=1.0,
        max_retry_after_s=3.0,
        connect_timeout_s=1,
    )
    pauses = []
    for i in range(4):
        feed(sink, [("alerts", record("alerts", "down", i))], flush=False)
        with pytest.raises(SinkBackpressureError) as exc:
            sink.flush()
        pauses.append(exc.value.retry_after)
    assert pauses == [1.0, 2.0, 3.0, 3.0]
    assert sink.refused == 0


def test_a_connection_lost_between_flushes_is_backpressure_then_recovers(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    feed(sink, [("alerts", record("alerts", "kill", 0))])
    with psycopg.connect(pg_dsn, autocommit=True) as admin:  # the server drops the sink's session
        pid = sink._conn.info.backend_pid  # type: ignore[union-attr]
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    sink.add(record("alerts", "kill", 1), None, 0, [], "alerts", 0, 1)
    with pytest.raises(SinkBackpressureError):
        sink.flush()
    assert counts(pg_dsn, pg_schema, "kill")["alerts"] == 1  # nothing of the failed batch
    # Quix seeks back and the records come again after the pause: the sink reconnects and writes them.
    sink.add(record("alerts", "kill", 1), None, 0, [], "alerts", 0, 1)
    sink.add(record("alerts", "kill", 2), None, 0, [], "alerts", 0, 2)
    sink.flush()
    assert counts(pg_dsn, pg_schema, "kill")["alerts"] == 3
    sink.close()


def test_every_catalog_topic_has_a_record_factory() -> None:
    from sinks.postgres import TOPIC_TABLES

    assert set(TOPIC_TABLES) == set(TOPIC_RECORDS)


def test_a_batch_partly_written_before_falls_back_to_insert_on_conflict(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    records = [("alerts", record("alerts", "half", i)) for i in range(10)]
    feed(sink, records[:4])  # a new batch: straight COPY into the table
    writer = sink._writers["alerts"]
    assert (writer.direct_hits, writer.direct_misses) == (1, 0)
    feed(sink, records)  # 4 of 10 already there (a replay after a crash): the COPY is refused, then merged
    assert (writer.direct_hits, writer.direct_misses) == (1, 1)
    assert counts(pg_dsn, pg_schema, "half")["alerts"] == 10
    sink.close()


def _incompressible(n: int, seed: int = 7) -> str:
    """``n`` random letters and digits: too long for a b-tree index row even after compression."""
    rng = random.Random(seed)
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", k=n))


def test_records_at_the_limits_are_written_or_dead_lettered_and_the_sink_moves_on(
    pg_dsn: str, pg_schema: str, dead_letters: DeadLetters
) -> None:
    """Values at the edges of the tables (nulls, huge text, unicode, far times, NaN) are written; a value
    Postgres refuses goes to the dead-letter topic with Postgres' reason, and the rest of its batch, and
    the batches after it, are written."""
    sink = make_sink(pg_dsn, pg_schema, dead_letter=dead_letters.writer)
    unicode = "робот 🤖 مرحبا 漢字 \u200f e\u0301"
    huge = _incompressible(1_000_000)
    too_long_id = _incompressible(20_000)
    alerts = [
        record("alerts", "lim", 0),
        record("alerts", "lim", 1, message=unicode, subject_id=unicode),
        record("alerts", "lim", 2, message=huge),
        record("alerts", "lim", 3, message="nul\x00byte", site_id=None),
        record("alerts", "lim", 4, event_id=too_long_id),  # refused: no index row holds it
        record("alerts", "lim", 5, occurred_at=253_402_300_799_999),  # 9999-12-31T23:59:59.999Z
        record("alerts", "lim", 6, occurred_at=0),
        record("alerts", "lim", 7, event_id=_incompressible(20_000, seed=8)),  # refused too
    ]
    for offset, rec in enumerate(alerts):
        sink.add(rec, rec["subject_id"], 0, [("traceparent", b"x")], "alerts", 0, offset)
    statuses = [
        record("robot.status", "lim", 0, battery=float("nan"), speed=float("inf")),
        record("robot.status", "lim", 1, robot_id="r-null", task_id=None, previous_status=None, route=[]),
    ]
    for offset, rec in enumerate(statuses):
        sink.add(rec, rec["robot_id"], 0, [], "robot.status", 1, offset)
    refused_request = record("audit.log", "lim", 0, resource_id="", status_code=403, action="task.cancel")
    open_window = record("traffic.conflicts", "lim", 0, window_end=None)
    sink.add(refused_request, "lim", 0, [], "audit.log", 0, 0)
    sink.add(open_window, "site-1", 0, [], "traffic.conflicts", 0, 0)
    with pytest.raises(
        RejectedRecord, match=r"window_end = 4611686018427387903 is not a time in years 1\.\.9999"
    ):
        sink.add(
            record("traffic.conflicts", "lim", 1, window_end=4611686018427387903),
            "s",
            0,
            [],
            "traffic.conflicts",
            0,
            1,
        )
    sink.flush()

    assert sink.refused == 2
    with connect(pg_dsn, pg_schema) as conn:
        stored = dict(conn.execute("SELECT alert_id, message FROM alerts WHERE tenant_id = 'lim'").fetchall())
        assert sorted(stored) == ["a-0", "a-1", "a-2", "a-3", "a-5", "a-6"]
        assert stored["a-1"] == unicode and stored["a-2"] == huge and stored["a-3"] == "nulbyte"
        times = conn.execute(
            "SELECT alert_id, occurred_at FROM alerts WHERE alert_id IN ('a-5', 'a-6') ORDER BY 1"
        ).fetchall()
        assert [t.year for _, t in times] == [9999, 1970]
        robots = dict(conn.execute("SELECT robot_id, battery FROM robots WHERE tenant_id = 'lim'").fetchall())
        assert math.isnan(robots["robot-0"]) and "r-null" in robots
        assert conn.execute(
            "SELECT resource_id, status_code FROM audit WHERE tenant_id = 'lim'"
        ).fetchall() == [(None, 403)]
        assert conn.execute("SELECT window_end FROM conflicts WHERE tenant_id = 'lim'").fetchall() == [
            (None,)
        ]

    dead = dead_letters.read(2)
    assert len(dead) == 2
    for message, offset, rec in zip(dead, (4, 7), (alerts[4], alerts[7]), strict=True):
        headers = dict(message.headers())
        assert headers["fleet-dlq-topic"] == b"alerts" and headers["fleet-dlq-offset"] == str(offset).encode()
        assert (
            b"index row" in headers["fleet-dlq-error"] and headers["fleet-dlq-error-type"] == b"RecordRefused"
        )
        assert headers["traceparent"] == b"x"
        assert dead_letters.codecs["alerts"].decode(message.value()) == rec  # the record, replayable

    # the sink goes on with the next batches
    feed(sink, [("alerts", record("alerts", "lim", 8))])
    assert counts(pg_dsn, pg_schema, "lim")["alerts"] == 7
    sink.close()


def test_a_sink_without_a_dead_letter_topic_stops_rather_than_drop(pg_dsn: str, pg_schema: str) -> None:
    sink = make_sink(pg_dsn, pg_schema)
    sink.add(record("alerts", "stop", 0, event_id=_incompressible(20_000)), None, 0, [], "alerts", 0, 0)
    with pytest.raises(RecordRefused, match="index row"):
        sink.flush()
    assert counts(pg_dsn, pg_schema, "stop")["alerts"] == 0
    sink.close()
