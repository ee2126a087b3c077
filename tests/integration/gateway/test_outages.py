"""A dependency that is down (issue 15, item 7): this stack's Postgres, Redis and InfluxDB are stopped and
started again with deploy/local/stack.sh (as tests/integration/sinks/test_postgres_outage.py does).

While one is down, every call that needs it answers 503 with ``Retry-After`` and the dependency named,
never 500; every read that has a second source uses it (a robot or a task from Redis while Postgres is
down, from Postgres while Redis is down); writes, which are produces, go on. Once it is back, the same
calls answer 200 again without restarting the gateway.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.integration.gateway.conftest import ts

pytestmark = pytest.mark.timeout(600)

STACK = Path(__file__).resolve().parents[3] / "deploy" / "local" / "stack.sh"
RETRY_AFTER = 7


def _stack(action: str, service: str) -> None:
    subprocess.run([str(STACK), action, service], check=True, capture_output=True, timeout=180)


@contextlib.contextmanager
def stopped(service: str) -> Iterator[None]:
    """``service`` of this stack is down inside the block, and up again after it, whatever happens."""
    _stack("down", service)
    try:
        yield
    finally:
        _stack("up", service)


def eventually(call: Callable[[], httpx.Response], status: int = 200, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        resp = call()
        if resp.status_code == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.5)


def assert_unavailable(resp: httpx.Response, dependency: str) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers["Retry-After"] == str(RETRY_AFTER)
    body = resp.json()
    assert body["error"] == "unavailable" and body["dependency"] == dependency, body
    assert dependency in body["message"] and body["detail"][0]["loc"] == ["dependency", dependency]


@pytest.fixture
def seeded(gateway_factory, new_tenant, auth, pg, rds) -> dict[str, Any]:
    """A gateway quick to give up on Postgres, and one tenant's robots and tasks in Postgres and Redis."""
    gw = gateway_factory(postgres_timeout_seconds=1.0, unavailable_retry_after_seconds=RETRY_AFTER)
    tenant = new_tenant()
    now = int(time.time() * 1000)
    for robot_id in ("r-hot", "r-cold"):
        pg.insert(
            "robots",
            {
                "tenant_id": tenant,
                "robot_id": robot_id,
                "site_id": "s1",
                "fleet_id": "f1",
                "name": robot_id,
                "status": "IDLE",
                "battery": 0.5,
                "updated_at": ts(now - 60_000),
            },
        )
    status = {
        "tenant_id": tenant,
        "robot_id": "r-hot",
        "site_id": "s1",
        "fleet_id": "f1",
        "status": "MOVING",
        "battery": 0.8,
        "seq": 3,
        "occurred_at": now,
        "last_seen_at": now,
    }
    rds.set(f"fleet:{tenant}:robot:r-hot", orjson.dumps(status), ex=600)
    rds.zadd(f"fleet:{tenant}:site:s1:robots", {"r-hot": now})
    rds.expire(f"fleet:{tenant}:site:s1:robots", 600)
    pg.insert(
        "tasks",
        {
            "tenant_id": tenant,
            "task_id": "t1",
            "site_id": "s1",
            "state": "QUEUED",
            "category": "delivery",
            "priority": 7,
            "attempt": 0,
            "seq": 2,
            "created_at": ts(now - 5000),
            "updated_at": ts(now - 4000),
        },
    )
    view = {
        "task_id": "t1",
        "site_id": "s1",
        "state": "EXECUTING",
        "robot_id": "r-hot",
        "attempt": 1,
        "seq": 4,
        "updated_at": now,
        "reason": None,
    }
    rds.set(f"fleet:{tenant}:task:t1", orjson.dumps(view), ex=600)
    return {"gw": gw, "url": gw.url, "viewer": auth(tenant, "viewer"), "operator": auth(tenant), "now": now}


def test_postgres_down_is_a_503_and_robots_and_tasks_are_read_from_redis(seeded) -> None:
    url, viewer = seeded["url"], seeded["viewer"]
    assert httpx.get(f"{url}/v1/tasks", headers=viewer).status_code == 200
    with stopped("postgres"):
        for path in ("/v1/tasks", "/v1/robots", "/v1/sites", "/v1/decisions", "/v1/alerts", "/v1/conflicts"):
            assert_unavailable(httpx.get(f"{url}{path}", headers=viewer, timeout=30), "postgres")
        assert_unavailable(httpx.get(f"{url}/v1/sites/s1/map", headers=viewer, timeout=30), "postgres")
        # Reads with a second source use it.
        robot = httpx.get(f"{url}/v1/robots/r-hot", headers=viewer, timeout=30)
        assert robot.status_code == 200, robot.text
        assert robot.json()["source"] == "redis" and robot.json()["status"] == "MOVING"
        live = httpx.get(f"{url}/v1/robots", params={"site_id": "s1"}, headers=viewer, timeout=30)
        assert live.status_code == 200 and [r["robot_id"] for r in live.json()["items"]] == ["r-hot"]
        task = httpx.get(f"{url}/v1/tasks/t1", headers=viewer, timeout=30)
        assert task.status_code == 200, task.text
        assert task.json()["state"] == "EXECUTING" and task.json()["source"] == "redis"
        # Only Postgres could say whether these exist.
        assert_unavailable(httpx.get(f"{url}/v1/robots/r-cold", headers=viewer, timeout=30), "postgres")
        assert_unavailable(httpx.get(f"{url}/v1/tasks/t-none", headers=viewer, timeout=30), "postgres")
        # A write is a produce: it needs Kafka, not Postgres.
        body = {"site_id": "s1", "spec": {"category": "delivery"}}
        created = httpx.post(f"{url}/v1/tasks", json=body, headers=seeded["operator"], timeout=30)
        assert created.status_code == 202, created.text
        ready = httpx.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["postgres"]["ok"] is False
    back = eventually(lambda: httpx.get(f"{url}/v1/tasks", headers=viewer, timeout=30))
    assert back.status_code == 200, back.text
    assert [t["task_id"] for t in back.json()["items"]] == ["t1"]
    cold = httpx.get(f"{url}/v1/robots/r-cold", headers=viewer)
    assert cold.status_code == 200 and cold.json()["source"] == "postgres"


