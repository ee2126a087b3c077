"""Benchmark: the dispatch step for one site with 500 robots and 2,000 queued tasks, and the planner.

Workload (deterministic, seed 11): the demo warehouse (190 nodes, 8 chargers), 500 registered robots
on random nodes with batteries 0.4..1.0 and one of four capability sets, 2,000 tasks from a PICK node
to a DROP node (priorities 0..10, a third with deadlines, a quarter needing a capability).

Figures (pure step, in process, no Kafka):
- task ready -> ASSIGN: 500 free robots, tasks queued one by one (each step picks the cheapest robot);
- robot free -> ASSIGN: 1,500 tasks still queued, robots finish (SUCCEEDED) one by one and each step
  picks the most urgent feasible task for the freed robot;
  baseline for both: a step that decides nothing (a heartbeat of a busy robot), same state;
- decisions/s over those two phases, and of one cold batch (map arrives last: 500 x 2,000 greedy);
- total travel of the batch: the gRPC planner (optimal) vs the in-process greedy policy, and the
  planner's round trip over 127.0.0.1.
Goal: p99 of both latencies < 100 ms; planner travel <= greedy travel.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from pipelines.planner import CircuitBreaker, PlannerClient, serve
from pipelines.simulator.warehouse import demo_site
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.machine import MAP, REGISTRATION, STATUS, TASK, step
from topologies.dispatch.policy import CostModel, greedy, optimal
from topologies.dispatch.state import SiteState, robot_view, task_view

__all__ = ["run", "workload"]

ROBOTS = 500
TASKS = 2_000
T0 = 1_767_225_600_000
GOAL_P99_MS = 100.0
_CAPS: list[tuple[str, ...]] = [(), ("lift",), ("tow",), ("lift", "tow")]


def workload(seed: int = 11) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """(site map, robot inputs, task specs): (kind, record) of registrations + IDLE statuses, and TaskSpec
    dicts."""
    rng = random.Random(seed)
    site = demo_site("bench", "acme")
    nodes = [n["id"] for n in site["nodes"] if n["kind"] in ("WAYPOINT", "AISLE", "PARKING")]
    picks = [n["id"] for n in site["nodes"] if n["kind"] in ("PICKUP", "AISLE")]
    drops = [n["id"] for n in site["nodes"] if n["kind"] == "DROPOFF"]
    base = {"tenant_id": "acme", "site_id": "bench", "event_id": "bench"}
    robots: list[tuple[str, dict[str, Any]]] = []
    for i in range(ROBOTS):
        rid = f"r{i:04d}"
        robots.append(
            (
                REGISTRATION,
                {
                    **base,
                    "occurred_at": T0,
                    "robot_id": rid,
                    "fleet_id": "f1",
                    "name": rid,
                    "capabilities": list(rng.choice(_CAPS)),
                    "managed_by": "FLEETSTREAM",
                    "active": True,
                },
            )
        )
        robots.append(
            (
                STATUS,
                {
                    **base,
                    "occurred_at": T0,
                    "robot_id": rid,
                    "fleet_id": "f1",
                    "status": "IDLE",
                    "battery": rng.uniform(0.4, 1.0),
                    "seq": 1,
                    "speed": 0.0,
                    "pose": {"x": 0.0, "y": 0.0, "node_id": rng.choice(nodes)},
                },
            )
        )
    specs: list[dict[str, Any]] = []
    for j in range(TASKS):
        specs.append(
            {
                "category": "delivery",
                "priority": rng.randint(0, 10),
                "pickup_node": rng.choice(picks),
                "dropoff_node": rng.choice(drops),
                "required_capabilities": list(rng.choice(_CAPS[1:3])) if j % 4 == 0 else [],
                "deadline": T0 + rng.randint(120, 3600) * 1000 if j % 3 == 0 else None,
            }
        )
    return site, robots, specs


def _task(
    task_id: str, seq: int, state: str, at: int, spec: dict | None = None, robot: str | None = None
) -> dict:
    return {
        "tenant_id": "acme",
        "site_id": "bench",
        "event_id": "bench",
        "occurred_at": at,
        "task_id": task_id,
        "seq": seq,
        "kind": "TRANSITION",
        "state": state,
        "robot_id": robot,
        "attempt": 0,
        "spec": spec,
    }


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(
    state: SiteState, kind: str, event: dict[str, Any], now: int
) -> tuple[float, list[dict[str, Any]]]:
    t = time.perf_counter()
    _, out = step(state, kind, event, now)
    return (time.perf_counter() - t) * 1000.0, out


def _phases(site: dict, robots: list[tuple[str, dict]], specs: list[dict]) -> dict[str, Any]:
    state = SiteState(config=DispatchConfig())
    step(state, MAP, site, T0)
    for kind, e in robots:
        step(state, kind, e, T0)
    now = T0
    ready_ms: list[float] = []
    decisions = 0
    busy_ms = 0.0
    holder: dict[str, str] = {}
    for j, spec in enumerate(specs):
        now += 10
        tid = f"t{j:05d}"
        step(state, TASK, _task(tid, 1, "CREATED", now, spec), now)
        ms, out = _timed(state, TASK, _task(tid, 2, "QUEUED", now), now)
        busy_ms += ms
        decisions += len(out)
        for d in out:
            ready_ms.append(ms)
            holder[d["robot_id"]] = d["task_id"]
    # baseline: a heartbeat of a busy robot (no matching), in the loaded state
    base_ms = []
    for rid in list(holder)[:300]:
        now += 1
        r = state.robots[rid]
        hb = {
            "tenant_id": "acme",
            "site_id": "bench",
            "event_id": "b",
            "occurred_at": now,
            "robot_id": rid,
            "fleet_id": "f1",
            "status": "IDLE",
            "battery": r["battery"],
            "seq": 2,
            "speed": 1.0,
            "pose": {"x": 0.0, "y": 0.0, "node_id": r["node"]},
        }
        base_ms.append(_timed(state, STATUS, hb, now)[0])
    free_ms: list[float] = []
    for rid, tid in list(holder.items()):
        now += 10
        step(state, TASK, _task(tid, 3, "ASSIGNED", now, robot=rid), now)
        ms, out = _timed(state, TASK, _task(tid, 4, "SUCCEEDED", now, robot=rid), now)
        busy_ms += ms
        decisions += len(out)
        if out:
            free_ms.append(ms)
    return {
        "ready": ready_ms,
        "free": free_ms,
        "base": base_ms,
        "decisions": decisions,
        "busy_ms": busy_ms,
        "queued": len(state.ready),
    }


def _batch(site: dict, robots: list[tuple[str, dict]], specs: list[dict]) -> dict[str, Any]:
    state = SiteState(config=DispatchConfig())
    for kind, e in robots:
        step(state, kind, e, T0)
    for j, spec in enumerate(specs):
        step(state, TASK, _task(f"t{j:05d}", 1, "CREATED", T0, spec), T0)
        step(state, TASK, _task(f"t{j:05d}", 2, "QUEUED", T0), T0)
    t = time.perf_counter()
    _, out = step(state, MAP, site, T0)  # the map arrives last: one full batch
    batch_s = time.perf_counter() - t
    model = CostModel(state.graph, state.config, T0)  # type: ignore[arg-type]
    robots_v = [robot_view(r) for r in state.robots.values()]
    # the same batch as above: every robot free, every task ready (before the map arrived)
    tasks_v = [task_view(task) for task in state.tasks.values()]
    table = model.table(robots_v, tasks_v)
    g = greedy(table)
    t = time.perf_counter()
    o = optimal(table)
    lsa_s = time.perf_counter() - t
    server, port = serve("127.0.0.1", 0)
    client = PlannerClient(f"127.0.0.1:{port}", timeout_s=30.0, breaker=CircuitBreaker("bench-planner"))
    try:
        t = time.perf_counter()
        remote = client.assign(site, robots_v, tasks_v, T0, state.config)
        rpc_s = time.perf_counter() - t
    finally:
        client.close()
        server.stop(0)
    return {
        "batch_s": batch_s,
        "batch_decisions": len(out),
        "greedy": g,
        "optimal": o,
        "remote": remote,
        "lsa_s": lsa_s,
        "rpc_s": rpc_s,
    }


def _row(name: str, value: float, unit: str, baseline: float | None, goal: str) -> dict[str, Any]:
    ratio = value / baseline if baseline else None
    return {"name": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio, "goal": goal}


def run() -> list[dict[str, Any]]:
    """Run the benchmark; returns result rows (name, value, unit, baseline, ratio, goal)."""
    site, robots, specs = workload()
    p = _phases(site, robots, specs)
    b = _batch(site, robots, specs)
    base_p50 = statistics.median(p["base"])
    greedy_travel = sum(a.travel_s for a in b["greedy"])
    remote_travel = sum(a.travel_s for a in b["remote"])
    greedy_cost = sum(a.cost for a in b["greedy"])
    remote_cost = sum(a.cost for a in b["remote"])
    goal = f"p99 < {GOAL_P99_MS:.0f} ms"
    return [
        _row("dispatch task ready->ASSIGN p50 (500 free)", _pct(p["ready"], 0.5), "ms", base_p50, "-"),
        _row("dispatch task ready->ASSIGN p99 (500 free)", _pct(p["ready"], 0.99), "ms", base_p50, goal),
        _row("dispatch robot free->ASSIGN p50 (1.5k queued)", _pct(p["free"], 0.5), "ms", base_p50, "-"),
        _row("dispatch robot free->ASSIGN p99 (1.5k queued)", _pct(p["free"], 0.99), "ms", base_p50, goal),
        _row(
            "dispatch decisions/s (incremental steps)",
            p["decisions"] / (p["busy_ms"] / 1000.0),
            "dec/s",
            None,
            "-",
        ),
        _row(
            "dispatch decisions/s (cold batch 500x2000)",
            b["batch_decisions"] / b["batch_s"],
            "dec/s",
            None,
            "-",
        ),
        _row("dispatch batch travel: planner vs greedy", remote_travel, "s", greedy_travel, "ratio <= 100%"),
        _row("dispatch batch cost: planner minus greedy", remote_cost - greedy_cost, "cost", None, "<= 0"),
        _row(
            "dispatch planner Assign round trip (500x2000)",
            b["rpc_s"] * 1000.0,
            "ms",
            b["lsa_s"] * 1000.0,
            "-",
        ),
    ]
