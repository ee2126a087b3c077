"""Benchmark: traffic control by grants in the closed loop, against the same fleet without traffic control.

For each fleet size the in-process loop (``pipelines.simulator.harness``: the simulator, the telemetry,
tasks, dispatch and traffic topologies, Kafka's latency modelled) runs the small generated warehouse
(``pipelines.simulator.layouts.small_warehouse``) for ``FLEET_BENCH_TRAFFIC_MINUTES`` (30) simulated
minutes, saturated (as many open tasks as robots: a robot that finishes gets its next task at once: fetch
from a storage pocket, bring it to a workstation on the edge; parked robots are called out only while the
lanes have room, ``DispatchConfig.max_busy_density``), with execution noise on (stalls and a speed
spread, deterministic from the seed). The same run with traffic control off is the baseline: robots drive
through each other (it counts the collisions they would have) and every robot is called out for a task (no
cap: robots that drive through each other need no room on the lanes), an upper bound of what any traffic
control could reach. Both runs of a size go in parallel, one per core.

Per size it reports: tasks/h with traffic control and without, the ratio, collisions (ground truth), the
tasks done per 5 minutes, the longest a robot stood at the end of its grant wanting to go on, the traffic
step's CPU per simulated second, and whether the fleet kept its pace (the last 5 minutes >= 90% of the
run's mean: no gridlock). Then 1,000 robots on the large warehouse (``FLEET_BENCH_TRAFFIC_LARGE_MINUTES``,
10), traffic on only.

The pipeline's latency is modelled as measured on the local stack with the traffic path tuned (50 ms
checkpoints, telemetry at 5 Hz; tests/integration/loop/test_traffic_loop.py and docs/traffic.md):
``FLEET_BENCH_TRAFFIC_COMMIT_MS`` / ``_HOP_MS`` / ``_RATE_HZ`` change it. Goals (issue: traffic control
at warehouse scale): 0 collisions, no gridlock, >= 90% / 75% / 55% of the baseline at 50 / 100 / 200
robots, 400 robots without gridlock, longest wait < 60 s, CPU per simulated second < 0.5 s at 400.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from pipelines.simulator.harness import LoopConfig, LoopReport, run_loop
from pipelines.simulator.layouts import large_warehouse, small_warehouse
from topologies.dispatch import DispatchConfig
from topologies.traffic import TrafficConfig

__all__ = ["loop_config", "run", "run_size"]

logger = logging.getLogger(__name__)

GOALS = {50: 0.90, 100: 0.75, 200: 0.55}
LONGEST_WAIT_GOAL_S = 60.0
CPU_GOAL = 0.5


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def loop_config(
    robots: int, minutes: float, *, traffic: bool, large: bool = False, seed: int = 0
) -> LoopConfig:
    """The loop of one benchmark run (see the module doc)."""
    site = large_warehouse() if large else small_warehouse()
    return LoopConfig(
        robots=robots,
        duration_ms=round(minutes * 60_000),
        drain_ms=0,
        seed=seed,
        site_map=site,
        site_id=site["site_id"],
        backlog=robots,
        stall_per_min=0.5,
        stall_ms=(1_000, 6_000),
        speed_spread=0.2,
        initial_battery=(0.9, 1.0),
        commit_ms=_env_int("FLEET_BENCH_TRAFFIC_COMMIT_MS", 50),
        hop_ms=_env_int("FLEET_BENCH_TRAFFIC_HOP_MS", 30),
        rate_hz=float(os.environ.get("FLEET_BENCH_TRAFFIC_RATE_HZ", 5.0)),
        traffic=TrafficConfig(speed_mps=1.2, lookahead_ms=2_500) if traffic else None,
        # robots that drive through each other need no room on the lanes: every one takes a task
        dispatch=DispatchConfig() if traffic else DispatchConfig(max_busy_density=0.0),
    )


def pair(robots: int, minutes: float) -> list[LoopConfig]:
    """One size's runs: with traffic control, and collision-blind (its upper bound: the same fleet, seed and
    demand, every robot called out for a task)."""
    return [loop_config(robots, minutes, traffic=True), loop_config(robots, minutes, traffic=False)]


def run_size(config: LoopConfig) -> dict[str, Any]:
    """One run in a worker process: the figures of its report (a LoopReport does not pickle)."""
    report: LoopReport = run_loop(config)
    sim_s = report.sim_ms / 1000
    return {
        "robots": config.robots,
        "traffic": config.traffic is not None,
        "tasks": report.tasks_succeeded,
        "tasks_per_h": report.tasks_succeeded / (config.duration_ms / 3_600_000),
        "collisions": report.collisions_total,
        "per_5_min": list(report.done_per_bucket),
        "longest_wait_s": report.longest_wait_ms / 1000,
        "longest_wait_robot": report.longest_wait_robot,
        "cpu_per_sim_s": report.traffic_cpu_s / sim_s if sim_s else 0.0,
        "grants": report.grants,
        "latency_ms": [report.latency_ms(0.5), report.latency_ms(0.99)],
        "wall_s": report.wall_s,
    }


def _paced(per_5_min: list[int]) -> float:
    """The last 5 minutes against the mean of the run (1.0: the same pace; under 0.9: a jam)."""
    if len(per_5_min) < 2:
        return 1.0
    mean = sum(per_5_min) / len(per_5_min)
    return per_5_min[-1] / mean if mean else 0.0


def _rows(on: dict[str, Any], off: dict[str, Any] | None) -> list[dict[str, Any]]:
    n = on["robots"]
    base = off["tasks_per_h"] if off else None
    goal = GOALS.get(n)
    rows = [
        {
            "name": f"traffic loop tasks/h @{n} robots",
            "value": on["tasks_per_h"],
            "unit": "tasks/h",
            "baseline": base,
            "ratio": on["tasks_per_h"] / base if base else None,
            "goal": f">= {goal:.0%} of collision-blind" if goal else "no gridlock",
        },
        {
            "name": f"traffic loop collisions @{n} robots",
            "value": on["collisions"],
            "unit": "collisions",
            "baseline": off["collisions"] if off else None,
            "goal": "0",
        },
        {
            "name": f"traffic loop last 5 min / mean @{n} robots",
            "value": _paced(on["per_5_min"]),
            "unit": "ratio",
            "goal": ">= 0.9 (no gridlock)",
        },
        {
            "name": f"traffic loop longest wait @{n} robots",
            "value": on["longest_wait_s"],
            "unit": "s",
            "goal": f"< {LONGEST_WAIT_GOAL_S:.0f} s",
        },
        {
            "name": f"traffic step CPU per sim s @{n} robots",
            "value": on["cpu_per_sim_s"],
            "unit": "s/s",
            "goal": f"< {CPU_GOAL} s at 400",
        },
    ]
    logger.info(
        "traffic @%d robots: %.0f tasks/h (collision-blind %s), %d collisions (blind %s), per 5 min %s "
        "(blind %s), longest wait %.1f s (%s), CPU %.3f s per simulated s, %d grants, latency p50/p99 %s ms",
        n, on["tasks_per_h"], f"{base:.0f}" if base else "-", on["collisions"],
        off["collisions"] if off else "-", on["per_5_min"], off["per_5_min"] if off else "-",
        on["longest_wait_s"], on["longest_wait_robot"], on["cpu_per_sim_s"], on["grants"], on["latency_ms"],
    )  # fmt: skip
    return rows


def run() -> list[dict[str, Any]]:
    minutes = float(os.environ.get("FLEET_BENCH_TRAFFIC_MINUTES", 30))
    sizes = [int(s) for s in os.environ.get("FLEET_BENCH_TRAFFIC_SIZES", "50,100,200,400").split(",") if s]
    large_minutes = float(os.environ.get("FLEET_BENCH_TRAFFIC_LARGE_MINUTES", 10))
    large_robots = _env_int("FLEET_BENCH_TRAFFIC_LARGE_ROBOTS", 1_000)
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(max_workers=2) as pool:
        for n in sizes:
            logger.info(
                "traffic loop: %d robots, %.0f simulated minutes, with and without traffic control",
                n,
                minutes,
            )
            on, off = pool.map(run_size, pair(n, minutes))
            rows.extend(_rows(on, off))
        if large_robots and large_minutes:
            logger.info(
                "traffic loop: %d robots on the large warehouse, %.0f minutes", large_robots, large_minutes
            )
            big = pool.submit(
                run_size, loop_config(large_robots, large_minutes, traffic=True, large=True)
            ).result()
            rows.extend(_rows(big, None))
    return rows
