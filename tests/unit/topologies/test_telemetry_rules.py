"""Rejections, status derivation and site-map bounds of the telemetry topology (pure, no broker)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.errors import RejectedRecord
from schemas.sitegraph import Bounds
from topologies.telemetry import (
    SITE_JOIN,
    SITE_MAP,
    TelemetryConfig,
    TelemetryStep,
    bounds_of,
    derive_status,
    site_key,
)
from topologies.telemetry.rules import validate_telemetry
from topologies.telemetry.sitemaps import map_message

T0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)
CFG = TelemetryConfig()
REG = {"tenant_id": "acme", "fleet_id": "f1", "active": True, "managed_by": "FLEETSTREAM"}
BOUNDS = Bounds(version=3, min_x=0.0, min_y=0.0, max_x=50.0, max_y=20.0)


def sample(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "e",
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": T0,
        "robot_id": "r1",
        "fleet_id": "f1",
        "seq": 1,
        "pose": {"x": 10.0, "y": 5.0, "yaw": 0.0, "node_id": None, "map_name": None},
        "battery": 0.8,
        "speed": 0.0,
        "mode": "IDLE",
        "error_code": None,
        "task_id": None,
        "task_phase": "NONE",
        "route": [],
    }
    pose = overrides.pop("pose", None)
    record.update(overrides)
    if pose:
        record["pose"] = {**record["pose"], **pose}
    return record


def reject_reason(
    record: dict[str, Any],
    registration: dict[str, Any] | None = REG,
    bounds: Bounds | None = BOUNDS,
    now: int = T0,
) -> str:
    with pytest.raises(RejectedRecord) as info:
        validate_telemetry(record, registration, bounds, CFG, now)
    return info.value.reason


def test_a_valid_sample_passes():
    validate_telemetry(sample(), REG, BOUNDS, CFG, T0)


def test_unknown_robot_is_rejected():
    assert (
        reject_reason(sample(), registration=None) == "unknown robot 'r1': not registered on robot.registry"
    )


def test_robot_of_another_tenant_is_rejected():
    reason = reject_reason(sample(), registration={**REG, "tenant_id": "globex"})
    assert reason == "unknown robot 'r1' for tenant 'acme': registered to another tenant"


def test_retired_robot_is_rejected():
    assert reject_reason(sample(), registration={**REG, "active": False}) == (
        "robot 'r1' is retired (inactive on robot.registry)"
    )


@pytest.mark.parametrize("battery", [-0.01, 1.0001, math.nan, math.inf])
def test_battery_outside_0_1_is_rejected(battery: float):
    assert reject_reason(sample(battery=battery)) == f"battery {battery!r} outside 0..1"


@pytest.mark.parametrize("battery", [0.0, 1.0])
def test_battery_bounds_are_inclusive(battery: float):
    validate_telemetry(sample(battery=battery), REG, BOUNDS, CFG, T0)


@pytest.mark.parametrize("speed", [-0.5, math.inf, math.nan])
def test_impossible_speed_is_rejected(speed: float):
    assert "is not a finite non-negative m/s value" in reject_reason(sample(speed=speed))


def test_timestamp_beyond_the_allowed_skew_is_rejected_relative_to_the_injected_clock():
    now = T0 - 10_000
    reason = reject_reason(sample(), now=now)
    assert reason == f"occurred_at {T0} is 10000 ms in the future (allowed clock skew 5000 ms)"
    # Exactly at the skew is still accepted.
    validate_telemetry(sample(), REG, BOUNDS, CFG, T0 - CFG.future_skew_ms)


def test_pose_off_the_map_is_rejected_with_the_site_and_map_version():
    reason = reject_reason(sample(pose={"x": 60.0, "y": 5.0}))
    assert reason == "pose (60, 5) off the map of site 's1' v3: x 0..50, y 0..20 (margin 2 m)"


def test_pose_within_the_margin_is_accepted():
    validate_telemetry(sample(pose={"x": -1.5, "y": 21.9}), REG, BOUNDS, CFG, T0)


def test_non_finite_pose_is_rejected_even_without_a_map():
    assert (
        reject_reason(sample(pose={"x": math.nan}), bounds=None)
        == "pose (nan, 5.0) is not a finite coordinate"
    )


def test_without_a_known_map_any_finite_pose_is_accepted():
    validate_telemetry(sample(pose={"x": 1e6, "y": -1e6}), REG, None, CFG, T0)


def test_registration_is_checked_before_values():
    assert reject_reason(sample(battery=7.0), registration=None).startswith("unknown robot")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"mode": "ERROR"}, "ERROR"),
        ({"mode": "MOVING", "error_code": "E42"}, "ERROR"),
        ({"mode": "CHARGING"}, "CHARGING"),
        ({"mode": "WORKING"}, "WORKING"),
        ({"mode": "MOVING", "speed": 0.0}, "MOVING"),
        ({"mode": "IDLE", "speed": 0.0}, "IDLE"),
        ({"mode": "IDLE", "speed": 0.8}, "MOVING"),
        ({"mode": "UNKNOWN", "speed": 0.04}, "IDLE"),
        ({"mode": "UNKNOWN", "task_id": "t1", "task_phase": "IN_PROGRESS"}, "WORKING"),
        ({"mode": "UNKNOWN", "task_id": "t1", "task_phase": "COMPLETED"}, "IDLE"),
    ],
)
def test_status_derivation(overrides: dict[str, Any], expected: str):
    assert derive_status(sample(**overrides), CFG) == expected


def _map(version: int, nodes: list[tuple[float, float]], zones: list[list[tuple[float, float]]] = ()) -> dict:
    return {
        "tenant_id": "acme",
        "site_id": "s1",
        "version": version,
        "name": "main",
        "nodes": [{"id": f"n{i}", "x": x, "y": y} for i, (x, y) in enumerate(nodes)],
        "lanes": [],
        "zones": [
            {"id": f"z{i}", "kind": "NO_GO", "polygon": [{"x": x, "y": y} for x, y in poly]}
            for i, poly in enumerate(zones)
        ],
    }


def test_bounds_cover_nodes_and_zone_corners():
    bounds = bounds_of(_map(1, [(0, 0), (10, 5)], zones=[[(-3, 1), (2, 8)]]))
    assert bounds == Bounds(1, -3.0, 0.0, 10.0, 8.0)
    assert bounds_of(_map(1, [])) is None


def test_a_map_that_is_not_a_graph_is_rejected():
    bad = {**_map(2, [(0, 0), (10, 5)]), "lanes": [{"id": "l", "from_node": "n0", "to_node": "nowhere"}]}
    with pytest.raises(RejectedRecord, match="site map v2 is not a graph: lane 'l' references unknown node"):
        bounds_of(bad)


def test_the_site_directory_keeps_the_newest_version_per_tenant_and_tells_its_robots(harness):
    h = harness(TelemetryStep(CFG, decode=lambda raw: raw))
    key = site_key("s1")

    def bounds_sent(out):
        return {(o.key, tuple(o.value.payload["bounds"] or ())) for o in out}

    [(_, message)] = map_message(_map(2, [(0, 0), (10, 10)]), "s1")
    assert h.send(SITE_MAP, key, message, 0) == []  # nobody joined yet
    joined = h.send(SITE_JOIN, key, {"tenant_id": "acme", "site_id": "s1", "robot_id": "r1"}, 0)
    assert bounds_sent(joined) == {("r1", (2, 0.0, 0.0, 10.0, 10.0))}
    [(_, older)] = map_message(_map(1, [(0, 0), (99, 99)]), "s1")
    assert h.send(SITE_MAP, key, older, 0) == []  # an older version arriving late: ignored
    [(_, newer)] = map_message(_map(3, [(0, 0), (20, 10)]), "s1")
    assert bounds_sent(h.send(SITE_MAP, key, newer, 0)) == {("r1", (3, 0.0, 0.0, 20.0, 10.0))}
    other = h.send(SITE_JOIN, key, {"tenant_id": "globex", "site_id": "s1", "robot_id": "g1"}, 0)
    assert bounds_sent(other) == {("g1", ())}  # no map of that tenant's site
    [(_, deleted)] = map_message(None, "s1")
    assert bounds_sent(h.send(SITE_MAP, key, deleted, 0)) == {("r1", ())}


def test_a_robots_stored_bounds_are_parsed_once_per_value():
    step = TelemetryStep(CFG, decode=lambda raw: raw)
    first = step.bounds([2, 0.0, 0.0, 10.0, 10.0])
    assert first == Bounds(2, 0.0, 0.0, 10.0, 10.0)
    assert step.bounds([2, 0.0, 0.0, 10.0, 10.0]) is first  # the same value: parsed once
    assert step.bounds([3, 0.0, 0.0, 20.0, 10.0]) == Bounds(3, 0.0, 0.0, 20.0, 10.0)  # a new map version
    assert step.bounds(None) is None
    assert step.bounds([]) is None
