"""REST API against the real stack: produces land in Kafka, reads come from Redis/Postgres/InfluxDB."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from gateway.routers.tasks import task_id_for
from tests.integration.gateway.conftest import ts

pytestmark = pytest.mark.timeout(120)

SPEC = {
    "site_id": "s1",
    "spec": {"category": "delivery", "priority": 7, "pickup_node": "a", "dropoff_node": "b"},
}


def test_create_task_is_idempotent_and_produces_a_command(gateway, auth, new_tenant, kafka) -> None:
    tenant = new_tenant()
    headers = {**auth(tenant), "Idempotency-Key": "order-42"}
    first = httpx.post(f"{gateway.url}/v1/tasks", json=SPEC, headers=headers)
    retry = httpx.post(f"{gateway.url}/v1/tasks", json=SPEC, headers=headers)
    other = httpx.post(
        f"{gateway.url}/v1/tasks", json=SPEC, headers={**auth(tenant), "Idempotency-Key": "order-43"}
    )
    assert first.status_code == retry.status_code == other.status_code == 202
    task_id = first.json()["task_id"]
    assert retry.json()["task_id"] == task_id == task_id_for(tenant, "order-42")
    assert other.json()["task_id"] != task_id
    commands = kafka.read("task.commands", lambda r: r["tenant_id"] == tenant, want=3)
    assert len(commands) == 3
    mine = [c for c in commands if c["task_id"] == task_id]
    assert len(mine) == 2 and all(c["_key"] == task_id for c in mine)
    assert mine[0]["command"] == "CREATE" and mine[0]["idempotency_key"] == "order-42"
    assert mine[0]["spec"]["priority"] == 7 and mine[0]["spec"]["pickup_node"] == "a"
    assert mine[0]["requested_by"] == "dev" and mine[0]["site_id"] == "s1"


def test_same_key_in_two_tenants_gives_two_tasks(gateway, auth, new_tenant) -> None:
    a, b = new_tenant(), new_tenant()
    ids = {
        httpx.post(
            f"{gateway.url}/v1/tasks", json=SPEC, headers={**auth(t), "Idempotency-Key": "same"}
        ).json()["task_id"]
        for t in (a, b)
    }
    assert len(ids) == 2


def test_task_without_key_gets_a_fresh_id(gateway, auth, new_tenant) -> None:
    tenant = new_tenant()
    ids = {
        httpx.post(f"{gateway.url}/v1/tasks", json=SPEC, headers=auth(tenant)).json()["task_id"]
        for _ in range(2)
    }
    assert len(ids) == 2


def test_every_mutating_call_is_audited(gateway, auth, new_tenant, kafka) -> None:
    tenant = new_tenant()
    ok = httpx.post(f"{gateway.url}/v1/tasks", json=SPEC, headers={**auth(tenant), "Idempotency-Key": "a1"})
    bad = httpx.post(f"{gateway.url}/v1/tasks", json={"site_id": "s1"}, headers=auth(tenant))
    denied = httpx.post(
        f"{gateway.url}/v1/robots",
        json={"robot_id": "r1", "site_id": "s1", "fleet_id": "f", "name": "R1"},
        headers=auth(tenant, "operator"),
    )
    assert (ok.status_code, bad.status_code, denied.status_code) == (202, 422, 403)
    events = kafka.read("audit.log", lambda r: r["tenant_id"] == tenant, want=3)
    got = sorted((e["action"], e["status_code"], e["role"], e["actor"]) for e in events)
    assert got == [
        ("robot.register", 403, "operator", "dev"),
        ("task.create", 202, "operator", "dev"),
        ("task.create", 422, "operator", "dev"),
    ]
    created = next(e for e in events if e["status_code"] == 202)
    assert created["resource_id"] == ok.json()["task_id"] and created["resource_type"] == "task"
    assert created["request_id"] == ok.headers["x-request-id"]
    assert all(e["_key"] == tenant for e in events)


def test_malformed_requests_name_the_field(gateway, auth, new_tenant) -> None:
    headers = auth(new_tenant())
    r = httpx.post(
        f"{gateway.url}/v1/tasks",
        json={"site_id": "s 1", "spec": {"category": "x", "priority": 11}},
        headers=headers,
    )
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "validation_error"
    locs = {tuple(d["loc"]) for d in body["detail"]}
    assert ("body", "site_id") in locs and ("body", "spec", "priority") in locs
    assert all(d["msg"] for d in body["detail"])
    r = httpx.get(f"{gateway.url}/v1/tasks", params={"limit": 0}, headers=headers)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
    r = httpx.get(f"{gateway.url}/v1/tasks", params={"cursor": "garbage!"}, headers=headers)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cursor"]
    r = httpx.post(
        f"{gateway.url}/v1/tasks",
        content=b"{not json",
        headers={**headers, "content-type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


def test_get_task_redis_first_then_postgres(gateway, auth, new_tenant, rds, pg) -> None:
    tenant = new_tenant()
    now = int(time.time() * 1000)
    rds.set(
        f"fleet:{tenant}:task:t-hot",
        orjson.dumps(
            {
                "task_id": "t-hot",
                "site_id": "s1",
                "state": "EXECUTING",
                "robot_id": "r1",
                "attempt": 1,
                "seq": 5,
                "updated_at": now,
                "reason": None,
            }
        ),
        ex=60,
    )
    pg.insert(
        "tasks",
        {
            "tenant_id": tenant,
            "task_id": "t-cold",
            "site_id": "s1",
            "state": "SUCCEEDED",
            "category": "delivery",
            "priority": 5,
            "attempt": 1,
            "seq": 9,
            "created_at": ts(now - 5000),
            "updated_at": ts(now),
        },
    )
    hot = httpx.get(f"{gateway.url}/v1/tasks/t-hot", headers=auth(tenant, "viewer"))
    cold = httpx.get(f"{gateway.url}/v1/tasks/t-cold", headers=auth(tenant, "viewer"))
    missing = httpx.get(f"{gateway.url}/v1/tasks/t-none", headers=auth(tenant, "viewer"))
    assert hot.status_code == 200 and hot.json()["state"] == "EXECUTING" and hot.json()["updated_at"] == now
    assert (
        cold.status_code == 200 and cold.json()["state"] == "SUCCEEDED" and cold.json()["updated_at"] == now
    )
    assert cold.json()["created_at"] == now - 5000
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_list_tasks_filters_and_pages(gateway, auth, new_tenant, pg) -> None:
    tenant = new_tenant()
    base = int(time.time() * 1000)
    for i in range(7):
        pg.insert(
            "tasks",
            {
                "tenant_id": tenant,
                "task_id": f"t{i}",
                "site_id": "s1" if i < 5 else "s2",
                "state": "QUEUED" if i % 2 else "EXECUTING",
                "category": "pick",
                "updated_at": ts(base + i * 1000),
            },
        )
    headers = auth(tenant, "viewer")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"site_id": "s1", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = httpx.get(f"{gateway.url}/v1/tasks", params=params, headers=headers).json()
        seen += [t["task_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["t4", "t3", "t2", "t1", "t0"]
    queued = httpx.get(f"{gateway.url}/v1/tasks", params={"state": "QUEUED"}, headers=headers).json()
    assert [t["task_id"] for t in queued["items"]] == ["t5", "t3", "t1"]
    both = httpx.get(
        f"{gateway.url}/v1/tasks",
        params=[("state", "QUEUED"), ("state", "EXECUTING"), ("site_id", "s2")],
        headers=headers,
    ).json()
    assert [t["task_id"] for t in both["items"]] == ["t6", "t5"]


def test_cancel_task(gateway, auth, new_tenant, pg, kafka) -> None:
    tenant = new_tenant()
    pg.insert(
        "tasks",
        {
            "tenant_id": tenant,
            "task_id": "t-c",
            "site_id": "s9",
            "state": "QUEUED",
            "updated_at": ts(int(time.time() * 1000)),
        },
    )
    r = httpx.post(f"{gateway.url}/v1/tasks/t-c/cancel", json={"reason": "customer"}, headers=auth(tenant))
    assert r.status_code == 202 and r.json()["task_id"] == "t-c"
    missing = httpx.post(f"{gateway.url}/v1/tasks/t-x/cancel", json={}, headers=auth(tenant))
    assert missing.status_code == 404
    (command,) = kafka.read("task.commands", lambda c: c["tenant_id"] == tenant)
    assert command["command"] == "CANCEL" and command["reason"] == "customer" and command["site_id"] == "s9"


def test_register_and_read_robots(gateway, auth, new_tenant, kafka, rds, pg) -> None:
    tenant = new_tenant()
    body = {"robot_id": "r1", "site_id": "s1", "fleet_id": "f1", "name": "Robbie", "capabilities": ["lift"]}
    assert httpx.post(f"{gateway.url}/v1/robots", json=body, headers=auth(tenant, "admin")).status_code == 202
    (reg,) = kafka.read("robot.registry", lambda r: r["tenant_id"] == tenant)
    assert reg["_key"] == "r1" and reg["name"] == "Robbie" and reg["capabilities"] == ["lift"]

    now = int(time.time() * 1000)
    status = {
        "robot_id": "r1",
        "fleet_id": "f1",
        "site_id": "s1",
        "tenant_id": tenant,
        "status": "MOVING",
        "battery": 0.8,
        "speed": 1.2,
        "pose": {"x": 1.0, "y": 2.0, "yaw": 0.0},
        "seq": 3,
        "last_seen_at": now,
    }
    rds.set(f"fleet:{tenant}:robot:r1", orjson.dumps(status), ex=60)
    rds.zadd(f"fleet:{tenant}:site:s1:robots", {"r1": now})
    rds.expire(f"fleet:{tenant}:site:s1:robots", 60)
    pg.insert(
        "robots",
        {
            "tenant_id": tenant,
            "robot_id": "r1",
            "site_id": "s1",
            "fleet_id": "f1",
            "name": "Robbie",
            "status": "IDLE",
            "updated_at": ts(now),
        },
    )
    pg.insert(
        "robots",
        {
            "tenant_id": tenant,
            "robot_id": "r2",
            "site_id": "s2",
            "fleet_id": "f1",
            "name": "Two",
            "status": "OFFLINE",
            "battery": 0.1,
            "updated_at": ts(now - 1000),
        },
    )
    viewer = auth(tenant, "viewer")
    one = httpx.get(f"{gateway.url}/v1/robots/r1", headers=viewer).json()
    assert one["source"] == "redis" and one["status"] == "MOVING" and one["name"] == "Robbie"
    assert one["pose"]["x"] == 1.0 and one["last_seen_at"] == now
    two = httpx.get(f"{gateway.url}/v1/robots/r2", headers=viewer).json()
    assert two["source"] == "postgres" and two["status"] == "OFFLINE"
    live = httpx.get(f"{gateway.url}/v1/robots", params={"site_id": "s1"}, headers=viewer).json()
    assert [(r["robot_id"], r["source"]) for r in live["items"]] == [("r1", "redis")]
    cold = httpx.get(f"{gateway.url}/v1/robots", params={"site_id": "s2"}, headers=viewer).json()
    assert [(r["robot_id"], r["source"]) for r in cold["items"]] == [("r2", "postgres")]
    everything = httpx.get(f"{gateway.url}/v1/robots", headers=viewer).json()
    assert [r["robot_id"] for r in everything["items"]] == ["r1", "r2"]
    assert httpx.get(f"{gateway.url}/v1/robots/r3", headers=viewer).status_code == 404


GOOD_MAP = {
    "version": 1,
    "name": "Hall A",
    "nodes": [
        {"id": "n1", "x": 0, "y": 0, "kind": "STATION"},
        {"id": "n2", "x": 10, "y": 0},
        {"id": "n3", "x": 10, "y": 10, "kind": "CHARGER"},
    ],
    "lanes": [
        {"id": "l1", "from_node": "n1", "to_node": "n2"},
        {"id": "l2", "from_node": "n2", "to_node": "n3"},
    ],
    "zones": [
        {"id": "z1", "kind": "NO_GO", "polygon": [{"x": 2, "y": 2}, {"x": 4, "y": 2}, {"x": 4, "y": 4}]}
    ],
    "chargers": [{"id": "c1", "node_id": "n3"}],
}


def test_put_map_produces_and_get_reads_postgres(gateway, auth, new_tenant, kafka, pg) -> None:
    tenant = new_tenant()
    r = httpx.put(f"{gateway.url}/v1/sites/hall-a/map", json=GOOD_MAP, headers=auth(tenant, "admin"))
    assert r.status_code == 202, r.text
    assert r.json() == {"site_id": "hall-a", "version": 1, "status": "accepted"}
    (record,) = kafka.read("site.maps", lambda m: m["tenant_id"] == tenant)
    assert record["_key"] == "hall-a" and record["version"] == 1 and len(record["nodes"]) == 3
    pg.insert(
        "site_maps",
        {
            "tenant_id": tenant,
            "site_id": "hall-a",
            "version": 1,
            "name": "Hall A",
            "map": {k: v for k, v in record.items() if k != "_key"},
            "occurred_at": ts(record["occurred_at"]),
        },
    )
    got = httpx.get(f"{gateway.url}/v1/sites/hall-a/map", headers=auth(tenant, "viewer"))
    assert got.status_code == 200
    assert got.json()["version"] == 1 and [n["id"] for n in got.json()["nodes"]] == ["n1", "n2", "n3"]
    assert httpx.get(f"{gateway.url}/v1/sites/hall-b/map", headers=auth(tenant, "viewer")).status_code == 404


def test_bad_map_lists_every_problem(gateway, auth, new_tenant, kafka) -> None:
    tenant = new_tenant()
    bad = {
        "version": 2,
        "name": "broken",
        "nodes": [
            {"id": "n1", "x": 0, "y": 0, "kind": "STATION"},
            {"id": "n1", "x": 1, "y": 0},
            {"id": "n3", "x": 5, "y": 5, "kind": "CHARGER"},
        ],
        "lanes": [{"id": "l1", "from_node": "n1", "to_node": "ghost"}],
        "zones": [
            {"id": "z1", "kind": "SLOW", "polygon": [{"x": 0, "y": 0}, {"x": 1, "y": 1}]},
            {
                "id": "z2",
                "kind": "NO_GO",
                "polygon": [{"x": 0, "y": 0}, {"x": 2, "y": 2}, {"x": 2, "y": 0}, {"x": 0, "y": 2}],
            },
        ],
        "chargers": [{"id": "c1", "node_id": "nowhere"}],
    }
    r = httpx.put(f"{gateway.url}/v1/sites/s1/map", json=bad, headers=auth(tenant, "admin"))
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_map"
    locs = {tuple(d["loc"]): d["msg"] for d in body["detail"]}
    assert "duplicate id 'n1'" in locs[("body", "nodes", 1, "id")]
    assert "unknown node 'ghost'" in locs[("body", "lanes", 0, "to_node")]
    assert "unknown node 'nowhere'" in locs[("body", "chargers", 0, "node_id")]
    assert "cannot reach" in locs[("body", "nodes", 0)] and "n3" in locs[("body", "nodes", 0)]
    assert "cannot reach" in locs[("body", "nodes", 2)]
    assert "at least 3 corners" in locs[("body", "zones", 0, "polygon")]
    assert "cross" in locs[("body", "zones", 1, "polygon")]
    assert kafka.read("site.maps", lambda m: m["tenant_id"] == tenant, timeout=2) == []


def test_schedules_create_list_disable(gateway, auth, new_tenant, kafka) -> None:
    tenant = new_tenant()
    op = auth(tenant)
    body = {
        "site_id": "s1",
        "cron": "*/5 * * * *",
        "timezone": "Europe/Berlin",
        "template": {"category": "patrol"},
    }
    r = httpx.post(f"{gateway.url}/v1/schedules", json=body, headers=op)
    assert r.status_code == 202
    schedule_id = r.json()["id"]
    listed = httpx.get(f"{gateway.url}/v1/schedules", headers=auth(tenant, "viewer")).json()["items"]
    assert [(s["schedule_id"], s["enabled"], s["cron"]) for s in listed] == [
        (schedule_id, True, "*/5 * * * *")
    ]
    assert httpx.post(f"{gateway.url}/v1/schedules/{schedule_id}/disable", headers=op).status_code == 202
    listed = httpx.get(f"{gateway.url}/v1/schedules", headers=op).json()["items"]
    assert [s["enabled"] for s in listed] == [False]
    records = kafka.read("task.schedules", lambda s: s["tenant_id"] == tenant, want=2)
    assert [(s["_key"], s["enabled"]) for s in records] == [(schedule_id, True), (schedule_id, False)]
    bad = httpx.post(
        f"{gateway.url}/v1/schedules", json={**body, "cron": "every day", "timezone": "Mars/Base"}, headers=op
    )
    assert bad.status_code == 422
    assert {tuple(d["loc"]) for d in bad.json()["detail"]} == {("body", "cron"), ("body", "timezone")}
    assert httpx.post(f"{gateway.url}/v1/schedules/nope/disable", headers=op).status_code == 404


def test_schedules_view_is_rebuilt_from_the_topic(gateway_factory, gateway, auth, new_tenant) -> None:
    tenant = new_tenant()
    body = {"site_id": "s1", "cron": "0 6 * * 1-5", "template": {"category": "charge"}}
    schedule_id = httpx.post(f"{gateway.url}/v1/schedules", json=body, headers=auth(tenant)).json()["id"]
    fresh = gateway_factory()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items = httpx.get(f"{fresh.url}/v1/schedules", headers=auth(tenant)).json()["items"]
        if items:
            break
        time.sleep(0.2)
    assert [s["schedule_id"] for s in items] == [schedule_id]


def test_telemetry_history_downsampled_and_paged(gateway, auth, new_tenant, influx_write) -> None:
    tenant = new_tenant()
    start = (int(time.time() * 1000) // 600_000) * 600_000 - 1_800_000  # 30 min ago, on a 10-minute boundary
    records = [
        {
            "tenant_id": tenant,
            "site_id": "s1",
            "robot_id": "r1",
            "fleet_id": "f1",
            "seq": i,
            "occurred_at": start + i * 10_000,
            "battery": 1.0 - i * 0.01,
            "speed": 1.0,
            "pose": {"x": float(i), "y": 0.0},
        }
        for i in range(60)  # 10 minutes, one sample every 10 s
    ]
    other = [{**records[0], "tenant_id": new_tenant()}]
    influx_write(records + other)
    viewer = auth(tenant, "viewer")
    url = f"{gateway.url}/v1/robots/r1/telemetry"
    raw = httpx.get(url, params={"from": start, "to": start + 60_000, "every": "raw"}, headers=viewer).json()
    assert raw["source"] == "raw" and [p["x"] for p in raw["points"]] == [0, 1, 2, 3, 4, 5]
    minutes = httpx.get(
        url, params={"from": start, "to": start + 600_000, "every": "1m"}, headers=viewer
    ).json()
    assert len(minutes["points"]) == 10 and minutes["next_cursor"] is None
    assert minutes["points"][0]["time"] == start and minutes["points"][0]["samples"] == 6
    assert minutes["points"][0]["battery"] == pytest.approx(1.0 - 0.025)
    assert minutes["points"][0]["battery_min"] == pytest.approx(0.95)
    pages, cursor = [], None
    while True:
        params = {
            "from": start,
            "to": start + 600_000,
            "every": "2m",
            "limit": 2,
            **({"cursor": cursor} if cursor else {}),
        }
        page = httpx.get(url, params=params, headers=viewer).json()
        pages.append([p["time"] for p in page["points"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == [[start, start + 120_000], [start + 240_000, start + 360_000], [start + 480_000]]
    bad = httpx.get(url, params={"every": "5 minutes"}, headers=viewer)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "every"]
    # [from, to) with from >= to is empty: no points (the OpenAPI schema cannot relate two parameters).
    backwards = httpx.get(url, params={"from": start, "to": start - 1}, headers=viewer)
    assert backwards.status_code == 200 and backwards.json()["points"] == []
    assert backwards.json()["next_cursor"] is None


def test_telemetry_of_old_ranges_reads_the_rollup(gateway, auth, new_tenant, influx_write) -> None:
    tenant = new_tenant()
    start = (
        int(time.time() * 1000) // 600_000
    ) * 600_000 - 10 * 86_400_000  # ten days ago, 10-minute aligned
    influx_write(
        [
            {
                "tenant_id": tenant,
                "site_id": "s1",
                "robot_id": "r1",
                "fleet_id": "f1",
                "occurred_at": start + i * 60_000,
                "window_start": start + i * 60_000,
                "window_end": start + (i + 1) * 60_000,
                "count": 6,
                "battery_min": 0.5,
                "battery_max": 0.7,
                "battery_avg": 0.6,
                "speed_avg": 1.0,
                "speed_max": 2.0,
                "distance_m": 60.0,
            }
            for i in range(4)
        ]
    )
    page = httpx.get(
        f"{gateway.url}/v1/robots/r1/telemetry",
        params={"from": start, "to": start + 240_000, "every": "2m"},
        headers=auth(tenant, "viewer"),
    ).json()
    assert page["source"] == "rollup"
    assert [(p["time"], p["samples"], p["battery"]) for p in page["points"]] == [
        (start, 12, pytest.approx(0.6)),
        (start + 120_000, 12, pytest.approx(0.6)),
    ]


def test_decisions_conflicts_alerts(gateway, auth, new_tenant, pg) -> None:
    tenant = new_tenant()
    now = int(time.time() * 1000)
    for i in range(3):
        pg.insert(
            "decisions",
            {
                "tenant_id": tenant,
                "decision_id": f"{tenant}-d{i}",
                "site_id": "s1",
                "kind": "ASSIGN" if i else "HOLD",
                "robot_id": f"r{i}",
                "task_id": "t1",
                "route": [{"node_id": "n1", "eta": now}],
                "occurred_at": ts(now + i),
            },
        )
    pg.insert(
        "conflicts",
        {
            "tenant_id": tenant,
            "conflict_id": f"{tenant}-c1",
            "site_id": "s1",
            "kind": "VERTEX",
            "robot_ids": ["r1", "r2"],
            "node_id": "n4",
            "window_start": ts(now),
            "window_end": ts(now + 5000),
            "resolution": "HOLD",
            "resolved_robot_id": "r2",
            "occurred_at": ts(now),
        },
    )
    pg.insert(
        "alerts",
        {
            "tenant_id": tenant,
            "alert_id": f"{tenant}-a1",
            "site_id": "s1",
            "kind": "BATTERY_LOW",
            "severity": "WARNING",
            "subject_id": "r1",
            "message": "battery at 9%",
            "occurred_at": ts(now),
        },
    )
    viewer = auth(tenant, "viewer")
    decisions = httpx.get(f"{gateway.url}/v1/decisions", params={"kind": "ASSIGN"}, headers=viewer).json()[
        "items"
    ]
    assert [d["robot_id"] for d in decisions] == ["r2", "r1"]
    assert decisions[0]["route"] == [{"node_id": "n1", "eta": now}]
    window = httpx.get(
        f"{gateway.url}/v1/decisions", params={"from": now + 1, "to": now + 2}, headers=viewer
    ).json()
    assert [d["robot_id"] for d in window["items"]] == ["r1"]
    (conflict,) = httpx.get(f"{gateway.url}/v1/conflicts", params={"site_id": "s1"}, headers=viewer).json()[
        "items"
    ]
    assert conflict["robot_ids"] == ["r1", "r2"] and conflict["window_end"] == now + 5000
    (alert,) = httpx.get(f"{gateway.url}/v1/alerts", params={"severity": "WARNING"}, headers=viewer).json()[
        "items"
    ]
    assert alert["kind"] == "BATTERY_LOW" and alert["subject_id"] == "r1" and alert["occurred_at"] == now
    assert (
        httpx.get(f"{gateway.url}/v1/alerts", params={"severity": "CRITICAL"}, headers=viewer).json()["items"]
        == []
    )


def test_probes_metrics_docs(gateway, auth, new_tenant) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200
    assert {k: v["ok"] for k, v in ready.json()["checks"].items()} == {
        "kafka": True,
        "postgres": True,
        "redis": True,
        "stream": True,
    }
    httpx.get(f"{gateway.url}/v1/tasks/t-none", headers=auth(new_tenant(), "viewer"))
    text = httpx.get(f"{gateway.url}/metrics").text
    assert (
        'fleet_gateway_request_seconds_count{method="GET",route="/v1/tasks/{task_id}",status="404"}' in text
    )
    assert "fleet_gateway_sse_clients" in text
    assert httpx.get(f"{gateway.url}/docs").status_code == 200
    page = httpx.get(f"{gateway.url}/")
    assert page.status_code == 200 and "fleetstream" in page.text and "/static/app.js" in page.text
    assert "EventSource" in httpx.get(f"{gateway.url}/static/app.js").text
    assert httpx.get(f"{gateway.url}/static/app.css").status_code == 200
    spec = httpx.get(f"{gateway.url}/openapi.json").json()
    assert "/v1/stream" in spec["paths"] and "/v1/sites/{site_id}/map" in spec["paths"]


def test_readyz_reports_each_dependency(gateway_factory) -> None:
    gw = gateway_factory(
        postgres_dsn="postgresql://fleet@127.0.0.1:1/fleetstream", readiness_timeout_seconds=0.5
    )
    ready = httpx.get(f"{gw.url}/readyz")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert (
        checks["postgres"]["ok"] is False and checks["kafka"]["ok"] is True and checks["redis"]["ok"] is True
    )
