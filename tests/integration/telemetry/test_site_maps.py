"""Site maps reach the telemetry topology's pose check through its state, against the real stack: the
newest version counts, an older one arriving late does not, a tombstone turns the check off, and a map
that cannot be decoded is dead-lettered from site.maps."""

from __future__ import annotations

import uuid
from typing import Any

from schemas.ids import now_ms

from .conftest import Stack
from .test_telemetry_processor import registration, sample


def site_map(version: int, width: float) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": "acme", "site_id": "s1", "occurred_at": now_ms(),
        "version": version, "name": "s1", "lanes": [], "zones": [], "chargers": [],
        "nodes": [{"id": "a", "x": 0.0, "y": 0.0, "kind": "WAYPOINT", "name": None},
                  {"id": "b", "x": width, "y": 10.0, "kind": "WAYPOINT", "name": None}],
    }  # fmt: skip


def _rejections(stack: Stack, count: int) -> list[str]:
    dead = stack.read("dlq.telemetry", until=lambda d: len(d) >= count, timeout=20, raw=True)
    return [dict(m.headers())["fleet-dlq-error"].decode() for m in dead]


def test_maps_reach_the_pose_check_through_state(stack: Stack) -> None:
    stack.produce("site.maps", "s1", site_map(1, 40.0))
    stack.produce("robot.registry", "r1", registration("r1"))
    stack.produce("site.maps", "s9", b"not avro")  # a dead letter of its own, the others go on
    stack.flush()
    stack.start("telemetry", commit_interval_s=0.2)
    stack.wait_for_bounds(["r1"])
    assert stack.site_bounds()["r1"]["bounds"] == [1, 0.0, 0.0, 40.0, 10.0]
    t = now_ms()
    stack.produce("robot.telemetry", "r1", sample("r1", 1, t, pose={"x": 45.0}))  # off v1 (40 + 2 m margin)
    stack.flush()
    reasons = _rejections(stack, 2)
    assert any(r.startswith("pose (45, 5) off the map of site 's1' v1") for r in reasons), reasons
    assert any("magic byte" in r for r in reasons), reasons

    stack.produce("site.maps", "s1", site_map(3, 60.0))
    stack.produce("site.maps", "s1", site_map(2, 20.0))  # an older version arriving late: ignored
    stack.flush()
    stack.wait_until_bounds("r1", lambda b: b and b[0] == 3)
    stack.produce("robot.telemetry", "r1", sample("r1", 2, now_ms(), pose={"x": 45.0}))  # on v3
    stack.produce("robot.telemetry", "r1", sample("r1", 3, now_ms(), pose={"x": 70.0}))  # off v3
    stack.flush()
    reasons = _rejections(stack, 3)
    assert any(r.startswith("pose (70, 5) off the map of site 's1' v3") for r in reasons), reasons

    stack.produce("site.maps", "s1", None)  # the site's map is deleted: nothing proves a pose impossible
    stack.flush()
    stack.wait_until_bounds("r1", lambda b: b is None)
    stack.produce("robot.telemetry", "r1", sample("r1", 4, now_ms(), pose={"x": 500.0}))
    stack.flush()
    accepted = stack.read("robot.telemetry.accepted", until=lambda a: len(a) >= 2, timeout=20)
    assert [a["seq"] for a in accepted] == [2, 4]
