"""The Redis and InfluxDB sinks log each flush's trace ids (DEBUG) and count failed flushes, against the
real services (an unused port stands for a service that is down)."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import redis
from quixstreams.sinks import SinkBackpressureError

from schemas.ids import now_ms
from schemas.tracing import TRACEPARENT, TraceContext
from sinks.influx import InfluxConfig, InfluxSink
from sinks.redis import RedisConfig, RedisSink
from tests.integration.sinks.test_redis_sink import T0, status

INFLUX_T0 = (now_ms() - 3_600_000) // 60_000 * 60_000  # inside the raw retention policy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def telemetry(seq: int, at: int) -> dict[str, Any]:
    return {
        "event_id": f"e{seq}", "tenant_id": "acme", "site_id": "s1", "occurred_at": at, "robot_id": "r1",
        "fleet_id": "f1", "seq": seq, "pose": {"x": float(seq), "y": 2.0, "yaw": 0.0, "node_id": None,
        "map_name": None}, "battery": 0.5, "speed": 1.0, "mode": "MOVING", "error_code": None,
        "task_id": None, "task_phase": "NONE", "route": [],
    }  # fmt: skip


@pytest.fixture
def influx_config(influx_url: str) -> Iterator[InfluxConfig]:
    """The stack's InfluxDB (v1 API), a database of this test's own."""
    config = InfluxConfig(
        url=influx_url, database=f"test_{uuid.uuid4().hex[:10]}", timeout_s=5.0, retry_after_s=0.1
    )
    yield config
    httpx.post(f"{influx_url}/query", params={"q": f'DROP DATABASE "{config.database}"'}, timeout=10)


def _flush_lines(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and "trace_ids" in r.__dict__]


def test_redis_sink_logs_the_trace_ids_of_a_flush(redis_url: str, caplog: pytest.LogCaptureFixture) -> None:
    tenant = f"test-{uuid.uuid4().hex[:10]}"
    a, b = TraceContext.new(), TraceContext.new()
    sink = RedisSink(RedisConfig(url=redis_url))
    try:
        with caplog.at_level(logging.DEBUG, logger="sinks.redis"):
            sink.add(
                status(tenant, 1, T0), "r1", T0, [(TRACEPARENT, a.traceparent.encode())], "robot.status", 0, 0
            )
            sink.add(
                status(tenant, 2, T0 + 1),
                "r1",
                T0,
                [(TRACEPARENT, b.traceparent.encode())],
                "robot.status",
                0,
                1,
            )
            sink.add(status(tenant, 1, T0, robot_id="r2"), "r2", T0, None, "robot.status", 1, 0)
            sink.flush()
        (line,) = _flush_lines(caplog, "sinks.redis")
        assert line.__dict__["trace_ids"] == [a.trace_id, b.trace_id] and line.__dict__["records"] == 3
    finally:
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(f"fleet:{tenant}:*"))
        if keys:
            client.delete(*keys)
        sink.close()


def test_redis_sink_reports_a_failed_flush() -> None:
    failures: list[BaseException] = []
    sink = RedisSink(
        RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0", socket_timeout_s=1.0, retry_after_s=0.1),
        on_backpressure=failures.append,
    )
    sink.add(status("t", 1, T0), "r1", T0, None, "robot.status", 0, 0)
    with pytest.raises(SinkBackpressureError):
        sink.flush()
    assert len(failures) == 1 and isinstance(failures[0], redis.ConnectionError)
    sink.close()


def test_influx_sink_logs_the_trace_ids_of_a_flush_and_reports_failures(
    influx_config: InfluxConfig, caplog: pytest.LogCaptureFixture
) -> None:
    trace = TraceContext.new()
    flushed: list[tuple[int, float]] = []
    sink = InfluxSink(influx_config, on_flush=lambda n, s: flushed.append((n, s)))
    with caplog.at_level(logging.DEBUG, logger="sinks.influx"):
        sink.add(
            telemetry(1, INFLUX_T0), "r1", INFLUX_T0, [(TRACEPARENT, trace.traceparent.encode())], "t", 0, 0
        )
        sink.add(telemetry(2, INFLUX_T0 + 1000), "r1", INFLUX_T0, None, "t", 0, 1)
        sink.flush()
    (line,) = _flush_lines(caplog, "sinks.influx")
    assert line.__dict__["trace_ids"] == [trace.trace_id] and line.__dict__["records"] == 2
    assert [n for n, _ in flushed] == [2]
    sink.close()

    failures: list[BaseException] = []
    down = InfluxSink(
        replace(influx_config, url=f"http://127.0.0.1:{free_port()}"), on_backpressure=failures.append
    )
    down.add(telemetry(3, INFLUX_T0), "r1", INFLUX_T0, None, "t", 0, 2)
    with pytest.raises(SinkBackpressureError):
        down.flush()
    assert len(failures) == 1
    down.close()
