"""`fleet run sink-influx` and `fleet run sink-redis` end to end: Kafka -> sink -> real InfluxDB / Redis,
through an outage of the target (cut with a TCP proxy): the consumer pauses, catches up, loses nothing."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import httpx
import orjson
import pytest
import redis
from confluent_kafka.admin import AdminClient, NewTopic
from fastavro import schemaless_writer

from schemas.avsc import parse_plain
from schemas.catalog import topics as catalog_topics
from schemas.codec import frame_header
from schemas.ids import now_ms

from ..conftest import service_port
from .conftest import TELEMETRY_TOPICS, Stack, TcpProxy

TENANT = "acme"


@pytest.fixture
def sink_stack(stack: Stack) -> Stack:
    admin = AdminClient(stack.settings.kafka_client_config())
    wanted = ["task.events", "robot.telemetry.accepted", "dlq.sink-influx", "dlq.sink-redis"]
    specs = catalog_topics(stack.prefix, partitions={"robot": 2, "task": 2},
                           names=[n for n in wanted if n not in TELEMETRY_TOPICS])  # fmt: skip
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


def foreign(stack: Stack, name: str, record: dict[str, Any]) -> bytes:
    """``record`` as a producer that is not ours writes it: plain fastavro, our registered schema id, no
    time guard."""
    codec = stack.codec(name)
    out = BytesIO(frame_header(codec.schema_id))
    out.seek(5)
    schemaless_writer(out, parse_plain(codec.schema), record)
    return out.getvalue()


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
        stack.produce("robot.telemetry.accepted", f"r{i % 4}", telemetry(f"r{i % 4}", i, base + i * 100))
    for w in range(3):
        stack.produce("robot.telemetry.1m", "r0", aggregate("r0", base // 60_000 * 60_000 + w * 60_000))
    stack.produce("robot.telemetry.accepted", "r0", b"not avro")
    far = foreign(stack, "robot.telemetry.accepted", telemetry("r0", 10_000, 4611686018427387903))
    stack.produce("robot.telemetry.accepted", "r0", far)  # a producer that is not ours
    stack.produce("robot.telemetry", "r9", telemetry("r9", 1, base))  # raw: not accepted (yet), not stored
    stack.flush()
    wait_for(lambda: count() == 200, 60, "the first 200 points", lambda: stack.log("sink-influx"))

    proxy.down()  # InfluxDB "goes away"
    for i in range(200, 500):
        stack.produce("robot.telemetry.accepted", f"r{i % 4}", telemetry(f"r{i % 4}", i, base + i * 100))
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
    dead = stack.read("dlq.sink-influx", until=lambda d: len(d) >= 2, timeout=20, raw=True)
    assert sorted(m.value() for m in dead) == sorted([b"not avro", far])  # their original bytes
    assert all(dict(m.headers())["fleet-dlq-processor"] == b"sink-influx" for m in dead)
    reason = next(dict(m.headers())["fleet-dlq-error"] for m in dead if m.value() == far)
    assert b"occurred_at = 4611686018427387903 is not a time in years 1970..9999" in reason
    raw = httpx.get(
        f"{influx_url}/query",
        params={
            "db": influx_db,
            "q": 'SELECT count(seq) FROM "telemetry_7d"."robot_telemetry" WHERE robot = \'r9\'',
        },
        timeout=10,
    ).json()
    assert "series" not in raw["results"][0]  # raw robot.telemetry never reaches InfluxDB


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


def test_redis_views_come_back_after_redis_lost_its_data(sink_stack: Stack, redis_url: str):
    """Redis flushed (as after a restart without its data): quiet robots' views and the task views come
    back from robot.status and task.events, with no new record produced, and with the TTL they had left."""
    stack = sink_stack
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stack.start("sink-redis", redis_url=redis_url, commit_interval_s=0.3)
    prefix = f"fleet:{TENANT}"
    robots = [f"{stack.prefix}quiet{i}" for i in range(3)]
    task = f"{stack.prefix}t1"
    marker = f"fleet:views:complete:{stack.prefix}"
    at = now_ms() - 120_000  # the robots last reported two minutes ago
    for rid in robots:
        for seq in (1, 2):
            stack.produce("robot.status", rid, status(rid, seq, at + seq, "IDLE" if seq == 1 else "CHARGING"))
    for seq, state in ((1, "CREATED"), (2, "QUEUED")):
        stack.produce("task.events", task, task_event(task, seq, at + seq, state))
    stack.flush()
    keys = [f"{prefix}:robot:{rid}" for rid in robots] + [f"{prefix}:task:{task}"]
    try:
        wait_for(lambda: client.exists(*keys) == 4, 60, "the views", lambda: stack.log("sink-redis"))
        wait_for(lambda: bool(client.exists(marker)), 30, "the marker", lambda: stack.log("sink-redis"))
        before = {k: client.get(k) for k in keys}

        client.flushall()  # Redis lost everything; nothing new arrives
        wait_for(lambda: client.exists(*keys) == 4, 60, "the rebuilt views", lambda: stack.log("sink-redis"))
        assert {k: client.get(k) for k in keys} == before
        assert all(
            3300 < client.ttl(f"{prefix}:robot:{rid}") <= 3600 - 119 for rid in robots
        )  # what was left
        assert set(robots) <= set(client.zrange(f"{prefix}:site:s1:robots", 0, -1))
        assert client.zrange(f"{prefix}:site:s1:tasks", 0, -1) == [task]
        assert orjson.loads(client.get(f"{prefix}:robot:{robots[0]}"))["status"] == "CHARGING"
        wait_for(lambda: bool(client.exists(marker)), 30, "the marker again", lambda: stack.log("sink-redis"))
        assert "rebuilding them from the topics" in stack.log("sink-redis")
    finally:
        client.delete(*keys, marker)
        client.zrem(f"{prefix}:site:s1:robots", *robots)
        client.zrem(f"{prefix}:site:s1:tasks", task)
