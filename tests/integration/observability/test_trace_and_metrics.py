"""One task from ``POST /v1/tasks`` to its Postgres row, followed by its trace and by the metrics.

The real gateway, tasks processor and Postgres sink run as subprocesses (``fleet run ...``) with
DEBUG JSON logs and their metrics endpoints on; the test finds the gateway's trace id in the
``traceparent`` header of every record on the way (task.commands, tasks.inbox, task.events,
audit.log) and in the log lines of every hop, and scrapes the processors' ``/metrics``.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families

from gateway.auth import issue_token
from pipelines.settings import CommonSettings
from schemas.tracing import TraceContext, parse_traceparent
from sinks.postgres import migrate
from tests.integration.tasks.test_tasks_support import PARTITIONS, TOPICS, TaskStack, open_task_stack

SECRET = "observability-test-secret-0123456789abcdef"
SPEC = {
    "site_id": "s1",
    "spec": {"category": "delivery", "priority": 5, "pickup_node": "a", "dropoff_node": "b"},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pipeline:
    stack: TaskStack
    url: str
    pg_dsn: str
    pg_schema: str
    metrics: dict[str, str]  # processor -> metrics URL

    def token(self, tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {issue_token(SECRET, tenant_id=tenant, roles=['operator'])}"}

    def log_lines(self, processor: str) -> list[dict[str, Any]]:
        lines = []
        for line in self.stack.log(processor).splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                parsed = orjson.loads(line)
                if isinstance(parsed, dict):
                    lines.append(parsed)
        return lines

    def task_state(self, tenant: str, task_id: str) -> str | None:
        with psycopg.connect(self.pg_dsn, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {self.pg_schema}")
            row = conn.execute(
                "SELECT state FROM tasks WHERE tenant_id = %s AND task_id = %s", [tenant, task_id]
            ).fetchone()
        return row[0] if row else None

    def wait_row(self, tenant: str, task_id: str, state: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.task_state(tenant, task_id) == state:
                return
            time.sleep(0.3)
        raise AssertionError(
            f"task {task_id} never reached {state} in Postgres (now {self.task_state(tenant, task_id)}); "
            f"tasks log:\n{self.stack.log('tasks')[-3000:]}\nsink log:\n{self.stack.log('sink-postgres')[-3000:]}"
        )

    def records(self, topic: str, key: str, want: int, timeout: float = 30.0) -> list[Any]:
        """Raw messages of ``topic`` with ``key`` (at least ``want`` of them, read to the end)."""
        consumer = self.stack.reader(topic)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        idle_since = None
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None or msg.error():
                    if len(out) >= want:
                        idle_since = idle_since or time.monotonic()
                        if time.monotonic() - idle_since > 1.0:
                            break
                    continue
                idle_since = None
                if msg.key() == key.encode():
                    out.append(msg)
        finally:
            consumer.close()
        assert len(out) >= want, f"{len(out)} records of {topic} with key {key}, wanted {want}"
        return out

    def scrape(self, processor: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        text = httpx.get(self.metrics[processor], timeout=10).text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }


def _trace_of(msg: Any) -> TraceContext:
    headers = dict(msg.headers() or [])
    parsed = parse_traceparent(headers.get("traceparent"))
    assert parsed is not None, (
        f"no valid traceparent on {msg.topic()}[{msg.partition()}]@{msg.offset()}: {headers}"
    )
    return parsed


@pytest.fixture(scope="module")
def pipeline(
    settings: CommonSettings,
    kafka_admin: AdminClient,
    pg_dsn: str,
    redis_url: str,
    influx_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pipeline]:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    tmp = tmp_path_factory.mktemp("observability")
    s = settings.model_copy(update={"topic_prefix": prefix, "state_dir": tmp / "state"})
    schema = f"t_{uuid.uuid4().hex[:10]}"
    migrate(pg_dsn, schema)
    with open_task_stack(s, kafka_admin, tmp, TOPICS) as stack:
        try:
            yield from _run_pipeline(stack, pg_dsn, schema, redis_url, influx_url)
        finally:
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def _run_pipeline(
    stack: TaskStack, pg_dsn: str, schema: str, redis_url: str, influx_url: str
) -> Iterator[Pipeline]:
    http_port, tasks_port, sink_port = _free_port(), _free_port(), _free_port()
    stack.start("tasks", log_level="DEBUG", metrics_port=tasks_port)
    stack.start("sink-postgres", log_level="DEBUG", metrics_port=sink_port, postgres_schema=schema)
    stack.start(
        "gateway",
        log_level="DEBUG",
        http_port=http_port,
        jwt_secret=SECRET,
        postgres_dsn=f"{pg_dsn}?options=-csearch_path%3D{schema}",
        redis_url=redis_url,
        influx_url=influx_url,
        dashboard_enabled="false",
        rmf_ws_enabled="false",
    )
    url = f"http://127.0.0.1:{http_port}"
    result = Pipeline(
        stack,
        url,
        pg_dsn,
        schema,
        {
            "tasks": f"http://127.0.0.1:{tasks_port}/metrics",
            "sink-postgres": f"http://127.0.0.1:{sink_port}/metrics",
        },
    )
    for proc in ("tasks", "sink-postgres"):
        stack.wait_started(proc)
    deadline = time.monotonic() + 60
    while "gateway ready" not in stack.log("gateway"):
        assert stack.procs["gateway"].poll() is None, f"gateway exited:\n{stack.log('gateway')[-3000:]}"
        assert time.monotonic() < deadline, f"gateway did not start:\n{stack.log('gateway')[-3000:]}"
        time.sleep(0.2)
    yield result


def test_one_trace_id_from_the_gateway_to_the_postgres_row(pipeline: Pipeline) -> None:
    p = pipeline
    tenant = f"trace-{uuid.uuid4().hex[:8]}"
    answer = httpx.post(f"{p.url}/v1/tasks", json=SPEC, headers=p.token(tenant), timeout=30)
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["task_id"]
    gateway_span = parse_traceparent(answer.headers.get("traceresponse"))
    assert gateway_span is not None, f"no traceresponse: {answer.headers}"
    trace_id = gateway_span.trace_id
    p.wait_row(tenant, task_id, "QUEUED")

    # Headers: every record on the way carries the trace; each processor adds a span of its own.
    (command,) = p.records("task.commands", task_id, 1)
    assert _trace_of(command) == gateway_span  # the gateway's span is the record's parent
    inbox = p.records("tasks.inbox", task_id, 1)
    events = p.records("task.events", task_id, 2)  # CREATED, QUEUED
    (audit,) = p.records("audit.log", tenant, 1)
    for msg in (*inbox, *events, audit):
        assert _trace_of(msg).trace_id == trace_id, msg.topic()
    assert _trace_of(audit).span_id == gateway_span.span_id  # produced by the same request
    tasks_spans = {_trace_of(m).span_id for m in (*inbox, *events)}
    assert gateway_span.span_id not in tasks_spans  # tasks' records carry tasks' spans, children of it

    # Logs: every hop logged with the trace id while it handled the task.
    gateway_lines = [line for line in p.log_lines("gateway") if line.get("trace_id") == trace_id]
    assert any(line.get("output_topic") == "task.commands" for line in gateway_lines), gateway_lines
    assert any(line.get("output_topic") == "audit.log" for line in gateway_lines), gateway_lines
    tasks_lines = [line for line in p.log_lines("tasks") if line.get("trace_id") == trace_id]
    commands_topic = p.stack.settings.topic("task.commands")
    assert any(
        line.get("topic") == commands_topic
        and line.get("at", "").startswith(f"{commands_topic}[")
        and line.get("tenant_id") == tenant
        and line.get("task_id") == task_id
        for line in tasks_lines
    ), tasks_lines
    assert any(line.get("output_topic") == p.stack.settings.topic("task.events") for line in tasks_lines)
    sink_lines = [line for line in p.log_lines("sink-postgres") if trace_id in line.get("trace_ids", [])]
    assert sink_lines, "the Postgres sink logged no batch with the trace id"
    assert all(line["records"] >= 1 for line in sink_lines)


def test_the_gateway_joins_the_callers_trace(pipeline: Pipeline) -> None:
    p = pipeline
    tenant = f"trace-{uuid.uuid4().hex[:8]}"
    caller = TraceContext.new()
    answer = httpx.post(
        f"{p.url}/v1/tasks",
        json=SPEC,
        headers={**p.token(tenant), "traceparent": caller.traceparent},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    joined = parse_traceparent(answer.headers.get("traceresponse"))
    assert joined is not None and joined.trace_id == caller.trace_id and joined.span_id != caller.span_id
    (command,) = p.records("task.commands", answer.json()["task_id"], 1)
    assert _trace_of(command) == joined
    events = p.records("task.events", answer.json()["task_id"], 2)
    assert {_trace_of(e).trace_id for e in events} == {caller.trace_id}


def _value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def test_processor_metrics_move(pipeline: Pipeline) -> None:
    p = pipeline
    topic = p.stack.settings.topic
    before_tasks, before_sink = p.scrape("tasks"), p.scrape("sink-postgres")
    tenant = f"metrics-{uuid.uuid4().hex[:8]}"
    task_ids = []
    # Twelve tasks, so that both task.commands partitions hold records (the lag check below needs a
    # position on each; with three, all could land on one partition and its lag stayed unknown).
    for _ in range(12):
        answer = httpx.post(f"{p.url}/v1/tasks", json=SPEC, headers=p.token(tenant), timeout=30)
        assert answer.status_code == 202, answer.text
        task_ids.append(answer.json()["task_id"])
    for task_id in task_ids:
        p.wait_row(tenant, task_id, "QUEUED")

    def tasks_moved() -> bool:
        now = p.scrape("tasks")
        return (
            _value(now, "fleet_records_in_total", processor="tasks", topic=topic("task.commands"))
            >= _value(before_tasks, "fleet_records_in_total", processor="tasks", topic=topic("task.commands"))
            + 3
            and _value(now, "fleet_records_out_total", processor="tasks", topic=topic("task.events"))
            >= _value(before_tasks, "fleet_records_out_total", processor="tasks", topic=topic("task.events"))
            + 6
            and _value(now, "fleet_processing_latency_seconds_count", processor="tasks")
            >= _value(before_tasks, "fleet_processing_latency_seconds_count", processor="tasks") + 6
        )

    _wait_for(tasks_moved, "the tasks processor's record counters did not move")
    tasks = p.scrape("tasks")
    # Event time to processed: every record of this test was processed within 30 s of its occurred_at.
    count = _value(tasks, "fleet_processing_latency_seconds_count", processor="tasks")
    within = _value(tasks, "fleet_processing_latency_seconds_bucket", processor="tasks", le="30.0")
    assert (
        within - _value(before_tasks, "fleet_processing_latency_seconds_bucket", processor="tasks", le="30.0")
        >= 6
    )
    assert count >= within > 0
    assert _value(tasks, "fleet_state_bytes", processor="tasks") > 0

    # Lag comes from the consumer's statistics (every 5 s): one series per owned input partition, caught up.
    def caught_up() -> bool:
        now = p.scrape("tasks")
        lags = [
            _value(
                now, "fleet_consumer_lag", processor="tasks", topic=topic("task.commands"), partition=str(i)
            )
            for i in range(PARTITIONS)
        ]
        present = all(
            (
                "fleet_consumer_lag",
                frozenset(
                    {"processor": "tasks", "topic": topic("task.commands"), "partition": str(i)}.items()
                ),
            )
            in now
            for i in range(PARTITIONS)
        )
        return present and lags == [0.0] * PARTITIONS

    _wait_for(caught_up, "fleet_consumer_lag of tasks never showed its task.commands partitions caught up")

    def sink_moved() -> bool:
        now = p.scrape("sink-postgres")
        return (
            _value(now, "fleet_records_in_total", processor="sink-postgres", topic=topic("task.events"))
            >= _value(
                before_sink, "fleet_records_in_total", processor="sink-postgres", topic=topic("task.events")
            )
            + 6
            and _value(now, "fleet_sink_batch_size_count", sink="sink-postgres")
            > _value(before_sink, "fleet_sink_batch_size_count", sink="sink-postgres")
            and _value(now, "fleet_sink_batch_size_sum", sink="sink-postgres")
            >= _value(before_sink, "fleet_sink_batch_size_sum", sink="sink-postgres") + 6
            and _value(now, "fleet_sink_write_seconds_count", sink="sink-postgres")
            > _value(before_sink, "fleet_sink_write_seconds_count", sink="sink-postgres")
        )

    _wait_for(sink_moved, "the Postgres sink's metrics did not move")
