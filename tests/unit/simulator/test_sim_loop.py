"""The closed loop in one process (``pipelines.simulator.harness``): the simulated fleet driven by the
real telemetry, tasks, dispatch and traffic topologies, with the pipeline's latency modelled (each
decision reaches its robot about a second after the telemetry that caused it)."""

from __future__ import annotations

import time

import pytest

from pipelines.simulator.harness import LoopConfig, run_loop

MINUTE = 60_000


def test_thirty_robots_for_thirty_minutes_without_a_collision() -> None:
    started = time.monotonic()
    report = run_loop(LoopConfig(robots=30, duration_ms=30 * MINUTE, tasks_per_minute=2.0, seed=0))
    summary = report.summary()
    assert time.monotonic() - started < 90, summary
    assert report.sim_ms >= 30 * MINUTE
    # Ground truth: never two robots at one node, never two on one lane head-on.
    assert report.collisions_total == 0, (summary, report.collisions[:5])
    # Traffic control did act, and every conflict it found was resolved (HOLD or REROUTE).
    assert report.conflicts["VERTEX"] > 0 and report.decisions["HOLD"] > 0, summary
    assert report.unresolved == [] and report.alerts == [], summary
    assert set(report.resolutions) <= {"HOLD", "REROUTE"}, summary
    # Every robot held was released (RESUME or REROUTE), and every task was carried out.
    assert report.held_at_end == [] and report.traffic_held_at_end == [], summary
    released = report.applied["RESUME"] + report.applied["REROUTE"]
    assert report.applied["HOLD"] - report.reholds <= released, summary
    assert report.tasks_created == 60 and report.tasks_succeeded == 60, summary
    # Decisions reached the robots with the latency of the real pipeline, not at once.
    assert 500 <= report.latency_ms(0.5) <= report.latency_ms(1.0) <= 1_500, summary


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_three_tasks_a_minute_without_a_collision_or_a_jam(seed: int) -> None:
    """At 3 tasks/min the single-lane west corridor (all parking spots) and the five docks are busy:
    every conflict is still resolved, nobody starves at a parking spot, and every task is carried out."""
    report = run_loop(LoopConfig(robots=30, duration_ms=30 * MINUTE, tasks_per_minute=3.0, seed=seed))
    summary = report.summary()
    assert report.collisions_total == 0, (summary, report.collisions[:5])
    assert report.unresolved == [], (summary, report.unresolved[:3])
    assert set(report.resolutions) <= {"HOLD", "REROUTE"}, summary
    assert report.tasks_created == 90 and report.tasks_succeeded == 90, summary
    assert report.held_at_end == [] and report.traffic_held_at_end == [], summary
    released = report.applied["RESUME"] + report.applied["REROUTE"]
    assert report.applied["HOLD"] - report.reholds <= released, summary


def test_without_traffic_control_the_same_fleet_collides() -> None:
    report = run_loop(
        LoopConfig(robots=30, duration_ms=5 * MINUTE, drain_ms=MINUTE, tasks_per_minute=6.0, traffic=None)
    )
    assert report.collisions_total > 0, report.summary()
    assert report.decisions["HOLD"] == 0 and report.tasks_succeeded > 0
