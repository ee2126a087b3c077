"""The Postgres sink processor under load: Postgres stopped for 30 s, then back; and a replay of every topic.

Runs ``fleet run sink-postgres`` against a unique topic prefix and Postgres schema. While Postgres is down
the sink pauses (backpressure) and commits nothing; when it is back it catches up, and the row counts
match the topics exactly. Replaying the topics from the beginning afterwards leaves every table as it was.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition

from sinks.postgres import connect
from tests.integration.sinks.test_postgres_support import pg_schema, record, snapshot
from tests.integration.tasks.test_tasks_support import TaskStack, task_stack

__all__ = ["pg_schema", "task_stack"]

logger = logging.getLogger(__name__)

STACK = Path(__file__).resolve().parents[3] / "deploy" / "local" / "stack.sh"
TENANT = "outage"
RATE = 600  # records per second, for OUTAGE_AT + OUTAGE + 10 seconds
OUTAGE_AT, OUTAGE = 5.0, 30.0


def _stack(action: str) -> None:
    subprocess.run([str(STACK), action, "postgres"], check=True, capture_output=True, timeout=120)


def _count(dsn: str, schema: str) -> tuple[int, int] | None:
    try:
        with connect(dsn, schema, connect_timeout=2) as conn:
            events = conn.execute(
                "SELECT count(*) FROM task_events WHERE tenant_id = %s", [TENANT]
            ).fetchone()
            alerts = conn.execute("SELECT count(*) FROM alerts WHERE tenant_id = %s", [TENANT]).fetchone()
            return int(events[0]), int(alerts[0])  # type: ignore[index]
    except Exception:
        return None


def _records_in(s: TaskStack, name: str, produced: int) -> int:
    def enough(records: list[dict[str, Any]]) -> bool:
        return len(records) >= produced

    return len(s.read(name, until=enough, timeout=60, quiet=0))


def _missing(s: TaskStack, dsn: str, schema: str) -> str:
    """Which task events of the topic are not in Postgres, by partition and offset range (diagnostics)."""
    consumer = s.reader("task.events")
    where: dict[str, tuple[int, int]] = {}
    try:
        while (msg := consumer.poll(2.0)) is not None:
            if not msg.error():
                event = s.codec("task.events").decode(msg.value())
                where[event["event_id"]] = (msg.partition(), msg.offset())  # type: ignore[index]
    finally:
        consumer.close()
    with connect(dsn, schema) as conn:
        stored = {
            r[0] for r in conn.execute("SELECT event_id FROM task_events WHERE tenant_id = %s", [TENANT])
        }
    lost = sorted(where[e] for e in set(where) - stored)
    return f"{len(lost)} task events missing, first/last (partition, offset): {lost[:3]} ... {lost[-3:]}"


def _caught_up(s: TaskStack, topics: list[str]) -> bool:
    """The sink's consumer group has committed the end of every partition of ``topics``."""
    group = f"{s.prefix}fleet-sink-postgres"
    consumer = s.reader(topics[0])
    try:
        tps = []
        for name in topics:
            topic = s.settings.topic(name)
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            tps += [TopicPartition(topic, p) for p in meta.partitions]
        committed = (
            s.admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group, tps)])[group]
            .result(10)
            .topic_partitions
        )
        for tp in committed:
            _low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            if high and tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


def test_postgres_outage_under_load_then_replay(task_stack: TaskStack, pg_schema: str, pg_dsn: str) -> None:
    s = task_stack
    s.start("sink-postgres", postgres_schema=pg_schema, postgres_retry_s=1, postgres_retry_max_s=4)
    s.wait_started("sink-postgres")
    total = int(RATE * (OUTAGE_AT + OUTAGE + 10))
    produced = {"task.events": 0, "alerts": 0}

    def load() -> None:
        started = time.monotonic()
        for i in range(total):
            topic = "alerts" if i % 10 == 9 else "task.events"
            rec = record(topic, TENANT, i)
            s.produce(topic, rec.get("task_id") or rec["subject_id"], rec)
            produced[topic] += 1
            behind = started + i / RATE - time.monotonic()
            if behind > 0:
                time.sleep(behind)
        s.flush()

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(OUTAGE_AT)
        before = _count(pg_dsn, pg_schema)
        _stack("down")
        logger.warning("postgres down with %s rows written", before)
        time.sleep(OUTAGE)
    finally:
        _stack("up")
    worker.join()
    # The oracle is the topics themselves: every record that is there must be in Postgres, once.
    in_topics = {name: _records_in(s, name, n) for name, n in produced.items()}
    logger.warning("produced %s, in the topics %s", produced, in_topics)
    expected = (in_topics["task.events"], in_topics["alerts"])
    deadline = time.monotonic() + 60
    while _count(pg_dsn, pg_schema) != expected and time.monotonic() < deadline:
        time.sleep(1)
    assert _count(pg_dsn, pg_schema) == expected, _missing(s, pg_dsn, pg_schema)
    assert before is not None and 0 < before[0] < expected[0]  # it was writing when Postgres went down
    log = s.log("sink-postgres")
    assert "pausing" in log and "postgres is back" in log, log[-3000:]
    assert s.read("dlq.sink-postgres", timeout=2) == []
    deadline = time.monotonic() + 30
    while not _caught_up(s, ["task.events", "alerts"]) and time.monotonic() < deadline:
        time.sleep(0.5)

    # Replay: forget the sink's offsets, let it read both topics again from the beginning.
    first = snapshot(pg_dsn, pg_schema, TENANT)
    s.stop("sink-postgres")
    group = f"{s.prefix}fleet-sink-postgres"
    s.admin.delete_consumer_groups([group])[group].result(30)
    s.start("sink-postgres", postgres_schema=pg_schema)
    s.wait_started("sink-postgres")
    deadline = time.monotonic() + 60
    while not _caught_up(s, ["task.events", "alerts"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _caught_up(s, ["task.events", "alerts"])
    assert snapshot(pg_dsn, pg_schema, TENANT) == first