def test_redis_down_reads_fall_back_to_postgres(seeded) -> None:
    url, viewer = seeded["url"], seeded["viewer"]
    assert httpx.get(f"{url}/v1/robots/r-hot", headers=viewer).json()["source"] == "redis"
    with stopped("redis"):
        robot = httpx.get(f"{url}/v1/robots/r-hot", headers=viewer, timeout=30)
        assert robot.status_code == 200, robot.text
        assert robot.json()["source"] == "postgres" and robot.json()["status"] == "IDLE"
        listed = httpx.get(f"{url}/v1/robots", params={"site_id": "s1"}, headers=viewer, timeout=30)
        assert listed.status_code == 200, listed.text
        assert sorted(r["robot_id"] for r in listed.json()["items"]) == ["r-cold", "r-hot"]
        assert {r["source"] for r in listed.json()["items"]} == {"postgres"}
        task = httpx.get(f"{url}/v1/tasks/t1", headers=viewer, timeout=30)
        assert task.status_code == 200, task.text
        assert task.json()["state"] == "QUEUED" and task.json()["category"] == "delivery"
        assert task.json()["source"] == "postgres"
        assert httpx.get(f"{url}/v1/robots/r-none", headers=viewer, timeout=30).status_code == 404
        # The rate limiter lets requests through while Redis is down (and /readyz says Redis is down).
        body = {"site_id": "s1", "spec": {"category": "delivery"}}
        assert httpx.post(f"{url}/v1/tasks", json=body, headers=seeded["operator"]).status_code == 202
        ready = httpx.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 503 and ready.json()["checks"]["redis"]["ok"] is False
    ready = eventually(lambda: httpx.get(f"{url}/readyz", timeout=30))
    assert ready.status_code == 200, ready.text
    assert httpx.get(f"{url}/v1/robots/r-hot", headers=viewer).status_code == 200


def test_influxdb_down_is_a_503_naming_it(seeded) -> None:
    url, viewer = seeded["url"], seeded["viewer"]
    history = f"{url}/v1/robots/r-hot/telemetry"
    assert httpx.get(history, headers=viewer).status_code == 200
    with stopped("influxdb"):
        assert_unavailable(httpx.get(history, headers=viewer, timeout=30), "influxdb")
        assert_unavailable(
            httpx.get(history, params={"every": "raw"}, headers=viewer, timeout=30), "influxdb"
        )
    back = eventually(lambda: httpx.get(history, headers=viewer, timeout=30))
    assert back.status_code == 200 and back.json()["points"] == []


def test_kafka_down_is_a_503_for_writes_while_reads_go_on(gateway_factory, new_tenant, auth, pg) -> None:
    gw = gateway_factory(producer_request_timeout_ms=2000, unavailable_retry_after_seconds=RETRY_AFTER)
    tenant = new_tenant()
    operator = auth(tenant)
    body = {"site_id": "s1", "spec": {"category": "delivery"}}
    assert httpx.post(f"{gw.url}/v1/tasks", json=body, headers=operator).status_code == 202
    with stopped("kafka"):
        assert_unavailable(httpx.post(f"{gw.url}/v1/tasks", json=body, headers=operator, timeout=60), "kafka")
        robot = {"robot_id": "r1", "site_id": "s1", "fleet_id": "f1", "name": "r1"}
        admin = auth(tenant, "admin")
        assert_unavailable(httpx.post(f"{gw.url}/v1/robots", json=robot, headers=admin, timeout=60), "kafka")
        # Reads need no broker.
        listed = httpx.get(f"{gw.url}/v1/tasks", headers=auth(tenant, "viewer"), timeout=30)
        assert listed.status_code == 200, listed.text
    back = eventually(
        lambda: httpx.post(f"{gw.url}/v1/tasks", json=body, headers=operator, timeout=60), 202, 120
    )
    assert back.status_code == 202, back.text
