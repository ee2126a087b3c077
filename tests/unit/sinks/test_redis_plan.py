"""What the Redis sink writes for a batch (pure planning: no server is contacted)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from sinks.deadletters import RecordRefused
from sinks.redis import (
    RedisConfig,
    RedisSink,
    robot_key,
    site_robots_key,
    site_tasks_key,
    task_key,
    task_view,
)


def status(seq: int, at: int, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": f"s{seq}", "tenant_id": "acme", "site_id": "s1", "occurred_at": at, "robot_id": "r1",
        "fleet_id": "f1", "status": "IDLE", "previous_status": None, "battery": 0.5,
        "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": None, "map_name": None}, "speed": 0.0,
        "task_id": None, "route": [], "seq": seq, "last_seen_at": at, "reason": "CHANGE", **overrides,
    }  # fmt: skip


def event(seq: int, at: int, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": f"t{seq}", "tenant_id": "acme", "site_id": "s1", "occurred_at": at, "task_id": "t1",
        "seq": seq, "kind": "TRANSITION", "state": "QUEUED", "previous_state": "CREATED", "reason": None,
        "robot_id": None, "attempt": 0, "spec": None, "external_id": None, "causation_id": None, **overrides,
    }  # fmt: skip


def sink() -> RedisSink:
    # A client that is never used: plan() only builds the writes.
    return RedisSink(RedisConfig(robot_ttl_s=60, task_ttl_s=600), client=redis.Redis(port=1))


def test_key_names_are_the_gateway_contract():
    assert robot_key("acme", "r1") == "fleet:acme:robot:r1"
    assert site_robots_key("acme", "s1") == "fleet:acme:site:s1:robots"
    assert task_key("acme", "t1") == "fleet:acme:task:t1"
    assert site_tasks_key("acme", "s1") == "fleet:acme:site:s1:tasks"


def test_robot_status_write_carries_the_record_json_ttl_and_score():
    [write] = sink().plan([status(3, 5_000_000)])
    key, zkey, payload, seq, at, ttl, member, score, trim, field = write
    assert (key, zkey, seq, at, ttl, member, score, trim, field) == (
        "fleet:acme:robot:r1", "fleet:acme:site:s1:robots", 3, 5_000_000, 60, "r1", 5_000_000, 4_940_000,
        "occurred_at",
    )  # fmt: skip
    assert orjson.loads(payload) == status(3, 5_000_000)


def test_task_view_is_exactly_the_specified_fields():
    view = task_view(event(4, 9_000, robot_id="r1", attempt=1, reason="assigned"))
    assert view == {
        "task_id": "t1", "site_id": "s1", "state": "QUEUED", "robot_id": "r1", "attempt": 1, "seq": 4,
        "updated_at": 9_000, "reason": "assigned",
    }  # fmt: skip
    [write] = sink().plan([event(4, 9_000, robot_id="r1", attempt=1, reason="assigned")])
    assert orjson.loads(write[2]) == view and write[-1] == "updated_at" and write[5] == 600


def test_only_the_newest_record_per_key_is_written_per_batch():
    writes = sink().plan(
        [status(5, 100), status(7, 50), status(6, 300), status(7, 40), event(2, 1), event(1, 2)]
    )
    by_key = {w[0]: (w[3], w[4]) for w in writes}
    assert by_key == {"fleet:acme:robot:r1": (7, 50), "fleet:acme:task:t1": (2, 1)}


def test_offline_status_with_the_same_seq_but_later_time_wins():
    writes = sink().plan([status(7, 1_000), status(7, 11_000, status="OFFLINE", reason="OFFLINE")])
    assert orjson.loads(writes[0][2])["status"] == "OFFLINE"


def test_task_refusals_do_not_touch_the_views():
    assert sink().plan([event(3, 1, kind="REJECTED"), event(3, 1, kind="DUPLICATE"), None]) == []


def test_a_record_that_is_no_view_is_refused_naming_why():
    with pytest.raises(RecordRefused, match="neither a RobotStatus nor a TaskEvent"):
        sink().plan([{"x": 1}])
    with pytest.raises(RecordRefused, match="KeyError: 'last_seen_at'"):
        sink().plan([{k: v for k, v in status(1, 1).items() if k != "last_seen_at"}])


def test_a_rebuilt_view_keeps_the_ttl_it_has_left():
    s = sink()  # robot TTL 60 s, task TTL 600 s
    now = 10_000_000
    assert s.plan_one(status(3, now - 15_000), now)[5] == 45  # type: ignore[index]
    assert s.plan_one(status(3, now - 61_000), now) is None  # it would have expired
    assert s.plan_one(event(2, now - 100_000), now)[5] == 500  # type: ignore[index]
