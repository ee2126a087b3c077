"""The closed loop in one process (``pipelines.simulator.harness``): the simulated fleet driven by the
real telemetry, tasks, dispatch and traffic topologies, with the pipeline's latency modelled (each
decision reaches its robot about a second after the telemetry that caused it). Traffic control is by
exclusive grants: robots drive only onto nodes granted to them."""

from __future__ import annotations

import time

import pytest

from pipelines.simulator.harness import LoopConfig, run_loop

MINUTE = 60_000


def test_thirty_robots_for_thirty_minutes_without_a_collision() -> None:
    started = time.monotonic()
    report = run_loop(LoopConfig(robots=30, duration_ms=30 * MINUTE, tasks_per_minute=2.0, seed=0))
    summary = report.summary()
    assert time.monotonic() - started < 120, summary
    assert report.sim_ms >= 30 * MINUTE
    # Ground truth: never two robots at one node, never two on one lane head-on.
    assert report.collisions_total == 0, (summary, report.collisions[:5])
    # Traffic control granted the way, robots followed it, and nobody was held by the old rules.
    assert report.applied["GRANT"] > 1_000 and report.decisions["HOLD"] == 0, summary
    assert report.unresolved == [] and report.alerts == [], summary
    # Every task was carried out, and no robot waited a minute for its way.
    assert report.tasks_created == 60 and report.tasks_succeeded == 60, summary
    assert report.longest_wait_ms < MINUTE, summary
    # Decisions reached the robots with the latency of the real pipeline, not at once.
    assert 500 <= report.latency_ms(0.5) <= report.latency_ms(1.0) <= 1_500, summary


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_four_tasks_a_minute_without_a_collision_or_a_jam(seed: int) -> None:
    """At 4 tasks/min the single-lane west corridor (all parking spots) and the five docks are busy (the
    reservation rules this replaced jammed there): no collision, every task done, nobody starves."""
    report = run_loop(LoopConfig(robots=30, duration_ms=30 * MINUTE, tasks_per_minute=4.0, seed=seed))
    summary = report.summary()
    assert report.collisions_total == 0, (summary, report.collisions[:5])
    assert report.tasks_created == 120 and report.tasks_succeeded == 120, summary
    assert report.longest_wait_ms < MINUTE, summary
    # no gridlock: the last five minutes carry on at the pace of the run
    done = report.done_per_bucket
    assert done[-1] >= 0.8 * sum(done[1:]) / len(done[1:]), summary


def test_without_traffic_control_the_same_fleet_collides() -> None:
    report = run_loop(
        LoopConfig(robots=30, duration_ms=5 * MINUTE, drain_ms=MINUTE, tasks_per_minute=6.0, traffic=None)
    )
    assert report.collisions_total > 0, report.summary()
    assert report.decisions["GRANT"] == 0 and report.tasks_succeeded > 0
