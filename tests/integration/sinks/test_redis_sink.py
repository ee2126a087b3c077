"""Redis sink against the real local Redis: the gateway's keys, ordering, TTLs and backpressure."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis
from quixstreams.sinks import SinkBackpressureError

from sinks.redis import RedisConfig, RedisSink
from tests.integration.sinks.conftest import DeadLetters

T0 = 1_740_816_000_000


def status(tenant: str, seq: int, at: int, robot_id: str = "r1", **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": f"s{seq}", "tenant_id": tenant, "site_id": "s1", "occurred_at": at, "robot_id": robot_id,
        "fleet_id": "f1", "status": "MOVING", "previous_status": "IDLE", "battery": 0.5,
        "pose": {"x": 1.0, "y": 2.0, "yaw": 0.0, "node_id": None, "map_name": None}, "speed": 1.0,
        "task_id": None, "route": [{"node_id": "n2", "eta": at + 5000}], "seq": seq, "last_seen_at": at,
        "reason": "CHANGE", **overrides,
    }  # fmt: skip


def event(tenant: str, seq: int, at: int, state: str, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": f"t{seq}", "tenant_id": tenant, "site_id": "s1", "occurred_at": at, "task_id": "t1",
        "seq": seq, "kind": "TRANSITION", "state": state, "previous_state": None, "reason": None,
        "robot_id": None, "attempt": 0, "spec": None, "external_id": None, "causation_id": None, **overrides,
    }  # fmt: skip


@pytest.fixture
def tenant(redis_url: str) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:10]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"fleet:{name}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def client(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


def test_robot_status_key_site_index_and_ttl(redis_url: str, tenant: str, client: redis.Redis):
    sink = RedisSink(RedisConfig(url=redis_url, robot_ttl_s=3600))
    sink.add(status(tenant, 3, T0), "r1", T0, [], "robot.status", 0, 0)
    sink.add(status(tenant, 1, T0 + 10, robot_id="r2"), "r2", T0, [], "robot.status", 1, 0)
    sink.flush()
    assert orjson.loads(client.get(f"fleet:{tenant}:robot:r1")) == status(tenant, 3, T0)
    assert 3590 <= client.ttl(f"fleet:{tenant}:robot:r1") <= 3600
    assert client.zrange(f"fleet:{tenant}:site:s1:robots", 0, -1, withscores=True) == [
        ("r1", float(T0)),
        ("r2", float(T0 + 10)),
    ]
    assert client.ttl(f"fleet:{tenant}:site:s1:robots") > 3500


def test_robot_key_never_moves_backwards_across_flushes_and_replays(
    redis_url: str, tenant: str, client: redis.Redis
):
    sink = RedisSink(RedisConfig(url=redis_url))
    assert sink.write_records([status(tenant, 5, T0 + 5000)]) == 1
    assert sink.write_records([status(tenant, 4, T0 + 4000, status="IDLE")]) == 0  # older seq
    assert sink.write_records([status(tenant, 5, T0 + 5000)]) == 0  # replay
    offline = status(tenant, 5, T0 + 15_000, status="OFFLINE", reason="OFFLINE", last_seen_at=T0 + 5000)
    assert sink.write_records([offline]) == 1  # same seq, later event time
    assert sink.write_records([status(tenant, 5, T0 + 5000)]) == 0
    stored = orjson.loads(client.get(f"fleet:{tenant}:robot:r1"))
    assert stored["status"] == "OFFLINE" and stored["seq"] == 5
    assert client.zscore(f"fleet:{tenant}:site:s1:robots", "r1") == T0 + 5000


def test_task_view_follows_seq_only_forward(redis_url: str, tenant: str, client: redis.Redis):
    sink = RedisSink(RedisConfig(url=redis_url, task_ttl_s=24 * 3600))
    sink.write_records([event(tenant, 1, T0, "CREATED"), event(tenant, 2, T0 + 1, "QUEUED")])
    sink.write_records(
        [event(tenant, 3, T0 + 2, "ASSIGNED", robot_id="r1", reason="nearest robot", attempt=1)]
    )
    sink.write_records(
        [event(tenant, 2, T0 + 1, "QUEUED"), event(tenant, 4, T0 + 3, "EXECUTING", kind="REJECTED")]
    )
    assert orjson.loads(client.get(f"fleet:{tenant}:task:t1")) == {
        "task_id": "t1", "site_id": "s1", "state": "ASSIGNED", "robot_id": "r1", "attempt": 1, "seq": 3,
        "updated_at": T0 + 2, "reason": "nearest robot",
    }  # fmt: skip
    assert 86_000 < client.ttl(f"fleet:{tenant}:task:t1") <= 86_400
    assert client.zrange(f"fleet:{tenant}:site:s1:tasks", 0, -1, withscores=True) == [("t1", float(T0 + 2))]


def test_site_index_drops_members_older_than_the_ttl(redis_url: str, tenant: str, client: redis.Redis):
    sink = RedisSink(RedisConfig(url=redis_url, robot_ttl_s=60))
    sink.write_records([status(tenant, 1, T0, robot_id="old")])
    sink.write_records([status(tenant, 1, T0 + 61_000, robot_id="new")])
    assert client.zrange(f"fleet:{tenant}:site:s1:robots", 0, -1) == ["new"]


def test_unreachable_redis_is_backpressure_then_the_real_one_works(
    redis_url: str, tenant: str, client: redis.Redis
):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = RedisSink(RedisConfig(url=f"redis://127.0.0.1:{port}/0", retry_after_s=0.2, socket_timeout_s=0.5))
    down.setup()  # logs only
    down.add(status(tenant, 1, T0), "r1", T0, [], "robot.status", 0, 0)
    with pytest.raises(SinkBackpressureError) as info:
        down.flush()
    assert info.value.retry_after == 0.2 and not down._batches
    up = RedisSink(RedisConfig(url=redis_url))
    up.add(status(tenant, 1, T0), "r1", T0, [], "robot.status", 0, 0)
    up.flush()
    assert client.exists(f"fleet:{tenant}:robot:r1")


def test_records_at_the_limits_are_written_or_dead_lettered_and_the_sink_moves_on(
    redis_url: str, tenant: str, client: redis.Redis, dead_letters: DeadLetters
):
    """Unicode and long ids, huge and non-finite values, times far ahead are written; a record Redis
    refuses (its key holds something else) or that is no view is dead-lettered; the rest is written."""
    sink = RedisSink(RedisConfig(url=redis_url), dead_letter=dead_letters.writer)
    unicode = "робот 🤖 مرحبا 漢字"
    client.set(f"fleet:{tenant}:robot:corrupt", "not json")  # a key someone else wrote
    client.set(f"fleet:{tenant}:site:s-bad:robots", "not a sorted set")
    records = [
        ("robot.status", status(tenant, 1, T0, robot_id=unicode, battery=float("nan"), speed=float("inf"))),
        ("robot.status", status(tenant, 2, T0, robot_id="r" * 100_000)),
        ("robot.status", status(tenant, 2**62, 253_402_300_799_999, robot_id="far", last_seen_at=T0)),
        ("robot.status", status(tenant, 3, T0, robot_id="corrupt")),  # refused: the key holds no JSON view
        ("robot.status", status(tenant, 4, T0, robot_id="r-bad", site_id="s-bad")),  # refused: WRONGTYPE
        ("task.events", event(tenant, 1, T0, "CREATED", task_id=unicode, reason="x" * 1_000_000)),
        ("task.events", event(tenant, 2, T0, "QUEUED", kind="REJECTED")),  # changes no view
        ("robot.status", status(tenant, 5, T0, robot_id="r-ok")),
    ]
    for offset, (topic, record) in enumerate(records):
        sink.add(record, "k", 0, [], topic, 0, offset)
    sink.flush()
    assert sink.refused == 2
    nan_view = orjson.loads(client.get(f"fleet:{tenant}:robot:{unicode}"))
    assert nan_view["battery"] is None and nan_view["speed"] is None  # JSON has no NaN
    assert client.exists(f"fleet:{tenant}:robot:{'r' * 100_000}")
    assert orjson.loads(client.get(f"fleet:{tenant}:robot:far"))["seq"] == 2**62
    assert orjson.loads(client.get(f"fleet:{tenant}:task:{unicode}"))["reason"] == "x" * 1_000_000
    assert client.exists(f"fleet:{tenant}:robot:r-ok") and not client.exists(f"fleet:{tenant}:robot:r-bad")
    dead = dead_letters.read(2)
    reasons = {dict(d.headers())["fleet-dlq-offset"]: dict(d.headers())["fleet-dlq-error"] for d in dead}
    assert set(reasons) == {b"3", b"4"}
    assert b"Redis refused" in reasons[b"3"] and b"Expected value but found invalid token" in reasons[b"3"]
    assert b"WRONGTYPE" in reasons[b"4"]
    first = next(d for d in dead if dict(d.headers())["fleet-dlq-offset"] == b"3")
    assert dead_letters.codecs["robot.status"].decode(first.value()) == records[3][1]
    sink.write_records([status(tenant, 6, T0 + 1, robot_id="r-ok")])  # and the sink goes on
    assert orjson.loads(client.get(f"fleet:{tenant}:robot:r-ok"))["seq"] == 6


def test_a_redis_that_cannot_write_now_is_backpressure_not_a_dead_letter(redis_url: str, tenant: str):
    """Out of memory (``maxmemory`` reached, no eviction) pauses the sink; nothing is dead-lettered."""
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    before = admin.config_get("maxmemory*")
    sink = RedisSink(RedisConfig(url=redis_url, retry_after_s=0.1))
    try:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")
        sink.add(status(tenant, 1, T0), "r1", 0, [], "robot.status", 0, 0)
        with pytest.raises(SinkBackpressureError):
            sink.flush()
        assert sink.refused == 0
    finally:
        admin.config_set("maxmemory", before["maxmemory"])
        admin.config_set("maxmemory-policy", before["maxmemory-policy"])
    sink.add(status(tenant, 1, T0), "r1", 0, [], "robot.status", 0, 0)  # read again after the pause
    sink.flush()
    assert admin.exists(f"fleet:{tenant}:robot:r1")
