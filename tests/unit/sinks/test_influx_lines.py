"""Line protocol of the InfluxDB sink (pure: no server)."""

from __future__ import annotations

import math
from typing import Any

from sinks.influx import InfluxConfig, aggregate_line, escape_tag, telemetry_line, to_lines

AT = 1_740_816_000_123


def telemetry(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "e1",
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": AT,
        "robot_id": "r1",
        "fleet_id": "f1",
        "seq": 42,
        "pose": {"x": 1.5, "y": -2.0, "yaw": 0.25, "node_id": "n1", "map_name": None},
        "battery": 0.8,
        "speed": 1.25,
        "mode": "MOVING",
        "error_code": None,
        "task_id": "t1",
        "task_phase": "IN_PROGRESS",
        "route": [],
        **overrides,
    }


def aggregate(**overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "a1",
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": 1_740_816_000_000,
        "robot_id": "r1",
        "fleet_id": "f1",
        "window_start": 1_740_816_000_000,
        "window_end": 1_740_816_060_000,
        "count": 12,
        "battery_min": 0.5,
        "battery_max": 0.75,
        "battery_avg": 0.625,
        "speed_avg": 1.0,
        "speed_max": 2.0,
        "distance_m": 33.5,
        **overrides,
    }


def test_telemetry_point_has_bounded_tags_numeric_fields_and_the_event_time():
    assert telemetry_line(telemetry()) == (
        "robot_telemetry,fleet=f1,robot=r1,site=s1,tenant=acme "
        f"battery=0.8,speed=1.25,x=1.5,y=-2.0,yaw=0.25,seq=42i {AT}"
    )


def test_aggregate_point_is_stamped_with_the_window_start():
    assert aggregate_line(aggregate()) == (
        "robot_telemetry_1m,fleet=f1,robot=r1,site=s1,tenant=acme count=12i,battery_min=0.5,"
        "battery_max=0.75,battery_avg=0.625,speed_avg=1.0,speed_max=2.0,distance_m=33.5 1740816000000"
    )


def test_tag_values_are_escaped_and_empty_tags_left_out():
    assert escape_tag("a b,c=d\\e") == "a\\ b\\,c\\=d\\\\e"
    line = telemetry_line(telemetry(site_id="hall 7,north", fleet_id=""))
    assert line is not None and line.startswith("robot_telemetry,robot=r1,site=hall\\ 7\\,north,tenant=acme ")


def test_non_finite_fields_are_left_out_and_a_point_without_fields_is_skipped():
    line = telemetry_line(telemetry(speed=math.inf, pose={"x": math.nan, "y": 1.0, "yaw": 0.0}))
    assert line is not None and " battery=0.8,y=1.0,yaw=0.0,seq=42i " in line
    all_nan = aggregate(
        **{
            k: math.nan
            for k in ("battery_min", "battery_max", "battery_avg", "speed_avg", "speed_max", "distance_m")
        }
    )
    assert (
        aggregate_line(all_nan)
        == f"robot_telemetry_1m,fleet=f1,robot=r1,site=s1,tenant=acme count=12i {all_nan['occurred_at']}"
    )


def test_records_are_grouped_by_retention_policy():
    cfg = InfluxConfig(raw_rp="raw", aggregate_rp="agg")
    lines = to_lines([telemetry(), aggregate(), telemetry(seq=43, occurred_at=AT + 1), None], cfg)
    assert list(lines) == ["raw", "agg"]
    assert len(lines["raw"]) == 2 and len(lines["agg"]) == 1
    assert to_lines([aggregate()], cfg).keys() == {"agg"}
