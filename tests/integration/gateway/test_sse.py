"""SSE at /v1/stream against the real broker: filters, tenancy, resume (no miss, no dup), caps."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from schemas.models import Alert, AlertKind, Pose, RobotState, RobotStatus, StatusReason
from tests.integration.gateway.sse_client import Stream

pytestmark = pytest.mark.timeout(120)


def status(tenant: str, robot: str, seq: int, site: str = "s1") -> RobotStatus:
    return RobotStatus(
        tenant_id=tenant,
        site_id=site,
        robot_id=robot,
        fleet_id="f1",
        status=RobotState.MOVING,
        battery=0.9,
        pose=Pose(x=float(seq), y=0.0),
        speed=1.0,
        seq=seq,
        last_seen_at=int(time.time() * 1000),
        reason=StatusReason.CHANGE,
    )


async def produce(kafka, *records: RobotStatus) -> None:
    for r in records:
        await asyncio.to_thread(kafka.produce, "robot.status", r.robot_id, r)


async def test_stream_filters_by_tenant_site_robot_and_type(gateway, token, new_tenant, kafka) -> None:
    a, b = new_tenant(), new_tenant()
    async with (
        Stream(gateway.url, token=token(a, "viewer"), params={"site_id": "s1"}) as site_s1,
        Stream(gateway.url, token=token(a, "viewer"), params={"robot_id": "r2"}, via_query=True) as robot_r2,
        Stream(gateway.url, token=token(a, "viewer"), params={"types": "alert"}) as alerts_only,
        Stream(gateway.url, token=token(b, "viewer")) as other_tenant,
    ):
        assert site_s1.status == robot_r2.status == alerts_only.status == other_tenant.status == 200
        await produce(kafka, status(a, "r1", 1, "s1"), status(a, "r2", 1, "s2"), status(b, "r1", 1, "s1"))
        alert = Alert(
            tenant_id=a,
            site_id="s1",
            alert_id="al1",
            kind=AlertKind.BATTERY_LOW,
            subject_id="r2",
            message="low",
        )
        await asyncio.to_thread(kafka.produce, "alerts", "r2", alert)

        # The hub keeps the order of each partition, not across topics: robot.status and alerts
        # records produced a moment apart may arrive in one fetch, in either order.
        got = await site_s1.collect(2)
        assert sorted((f.event, f.json.get("robot_id") or f.json.get("subject_id")) for f in got) == [
            ("alert", "r2"),
            ("robot.status", "r1"),
        ]
        assert all(f.json["tenant_id"] == a for f in got)
        got = await robot_r2.collect(2)
        assert sorted((f.event, f.json["site_id"]) for f in got) == [("alert", "s1"), ("robot.status", "s2")]
        (only,) = await alerts_only.collect(1)
        assert only.event == "alert" and only.json["message"] == "low"
        (theirs,) = await other_tenant.collect(1)
        assert theirs.json["tenant_id"] == b
        assert await other_tenant.quiet(1.0) == []
        assert await alerts_only.quiet(0.5) == []


async def test_resume_misses_nothing_and_repeats_nothing(gateway, token, new_tenant, kafka) -> None:
    tenant = new_tenant()
    tok = token(tenant, "viewer")
    robots = [f"r{i}" for i in range(6)]  # spread over both partitions
    async with Stream(gateway.url, token=tok) as s:
        await produce(kafka, *(status(tenant, r, 1) for r in robots))
        first = await s.collect(6)
        resume_at = first[3].id  # pretend the client saw only four of them before the connection broke
    seen_before = [(f.json["robot_id"], f.json["seq"]) for f in first[:4]]
    await produce(kafka, *(status(tenant, r, 2) for r in robots))
    async with Stream(gateway.url, token=tok, last_event_id=resume_at) as s:
        replay = await s.collect(8)
        assert await s.quiet(1.0) == []
        await produce(kafka, status(tenant, "r0", 3))
        (live,) = await s.collect(1)
    seen_after = [(f.json["robot_id"], f.json["seq"]) for f in replay]
    everything = {(r, q) for r in robots for q in (1, 2)}
    assert not set(seen_before) & set(seen_after), "an event was delivered twice"
    assert set(seen_before) | set(seen_after) == everything, "an event was missed"
    assert (live.json["robot_id"], live.json["seq"]) == ("r0", 3)
    # Per robot (= per partition key) the order is kept.
    for r in robots:
        assert [q for rr, q in seen_before + seen_after if rr == r] == [1, 2]


async def test_resume_on_another_gateway_instance(gateway, gateway_factory, token, new_tenant, kafka) -> None:
    tenant = new_tenant()
    tok = token(tenant, "viewer")
    async with Stream(gateway.url, token=tok) as s:
        await produce(kafka, status(tenant, "r1", 1), status(tenant, "r2", 1))
        await s.collect(2)
        last = s.last_id
    await produce(kafka, status(tenant, "r1", 2), status(tenant, "r3", 1))
    other = await asyncio.to_thread(
        gateway_factory
    )  # a restarted / second instance: ring pre-filled from Kafka
    async with Stream(other.url, token=tok, last_event_id=last) as s:
        got = await s.collect(2)
        assert await s.quiet(0.5) == []
    assert sorted((f.json["robot_id"], f.json["seq"]) for f in got) == [("r1", 2), ("r3", 1)]


async def test_heartbeat_moves_the_position_of_a_quiet_client(gateway, token, new_tenant, kafka) -> None:
    tenant = new_tenant()
    tok = token(tenant, "viewer")
    async with Stream(gateway.url, token=tok, params={"robot_id": "quiet"}) as s:
        await produce(kafka, status(tenant, "busy", 1))
        heartbeat_id = None
        deadline = asyncio.get_running_loop().time() + 5
        while heartbeat_id is None and asyncio.get_running_loop().time() < deadline:
            frame = await s.next_frame(3)
            assert frame.event is None, "the filtered-out event must not reach the client"
            if "heartbeat" in frame.comments and frame.id:
                heartbeat_id = frame.id
        assert heartbeat_id
    await produce(kafka, status(tenant, "quiet", 7))
    async with Stream(gateway.url, token=tok, params={"robot_id": "quiet"}, last_event_id=heartbeat_id) as s:
        (frame,) = await s.collect(1)
        assert frame.json["seq"] == 7


async def test_resume_older_than_the_ring_says_reset(gateway_factory, token, new_tenant, kafka) -> None:
    gw = await asyncio.to_thread(gateway_factory, sse_ring_size=2)
    tenant = new_tenant()
    tok = token(tenant, "viewer")
    async with Stream(gw.url, token=tok) as s:
        await produce(kafka, status(tenant, "r1", 1))
        await s.collect(1)
        last = s.last_id
    await produce(kafka, *(status(tenant, "r1", q) for q in range(2, 8)))  # one key: one partition
    async with Stream(gw.url, token=tok, last_event_id=last) as s:
        reset = await s.next_event()
        assert reset.event == "reset" and "reload" in reset.json["reason"]
        kept = await s.collect(2)
        assert [f.json["seq"] for f in kept] == [6, 7]


async def test_stream_auth_and_caps(gateway_factory, token, new_tenant) -> None:
    gw = await asyncio.to_thread(gateway_factory, sse_max_clients_per_tenant=2)
    tenant = new_tenant()
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{gw.url}/v1/stream")
        assert r.status_code == 401
        r = await client.get(f"{gw.url}/v1/stream", params={"access_token": "nope"})
        assert r.status_code == 401
        r = await client.get(
            f"{gw.url}/v1/stream",
            params={"types": "robot.status,bogus"},
            headers={"Authorization": f"Bearer {token(tenant, 'viewer')}"},
        )
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "types"]
        r = await client.get(
            f"{gw.url}/v1/stream",
            headers={"Authorization": f"Bearer {token(tenant, 'viewer')}", "Last-Event-ID": "v0-garbage"},
        )
        assert r.status_code == 422
    tok = token(tenant, "viewer")
    async with Stream(gw.url, token=tok) as one, Stream(gw.url, token=tok, via_query=True) as two:
        assert one.status == two.status == 200
        async with Stream(gw.url, token=tok) as three:
            assert three.status == 429 and "retry-after" in three.response.headers
        async with Stream(gw.url, token=token(new_tenant(), "viewer")) as other_tenant:
            assert other_tenant.status == 200
        for _ in range(20):  # the server notices the closed stream a moment later
            metrics = (await asyncio.to_thread(httpx.get, f"{gw.url}/metrics")).text
            if "fleet_gateway_sse_clients 2.0" in metrics:
                break
            await asyncio.sleep(0.1)
        assert "fleet_gateway_sse_clients 2.0" in metrics
