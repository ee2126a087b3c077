"""The traffic benchmark compares each run with its collision-blind upper bound: the same fleet, seed and
demand, every robot called out for a task (no traffic control, no cap on robots out)."""

from __future__ import annotations

from pipelines.bench.traffic import pair


def test_the_collision_blind_run_is_the_same_fleet_with_every_robot_called_out() -> None:
    on, off = pair(50, 1)
    assert on.traffic is not None and on.dispatch.max_busy_density > 0
    assert off.traffic is None and off.dispatch.max_busy_density == 0
    for name in ("robots", "seed", "duration_ms", "backlog", "site_id", "stall_per_min", "speed_spread"):
        assert getattr(on, name) == getattr(off, name), name
