"""Benchmark: the Postgres sink's write path against a raw COPY of the same rows, same run, same database.

Each figure is the best of ``FLEET_BENCH_PG_ROUNDS`` (default 3) rounds: the machine is shared.

Workload: ``FLEET_BENCH_PG_RECORDS`` (default 60,000) records: 80% TaskEvents (25,000-ish tasks with
CREATED/QUEUED/ASSIGNED/SUCCEEDED; every event goes to task_events, every transition upserts tasks),
10% RobotStatus (upserts of 200 robots), 10% Alerts. Written in checkpoints of ``FLEET_BENCH_PG_BATCH``
(default 5,000) records, as the processor does: ``PostgresSink.add`` per record (validation and row
building included), ``flush`` per checkpoint (one transaction: dedupe, COPY into staging tables,
INSERT ... SELECT ... ON CONFLICT with the guards), into a fresh migrated schema.

Event tables are COPYed straight into the table inside a savepoint (falling back to staging + INSERT ...
ON CONFLICT when a row is already there); the replay figure is that fallback for every batch.

Baseline: a raw ``COPY`` of the very same rows the sink writes for those records (task_events and alerts
rows, and the tasks/robots/tenants rows it upserts, newest per key and checkpoint), prepared beforehand
(timestamps already converted), into copies of the tables (event tables with the same indexes, state rows
appended to unindexed copies), one transaction per checkpoint, no conflict handling: the fastest way Postgres can take those rows. Both figures are records/s
(records / time to write their rows). Goal: the sink (COPY strategy) >= 50% of the raw COPY rate. The executemany strategy and a
replay of the same records (all conflicts: nothing written) are reported beside it.
"""

from __future__ import annotations

import gc
import logging
import os
import time
import uuid
from typing import Any

import psycopg

from pipelines.processors.sink_postgres import Settings
from pipelines.settings import load_settings
from schemas.examples import example
from sinks.postgres import PostgresSink, connect, migrate
from sinks.postgres.rows import rows_for, task_rows, tenant_rows
from sinks.postgres.tables import TABLES, TASKS, TENANTS, Row, epoch_ms
from sinks.postgres.writer import dedupe
from topologies.tasks import det_uuid7

__all__ = ["make_records", "run"]

_BY_NAME = {t.name: t for t in TABLES}

logger = logging.getLogger(__name__)

GOAL_RATIO = 0.5
T0 = 1_767_225_600_000
_STATES = [("CREATED", None), ("QUEUED", "CREATED"), ("ASSIGNED", "QUEUED"), ("SUCCEEDED", "ASSIGNED")]
_TOPICS = {"task.events": "task.events", "robot.status": "robot.status", "alerts": "alerts"}


def make_records(n: int, tenant: str = "bench") -> list[tuple[str, dict[str, Any]]]:
    """``n`` (topic, record) pairs: 80% task events, 10% robot statuses, 10% alerts."""
    event, status, alert = example("TaskEvent"), example("RobotStatus"), example("Alert")
    out: list[tuple[str, dict[str, Any]]] = []
    task = 0
    for i in range(n):
        at = T0 + i
        kind = i % 10
        if kind == 8:
            out.append(
                (
                    "robot.status",
                    {
                        **status,
                        "tenant_id": tenant,
                        "event_id": det_uuid7(at, "s", i),
                        "occurred_at": at,
                        "robot_id": f"r{i % 200}",
                        "seq": i,
                    },
                )
            )
        elif kind == 9:
            out.append(
                (
                    "alerts",
                    {
                        **alert,
                        "tenant_id": tenant,
                        "event_id": det_uuid7(at, "a", i),
                        "occurred_at": at,
                        "alert_id": f"a{i}",
                    },
                )
            )
        else:
            step = task % 4
            state, previous = _STATES[step]
            tid = f"task-{task // 4}"
            out.append(
                (
                    "task.events",
                    {
                        **event,
                        "tenant_id": tenant,
                        "event_id": det_uuid7(at, tid, step),
                        "occurred_at": at,
                        "task_id": tid,
                        "seq": step + 1,
                        "state": state,
                        "previous_state": previous,
                        "robot_id": "r1" if step >= 2 else None,
                        "spec": event["spec"] if step == 0 else None,
                    },
                )
            )
            task += 1
    return out


def _sink_rate(
    dsn: str, schema: str, records: list[tuple[str, dict[str, Any]]], batch: int, strategy: str
) -> float:
    sink = PostgresSink(dsn, _TOPICS, schema=schema, strategy=strategy, migrate_on_start=False)  # type: ignore[arg-type]
    sink.setup()
    started = time.perf_counter()
    for start in range(0, len(records), batch):
        for offset, (topic, record) in enumerate(records[start : start + batch], start):
            sink.add(record, None, record["occurred_at"], [], topic, 0, offset)
        sink.flush()
    elapsed = time.perf_counter() - started
    sink.close()
    return len(records) / elapsed


