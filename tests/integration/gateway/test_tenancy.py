"""Tenant isolation matrix: tenant B can neither see nor change tenant A's robots, tasks, maps, schedules,
decisions, conflicts, alerts or streams, whatever ids it guesses. The tenant comes from the token only."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from schemas.models import Pose, RobotState, RobotStatus, StatusReason
from tests.integration.gateway.conftest import ts
from tests.integration.gateway.sse_client import Stream

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def tenant_a_world(new_tenant, pg, rds, gateway, auth):
    """Tenant A's data in every read store, and a schedule of A's."""
    a = new_tenant()
    now = int(time.time() * 1000)
    rds.set(f"fleet:{a}:robot:ra", orjson.dumps({"robot_id": "ra", "site_id": "sa", "status": "IDLE"}), ex=60)
    rds.zadd(f"fleet:{a}:site:sa:robots", {"ra": now})
    rds.set(f"fleet:{a}:task:ta", orjson.dumps({"task_id": "ta", "site_id": "sa", "state": "QUEUED"}), ex=60)
    pg.insert("robots", {"tenant_id": a, "robot_id": "ra", "site_id": "sa", "updated_at": ts(now)})
    pg.insert(
        "tasks", {"tenant_id": a, "task_id": "ta", "site_id": "sa", "state": "QUEUED", "updated_at": ts(now)}
    )
    pg.insert(
        "site_maps",
        {
            "tenant_id": a,
            "site_id": "sa",
            "version": 1,
            "name": "A",
            "map": {"version": 1, "name": "A", "nodes": [{"id": "n", "x": 0, "y": 0}], "lanes": []},
            "occurred_at": ts(now),
        },
    )
    pg.insert("sites", {"tenant_id": a, "site_id": "sa", "name": "A", "updated_at": ts(now)})
    pg.insert(
        "decisions",
        {
            "tenant_id": a,
            "decision_id": f"{a}-d",
            "site_id": "sa",
            "kind": "ASSIGN",
            "robot_id": "ra",
            "occurred_at": ts(now),
        },
    )
    pg.insert(
        "conflicts",
        {
            "tenant_id": a,
            "conflict_id": f"{a}-c",
            "site_id": "sa",
            "kind": "EDGE",
            "robot_ids": ["ra"],
            "occurred_at": ts(now),
        },
    )
    pg.insert(
        "alerts",
        {
            "tenant_id": a,
            "alert_id": f"{a}-a",
            "site_id": "sa",
            "kind": "ROBOT_OFFLINE",
            "subject_id": "ra",
            "message": "m",
            "occurred_at": ts(now),
        },
    )
    schedule = httpx.post(
        f"{gateway.url}/v1/schedules",
        headers=auth(a),
        json={"site_id": "sa", "cron": "0 * * * *", "template": {"category": "patrol"}},
    ).json()["id"]
    return a, schedule


READS = [
    "/v1/robots/ra",
    "/v1/tasks/ta",
    "/v1/sites/sa/map",
]
LISTS = [
    "/v1/robots?site_id=sa",
    "/v1/robots",
    "/v1/tasks",
    "/v1/tasks?site_id=sa",
    "/v1/sites",
    "/v1/decisions",
    "/v1/conflicts",
    "/v1/alerts",
    "/v1/schedules",
]


def test_reads_do_not_cross_tenants(gateway, auth, new_tenant, tenant_a_world) -> None:
    a, _ = tenant_a_world
    b = new_tenant()
    for path in READS:
        assert httpx.get(f"{gateway.url}{path}", headers=auth(a, "viewer")).status_code == 200, path
        r = httpx.get(f"{gateway.url}{path}", headers=auth(b, "admin"))
        assert r.status_code == 404, (path, r.text)
    for path in LISTS:
        mine = httpx.get(f"{gateway.url}{path}", headers=auth(a, "viewer")).json()["items"]
        theirs = httpx.get(f"{gateway.url}{path}", headers=auth(b, "admin")).json()["items"]
        assert len(mine) >= 1 and theirs == [], path


def test_writes_do_not_cross_tenants(gateway, auth, new_tenant, tenant_a_world, kafka) -> None:
    a, schedule = tenant_a_world
    b = new_tenant()
    assert (
        httpx.post(f"{gateway.url}/v1/tasks/ta/cancel", json={}, headers=auth(b, "admin")).status_code == 404
    )
    assert (
        httpx.post(f"{gateway.url}/v1/schedules/{schedule}/disable", headers=auth(b, "admin")).status_code
        == 404
    )
    # A tenant id in the body is not a field of any request: it cannot be smuggled in.
    r = httpx.post(
        f"{gateway.url}/v1/tasks",
        headers=auth(b),
        json={"site_id": "sa", "tenant_id": a, "spec": {"category": "x"}},
    )
    assert r.status_code == 422 and ["body", "tenant_id"] in [d["loc"] for d in r.json()["detail"]]
    # Whatever B writes is stamped with B's tenant.
    r = httpx.put(
        f"{gateway.url}/v1/sites/sa/map",
        headers=auth(b, "admin"),
        json={"version": 9, "name": "B", "nodes": [{"id": "n", "x": 0, "y": 0}]},
    )
    assert r.status_code == 202
    (written,) = kafka.read(
        "site.maps", lambda m: m["name"] == "B" and m["version"] == 9 and m["tenant_id"] in (a, b)
    )
    assert written["tenant_id"] == b
    assert (
        kafka.read("task.commands", lambda c: c["tenant_id"] == a and c["command"] == "CANCEL", timeout=2)
        == []
    )
    still = httpx.get(f"{gateway.url}/v1/schedules", headers=auth(a, "viewer")).json()["items"]
    assert [s["enabled"] for s in still] == [True]


async def test_streams_do_not_cross_tenants(gateway, token, new_tenant, kafka) -> None:
    import asyncio

    a, b = new_tenant(), new_tenant()
    record = RobotStatus(
        tenant_id=a,
        site_id="sa",
        robot_id="ra",
        fleet_id="f",
        status=RobotState.IDLE,
        battery=1.0,
        pose=Pose(x=0, y=0),
        speed=0.0,
        seq=1,
        last_seen_at=int(time.time() * 1000),
        reason=StatusReason.CHANGE,
    )
    async with (
        Stream(gateway.url, token=token(a, "viewer")) as sa,
        Stream(gateway.url, token=token(b, "admin"), params={"site_id": "sa", "robot_id": "ra"}) as sb,
    ):
        await asyncio.to_thread(kafka.produce, "robot.status", "ra", record)
        (mine,) = await sa.collect(1)
        assert mine.json["tenant_id"] == a
        assert await sb.quiet(1.5) == []
        # B resuming from A's position still only sees B's events.
        async with Stream(gateway.url, token=token(b, "admin"), last_event_id=mine.id) as sb2:
            assert await sb2.quiet(1.0) == []
