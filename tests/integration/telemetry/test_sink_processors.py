"""`fleet run sink-influx` and `fleet run sink-redis` end to end: Kafka -> sink -> real InfluxDB / Redis,
through an outage of the target (cut with a TCP proxy): the consumer pauses, catches up, loses nothing."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis
from confluent_kafka.admin import AdminClient, NewTopic

from schemas.catalog import topics as catalog_topics
from schemas.ids import now_ms

from ..conftest import service_port
from .conftest import Stack, TcpProxy

TENANT = "acme"


@pytest.fixture
def sink_stack(stack: Stack) -> Stack:
    admin = AdminClient(stack.settings.kafka_client_config())
    specs = catalog_topics(stack.prefix, partitions={"robot": 2, "task": 2},
                           names=["task.events", "dlq.sink-influx", "dlq.sink-redis"])  # fmt: skip
    for future in admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config())
            for s in specs
        ]
    ).values():
        future.result(30)
    yield stack
    for future in admin.delete_topics([s.name for s in specs]).values():
        with contextlib.suppress(Exception):  # best-effort clean-up
            future.result(30)


def telemetry(robot_id: str, seq: int, at: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": "s1", "occurred_at": at,
        "robot_id": robot_id, "fleet_id": "f1", "seq": seq,
        "pose": {"x": float(seq), "y": 1.0, "yaw": 0.0, "node_id": None, "map_name": None},
        "battery": 0.5, "speed": 1.0, "mode": "MOVING", "error_code": None, "task_id": None,
        "task_phase": "NONE", "route": [],
    }  # fmt: skip


def aggregate(robot_id: str, start: int) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": "s1", "occurred_at": start,
        "robot_id": robot_id, "fleet_id": "f1", "window_start": start, "window_end": start + 60_000, "count": 60,
        "battery_min": 0.4, "battery_max": 0.6, "battery_avg": 0.5, "speed_avg": 0.9, "speed_max": 1.8,
        "distance_m": 54.0,
    }  # fmt: skip


def wait_for(check: Callable[[], bool], timeout: float, what: str, log: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{log()[-3000:]}"
        time.sleep(0.25)


@pytest.fixture
def influx_db(influx_url: str) -> Iterator[str]:
    name = f"test_{uuid.uuid4().hex[:10]}"
    yield name
    httpx.post(f"{influx_url}/query", params={"q": f'DROP DATABASE "{name}"'}, timeout=10)


def test_influx_sink_processor_survives_an_outage(
    sink_stack: Stack, tcp_proxy: Callable[[int], TcpProxy], influx_url: str, influx_db: str
):
    stack = sink_stack
    proxy = tcp_proxy(service_port("influxdb"))
    stack.start("sink-influx", influx_url=f"http://127.0.0.1:{proxy.port}", influx_database=influx_db,
                influx_retry_after_s=0.5, influx_timeout_s=1, commit_interval_s=0.3)  # fmt: skip

    def count() -> int:
        body = httpx.get(
            f"{influx_url}/query",
            params={"db": influx_db, "q": 'SELECT count(seq) FROM "telemetry_7d"."robot_telemetry"'},
            timeout=10,
        ).json()
        series = body["results"][0].get("series")
        return series[0]["values"][0][1] if series else 0

    base = now_ms() - 600_000
    for i in range(200):
        stack.produce("robot.telemetry", f"r{i % 4}", telemetry(f"r{i % 4}", i, base + i * 100))
    for w in range(3):
        stack.produce("robot.telemetry.1m", "r0", aggregate("r0", base // 60_000 * 60_000 + w * 60_000))
    stack.produce("robot.telemetry", "r0", b"not avro")
    stack.flush()
    wait_for(lambda: count() == 200, 60, "the first 200 points", lambda: stack.log("sink-influx"))

    proxy.down()  # InfluxDB "goes away"
    for i in range(200, 500):
        stack.produce("robot.telemetry", f"r{i % 4}", telemetry(f"r{i % 4}", i, base + i * 100))
    stack.flush()
    wait_for(
        lambda: "Backpressure" in stack.log("sink-influx"),
        30,
        "backpressure",
        lambda: stack.log("sink-influx"),
    )
    assert count() == 200
    proxy.up()
    wait_for(lambda: count() == 500, 60, "catching up after the outage", lambda: stack.log("sink-influx"))
    time.sleep(2)
    assert count() == 500  # nothing lost, nothing duplicated (points are idempotent)
    agg = httpx.get(
        f"{influx_url}/query",
        params={
            "db": influx_db,
            "q": 'SELECT count(distance_m) FROM "telemetry_1m_90d"."robot_telemetry_1m"',
        },
        timeout=10,
    ).json()
    assert agg["results"][0]["series"][0]["values"][0][1] == 3
    dead = stack.read("dlq.sink-influx", until=lambda d: len(d) >= 1, timeout=20, raw=True)
    assert [m.value() for m in dead] == [b"not avro"]
    assert dict(dead[0].headers())["fleet-dlq-processor"] == b"sink-influx"


def status(robot_id: str, seq: int, at: int, state: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": "s1", "occurred_at": at,
        "robot_id": robot_id, "fleet_id": "f1", "status": state, "previous_status": None, "battery": 0.5,
        "pose": {"x": 1.0, "y": 2.0, "yaw": 0.0, "node_id": None, "map_name": None}, "speed": 0.0,
        "task_id": None, "route": [], "seq": seq, "last_seen_at": at, "reason": "CHANGE",
    }  # fmt: skip


def task_event(task_id: str, seq: int, at: int, state: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": "s1", "occurred_at": at,
        "task_id": task_id, "seq": seq, "kind": "TRANSITION", "state": state, "previous_state": None,
        "reason": None, "robot_id": "r1" if seq > 2 else None, "attempt": 0, "spec": None, "external_id": None,
        "causation_id": None,
    }  # fmt: skip


def test_redis_sink_processor_survives_an_outage_and_never_moves_backwards(
    sink_stack: Stack, tcp_proxy: Callable[[int], TcpProxy], redis_url: str
):
    stack = sink_stack
    tenant = TENANT
    proxy = tcp_proxy(service_port("redis"))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stack.start("sink-redis", redis_url=f"redis://127.0.0.1:{proxy.port}/0", redis_retry_after_s=0.5,
                redis_timeout_s=1, commit_interval_s=0.3)  # fmt: skip
    prefix = f"fleet:{tenant}"
    keys = [f"{prefix}:robot:{stack.prefix}r{i}" for i in range(3)] + [f"{prefix}:task:{stack.prefix}t1"]
    try:
        at = now_ms()
        for i in range(3):
            rid = f"{stack.prefix}r{i}"
            for seq in (1, 3, 2):  # out of order within the partition
                stack.produce(
                    "robot.status", rid, status(rid, seq, at + seq, "MOVING" if seq == 3 else "IDLE")
                )
        for seq, state in ((1, "CREATED"), (2, "QUEUED")):
            stack.produce(
                "task.events", f"{stack.prefix}t1", task_event(f"{stack.prefix}t1", seq, at + seq, state)
            )
        stack.flush()
        wait_for(lambda: client.exists(*keys) == 4, 60, "the first keys", lambda: stack.log("sink-redis"))

        proxy.down()
        for seq, state in ((3, "ASSIGNED"), (4, "EXECUTING")):
            stack.produce(
                "task.events", f"{stack.prefix}t1", task_event(f"{stack.prefix}t1", seq, at + seq, state)
            )
        stack.flush()
        wait_for(
            lambda: "Backpressure" in stack.log("sink-redis"),
            30,
            "backpressure",
            lambda: stack.log("sink-redis"),
        )
        proxy.up()

        def task_state() -> str | None:
            raw = client.get(f"{prefix}:task:{stack.prefix}t1")
            return orjson.loads(raw)["state"] if raw else None

        wait_for(lambda: task_state() == "EXECUTING", 60, "catching up", lambda: stack.log("sink-redis"))
        for i in range(3):
            stored = orjson.loads(client.get(f"{prefix}:robot:{stack.prefix}r{i}"))
            assert (stored["seq"], stored["status"]) == (3, "MOVING")
        view = orjson.loads(client.get(f"{prefix}:task:{stack.prefix}t1"))
        assert view == {
            "task_id": f"{stack.prefix}t1", "site_id": "s1", "state": "EXECUTING", "robot_id": "r1",
            "attempt": 0, "seq": 4, "updated_at": at + 4, "reason": None,
        }  # fmt: skip
        members = client.zrange(f"{prefix}:site:s1:robots", 0, -1)
        assert {f"{stack.prefix}r{i}" for i in range(3)} <= set(members)
    finally:
        client.delete(*keys)
        client.zrem(f"{prefix}:site:s1:robots", *[f"{stack.prefix}r{i}" for i in range(3)])
        client.zrem(f"{prefix}:site:s1:tasks", f"{stack.prefix}t1")