def _raw_copy_rate(dsn: str, schema: str, records: list[tuple[str, dict[str, Any]]], batch: int) -> float:
    """records/s when every row the sink writes for them is COPYed raw into indexed copies of its table."""
    batches: list[dict[str, list[Row]]] = []
    for start in range(0, len(records), batch):
        grouped: dict[str, list[Row]] = {}
        transitions = []
        for topic, record in records[start : start + batch]:
            for table, row in rows_for(topic, record):
                grouped.setdefault(table.name, []).append(row)
            if topic == "task.events" and record["kind"] == "TRANSITION":
                transitions.append(record)
        grouped[TASKS.name] = task_rows(transitions)
        grouped[TENANTS.name] = tenant_rows(r for _, r in records[start : start + batch])
        for name, rows in grouped.items():
            table = _BY_NAME[name]
            converted = []
            for row in dedupe(table, rows):
                values = list(row)
                for i in table.times:
                    if values[i] is not None:
                        values[i] = epoch_ms(values[i])
                converted.append(values)
            grouped[name] = converted  # type: ignore[assignment]
        batches.append(grouped)
    with connect(dsn, schema, autocommit=True) as conn:
        for table in TABLES:
            conn.execute(f"DROP TABLE IF EXISTS raw_{table.name}")
            # event tables keep their unique indexes; state rows are appended (a raw COPY cannot update)
            like = "INCLUDING ALL" if not table.key else "INCLUDING DEFAULTS"
            conn.execute(f"CREATE TABLE raw_{table.name} (LIKE {table.table} {like})")
        started = time.perf_counter()
        for grouped in batches:
            with conn.transaction():
                for name, rows in grouped.items():
                    cols = ", ".join(_BY_NAME[name].names)
                    with conn.cursor().copy(f"COPY raw_{name} ({cols}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
        elapsed = time.perf_counter() - started
    return len(records) / elapsed


def _fresh(dsn: str, schema: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    migrate(dsn, schema)
    return schema


def run() -> list[dict[str, Any]]:
    """Run the benchmark; returns result rows (name, value, unit, baseline, ratio, goal)."""
    settings = load_settings(Settings)
    dsn = settings.postgres_dsn.get_secret_value()
    n = int(os.environ.get("FLEET_BENCH_PG_RECORDS", 60_000))
    batch = int(os.environ.get("FLEET_BENCH_PG_BATCH", 5_000))
    rounds = int(os.environ.get("FLEET_BENCH_PG_ROUNDS", 3))
    records = make_records(n)
    # The 60,000 prebuilt records are the benchmark's own input: keep the cyclic GC from scanning them
    # again and again (a processor holds only one checkpoint's batch at a time).
    gc.collect()
    gc.freeze()
    tag = uuid.uuid4().hex[:8]
    best: dict[str, float] = {"raw": 0.0, "copy": 0.0, "replay": 0.0, "executemany": 0.0}
    schemas = [f"bench_{tag}_{k}" for k in ("raw", "copy", "many")]
    try:
        # The machine is shared (the broker, other processes): best of ``rounds`` for each figure.
        for _ in range(rounds):
            best["raw"] = max(best["raw"], _raw_copy_rate(dsn, _fresh(dsn, schemas[0]), records, batch))
            schema = _fresh(dsn, schemas[1])
            best["copy"] = max(best["copy"], _sink_rate(dsn, schema, records, batch, "copy"))
            best["replay"] = max(best["replay"], _sink_rate(dsn, schema, records, batch, "copy"))
            best["executemany"] = max(
                best["executemany"], _sink_rate(dsn, _fresh(dsn, schemas[2]), records, batch, "executemany")
            )
    finally:
        gc.unfreeze()
        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    raw, copy_rate, replay_rate, many_rate = best["raw"], best["copy"], best["replay"], best["executemany"]
    logger.info(
        "best of %d: records/s raw COPY %.0f; sink copy %.0f, replay %.0f, executemany %.0f",
        rounds,
        raw,
        copy_rate,
        replay_rate,
        many_rate,
    )
    goal = f">= {GOAL_RATIO:.0%} of raw COPY"
    return [
        {
            "name": "postgres sink, COPY strategy",
            "value": copy_rate,
            "unit": "records/s",
            "baseline": raw,
            "ratio": copy_rate / raw,
            "goal": goal,
        },
        {
            "name": "postgres sink, replay (all conflicts)",
            "value": replay_rate,
            "unit": "records/s",
            "baseline": raw,
            "ratio": replay_rate / raw,
            "goal": goal,
        },
        {
            "name": "postgres sink, executemany strategy",
            "value": many_rate,
            "unit": "records/s",
            "baseline": raw,
            "ratio": many_rate / raw,
            "goal": "(comparison)",
        },
    ]
