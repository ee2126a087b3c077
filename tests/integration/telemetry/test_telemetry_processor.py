"""End to end: telemetry -> Kafka -> `fleet run telemetry` (+ `fleet run timers`) -> status, alerts,
aggregates, timers and exactly the injected bad records in dlq.telemetry."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

from schemas.ids import now_ms

from .conftest import Stack

TENANT = "acme"
SITE = "s1"


def site_map() -> dict[str, Any]:
    nodes = [(0, 0), (50, 0), (50, 30), (0, 30), (25, 15)]
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": SITE, "occurred_at": now_ms(),
        "version": 1, "name": "hall", "nodes": [{"id": f"n{i}", "x": float(x), "y": float(y), "kind": "WAYPOINT",
        "name": None} for i, (x, y) in enumerate(nodes)], "lanes": [], "zones": [], "chargers": [],
    }  # fmt: skip


def registration(robot_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": SITE, "occurred_at": now_ms(),
        "robot_id": robot_id, "fleet_id": "f1", "name": robot_id.upper(), "model": None, "capabilities": [],
        "max_payload_kg": None, "managed_by": "FLEETSTREAM", "active": True,
    }  # fmt: skip


def sample(robot_id: str, seq: int, at: int, **overrides: Any) -> dict[str, Any]:
    pose = {"x": 10.0 + seq, "y": 5.0, "yaw": 0.0, "node_id": None, "map_name": "hall"}
    pose.update(overrides.pop("pose", {}))
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": SITE, "occurred_at": at,
        "robot_id": robot_id, "fleet_id": "f1", "seq": seq, "pose": pose, "battery": 0.9, "speed": 0.0,
        "mode": "IDLE", "error_code": None, "task_id": None, "task_phase": "NONE", "route": [], **overrides,
    }  # fmt: skip


def of(records: list[dict[str, Any]], robot_id: str, field: str = "robot_id") -> list[dict[str, Any]]:
    return [r for r in records if r[field] == robot_id]


def test_telemetry_processor_end_to_end(stack: Stack):
    stack.produce("site.maps", SITE, site_map())
    for robot in ("r1", "r2", "r3"):
        stack.produce("robot.registry", robot, registration(robot))
    # r3 reports history (event time minutes ago) before the processor starts: aggregates and heartbeats.
    base = (now_ms() - 10 * 60_000) // 60_000 * 60_000
    for seq in range(1, 15):  # one sample every 10 s of event time, 0 .. 130 s
        stack.produce(
            "robot.telemetry", "r3", sample("r3", seq, base + (seq - 1) * 10_000, battery=0.5 + seq / 100)
        )
    stack.flush()

    stack.start("telemetry", offline_timeout_s=3, heartbeat_s=30, commit_interval_s=0.2)
    stack.start("timers")
    # The site map reaches each registered robot through the processor's site directory (one inbox round
    # trip after its registration); from then on its poses are checked.
    stack.wait_for_bounds(["r1", "r2"])

    # r1 and r2 report live; bad records are interleaved.
    modes = ["IDLE", "IDLE", "MOVING", "MOVING", "MOVING", "MOVING"]
    batteries = [0.5, 0.3, 0.15, 0.1, 0.12, 0.11]
    for seq, (mode, battery) in enumerate(zip(modes, batteries, strict=True), start=1):
        now = now_ms()
        stack.produce(
            "robot.telemetry",
            "r1",
            sample("r1", seq, now, mode=mode, battery=battery, speed=1.0 * (mode == "MOVING")),
        )
        stack.produce("robot.telemetry", "r2", sample("r2", seq, now))
        if seq == 3:
            stack.produce("robot.telemetry", "r1", sample("r1", 3, now, mode="ERROR"))  # duplicate seq
            stack.produce("robot.telemetry", "r1", sample("r1", 2, now, mode="ERROR"))  # stale seq
            stack.produce("robot.telemetry", "ghost", sample("ghost", 1, now))  # unknown robot
            stack.produce("robot.telemetry", "r2", sample("r2", 99, now, battery=1.5))
            stack.produce("robot.telemetry", "r2", sample("r2", 98, now, pose={"x": 500.0}))
            stack.produce("robot.telemetry", "r2", sample("r2", 97, now + 60_000))
            stack.produce("robot.telemetry", "r2", b"garbage")  # not a framed record
        stack.flush()
        time.sleep(0.3)

    def r1_offline(statuses: list[dict[str, Any]]) -> bool:
        return any(s["robot_id"] == "r1" and s["status"] == "OFFLINE" for s in statuses)

    statuses = stack.read("robot.status", until=r1_offline, timeout=45)
    assert r1_offline(statuses), stack.log("telemetry")[-3000:]
    # r1 comes back once, rebooted (its seq begins again), then falls silent again.
    stack.produce("robot.telemetry", "r1", sample("r1", 1, now_ms(), mode="IDLE", battery=0.3))
    stack.flush()

    def done(statuses: list[dict[str, Any]]) -> bool:
        r1 = of(statuses, "r1")
        return bool(r1) and r1[-1]["seq"] == 8 and r1[-1]["status"] == "OFFLINE"

    statuses = stack.read("robot.status", until=done, timeout=30)
    assert done(statuses), stack.log("telemetry")[-3000:]

    r1 = [(s["status"], s["previous_status"], s["reason"], s["seq"]) for s in of(statuses, "r1")]
    assert r1 == [
        ("IDLE", None, "CHANGE", 1),
        ("MOVING", "IDLE", "CHANGE", 3),
        ("OFFLINE", "MOVING", "OFFLINE", 6),
        ("IDLE", "OFFLINE", "CHANGE", 8),  # seq 1 after the reboot, counted on from 6
        ("OFFLINE", "IDLE", "OFFLINE", 8),
    ]
    assert [(s["status"], s["reason"]) for s in of(statuses, "r2")] == [
        ("IDLE", "CHANGE"),
        ("OFFLINE", "OFFLINE"),
    ]
    r3 = of(statuses, "r3")
    assert [(s["reason"], s["seq"]) for s in r3] == [
        ("CHANGE", 1), ("HEARTBEAT", 4), ("HEARTBEAT", 7), ("HEARTBEAT", 10), ("HEARTBEAT", 13), ("OFFLINE", 14),
    ]  # fmt: skip
    assert len({s["event_id"] for s in statuses}) == len(statuses)

    alerts = stack.read("alerts", until=lambda a: len(a) >= 7, timeout=20)
    assert Counter((a["subject_id"], a["kind"]) for a in alerts) == Counter(
        {
            ("r1", "BATTERY_LOW"): 1,
            ("r1", "ROBOT_OFFLINE"): 2,
            ("r1", "ROBOT_ONLINE"): 1,
            ("r1", "BATTERY_OK"): 1,  # back at 0.3 >= 0.2 + 0.05
            ("r2", "ROBOT_OFFLINE"): 1,
            ("r3", "ROBOT_OFFLINE"): 1,
        }
    )

    aggregates = of(stack.read("robot.telemetry.1m", until=lambda a: len(a) >= 3, timeout=20), "r3")
    assert [(a["window_start"] - base, a["count"]) for a in aggregates] == [(0, 6), (60_000, 6), (120_000, 2)]
    first = aggregates[0]
    assert first["battery_min"] == 0.51 and first["battery_max"] == 0.56 and first["distance_m"] == 5.0

    accepted = stack.read("robot.telemetry.accepted", until=lambda a: len(a) >= 27, timeout=20)
    assert Counter(a["robot_id"] for a in accepted) == {"r1": 7, "r2": 6, "r3": 14}  # neither bad nor dup
    assert len({a["event_id"] for a in accepted}) == 27

    timers = stack.read("timers", until=lambda t: len(t) >= 4, timeout=10)
    assert {t["timer_id"] for t in timers} == {f"telemetry:offline:{TENANT}:{r}" for r in ("r1", "r2", "r3")}
    assert all(t["owner"] == "telemetry" for t in timers)

    dead = stack.read("dlq.telemetry", until=lambda d: len(d) >= 5, timeout=20, raw=True)
    reasons = sorted(dict(m.headers())["fleet-dlq-error"].decode() for m in dead)
    assert len(reasons) == 5, reasons
    assert reasons[0].startswith("battery 1.5 outside 0..1")
    assert reasons[1] == "not a Confluent-framed Avro message: magic byte 103, expected 0"
    assert reasons[2].startswith("occurred_at ") and "in the future" in reasons[2]
    assert reasons[3].startswith("pose (500, 5) off the map of site 's1' v1")
    assert reasons[4] == "unknown robot 'ghost': not registered on robot.registry"
    for message in dead:
        headers = dict(message.headers())
        assert headers["fleet-dlq-topic"].decode() == stack.settings.topic("robot.telemetry")
        assert headers["fleet-dlq-processor"] == b"telemetry"
        assert message.value()  # the original bytes
