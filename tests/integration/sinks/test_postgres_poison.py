"""`fleet run sink-postgres` never wedges on a record (issue 15, items 1 and 2).

Through Kafka, as in production: a conflict whose open window was written as the sentinel
``4611686018427387903`` by a producer that is not ours (it once stopped the sink for good), bytes that are
no record, and a record Postgres refuses (an id too long for any index) are dead-lettered with their
reasons; an audit event of a refused request (no resource id) is stored; the records before and after
them are written and the consumer group commits past all of them.
"""

from __future__ import annotations

import random
import time
from io import BytesIO
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from fastavro import schemaless_writer

from schemas.avsc import parse_plain
from schemas.codec import frame_header
from sinks.postgres import connect
from tests.integration.sinks.test_postgres_support import pg_schema, record
from tests.integration.tasks.test_tasks_support import TaskStack, task_stack

__all__ = ["pg_schema", "task_stack"]

TENANT = "poison"
TOPICS = ["traffic.conflicts", "audit.log", "alerts"]


def foreign(s: TaskStack, name: str, value: dict[str, Any]) -> bytes:
    """``value`` as a producer that is not ours writes it: plain fastavro, no time guard."""
    codec = s.codec(name)
    out = BytesIO()
    out.write(frame_header(codec.schema_id))
    schemaless_writer(out, parse_plain(codec.schema), value)
    return out.getvalue()


def caught_up(s: TaskStack) -> bool:
    group = f"{s.prefix}fleet-sink-postgres"
    consumer = s.reader(TOPICS[0])
    try:
        tps = []
        for name in TOPICS:
            topic = s.settings.topic(name)
            tps += [
                TopicPartition(topic, p)
                for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions
            ]
        request = [ConsumerGroupTopicPartitions(group, tps)]
        committed = s.admin.list_consumer_group_offsets(request)[group].result(10).topic_partitions
        for tp in committed:
            _low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            if high and tp.offset < high:
                return False
        return True
    finally:
        consumer.close()


def test_poison_records_are_dead_lettered_and_everything_else_written(
    task_stack: TaskStack, pg_schema: str, pg_dsn: str
) -> None:
    s = task_stack
    s.start("sink-postgres", postgres_schema=pg_schema)
    s.wait_started("sink-postgres")
    sentinel = record("traffic.conflicts", TENANT, 1, window_end=4611686018427387903)
    too_long = "".join(random.Random(3).choices("abcdefghijklmnopqrstuvwxyz0123456789", k=20_000))
    refused_request = record("audit.log", TENANT, 0, resource_id="", status_code=422, action="task.create")
    for i in range(3):
        s.produce("alerts", f"a{i}", record("alerts", TENANT, i))
    s.produce("traffic.conflicts", "site-1", record("traffic.conflicts", TENANT, 0))
    s.produce("traffic.conflicts", "site-1", foreign(s, "traffic.conflicts", sentinel))
    s.produce("traffic.conflicts", "site-1", record("traffic.conflicts", TENANT, 2))
    s.produce("audit.log", TENANT, refused_request)
    s.produce("alerts", "a3", b"\x00\x00\x00\x00")  # no record at all
    s.produce("alerts", "a4", record("alerts", TENANT, 4, event_id=too_long))
    for i in range(5, 8):
        s.produce("alerts", f"a{i}", record("alerts", TENANT, i))
    s.flush()

    dead = s.read("dlq.sink-postgres", until=lambda d: len(d) >= 3, timeout=60, raw=True)
    reasons = {m.value(): dict(m.headers())["fleet-dlq-error"].decode() for m in dead}
    assert len(dead) == 3, reasons
    conflict_bytes = foreign(s, "traffic.conflicts", sentinel)
    assert "window_end = 4611686018427387903 is not a time in years 1970..9999" in reasons[conflict_bytes]
    assert "not a Confluent-framed Avro message" in reasons[b"\x00\x00\x00\x00"]
    (refused,) = [r for v, r in reasons.items() if v not in (conflict_bytes, b"\x00\x00\x00\x00")]
    assert "index row" in refused

    deadline = time.monotonic() + 60
    while not caught_up(s) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert caught_up(s), s.log("sink-postgres")[-3000:]
    with connect(pg_dsn, pg_schema) as conn:
        alerts = conn.execute(
            "SELECT alert_id FROM alerts WHERE tenant_id = %s ORDER BY 1", [TENANT]
        ).fetchall()
        assert [a for (a,) in alerts] == ["a-0", "a-1", "a-2", "a-5", "a-6", "a-7"]
        conflicts = conn.execute(
            "SELECT conflict_id, window_end IS NULL FROM conflicts WHERE tenant_id = %s ORDER BY 1", [TENANT]
        ).fetchall()
        assert conflicts == [("c-0", False), ("c-2", False)]
        audit = conn.execute(
            "SELECT action, resource_id, status_code FROM audit WHERE tenant_id = %s", [TENANT]
        ).fetchall()
        assert audit == [("task.create", None, 422)]
    assert "Traceback" not in s.log("sink-postgres")
