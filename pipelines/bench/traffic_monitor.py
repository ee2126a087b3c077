"""Benchmark: the traffic monitor's pure step (robots that plan their own traffic, e.g. Open-RMF fleets)
against a naive all-pairs check, in the same run.

One generated site: a 100 x 100 grid (10,000 nodes, 2 m lanes). For 100, 500, 1,000 and 2,000 robots
a small closed-loop fleet drives on it: each robot follows its route (10-24 waypoints at 1 m/s), obeys
the HOLD / RESUME / REROUTE decisions the step returns, takes a new random goal when it arrives, and
reports a RobotStatus about once a second of event time. Only the ``step(site, STATUS, status, now)`` calls are
timed (reservation update, detection, resolution with A* detours, resumes, output records).

A second stream, ``replan storm``, is adversarial: robots ignore every decision and re-plan a random
route on each update, so most updates carry a conflict (the worst case for resolution cost).

Baseline: the same statuses checked naively, every reservation of the updating robot against every
reservation of every other robot (detection only, no resolution), which is what the per-node/per-lane
index avoids. Goal: >= 5,000 updates/s at 1,000 robots, cost growing slower than the robot count.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from schemas.sitegraph import graph_for
from topologies.traffic import (
    DECISIONS,
    MAP,
    STATUS,
    SiteView,
    TrafficConfig,
    clash_between,
    new_site,
    plan_reservations,
    step,
)

__all__ = ["grid_site", "run"]

logger = logging.getLogger(__name__)

T0 = 1_767_225_600_000
SIDE = 100
SPACING = 2.0
SIZES = (100, 500, 1_000, 2_000)
UPDATES = 5_000
NAIVE_UPDATES = 300
WARMUP_S = 30
STORM_UPDATES = 2_000
GOAL_RATE = 5_000.0
HOP_MS = 2_000


def grid_site(side: int = SIDE) -> dict[str, Any]:
    """A SiteMap dict: a ``side`` x ``side`` grid of bidirectional lanes, node ``n{x}_{y}``."""
    nodes = [
        {"id": f"n{x}_{y}", "x": x * SPACING, "y": y * SPACING, "kind": "WAYPOINT"}
        for x in range(side)
        for y in range(side)
    ]
    lanes = []
    for x in range(side):
        for y in range(side):
            if x + 1 < side:
                lanes.append({"id": f"h{x}_{y}", "from_node": f"n{x}_{y}", "to_node": f"n{x + 1}_{y}"})
            if y + 1 < side:
                lanes.append({"id": f"v{x}_{y}", "from_node": f"n{x}_{y}", "to_node": f"n{x}_{y + 1}"})
    return {
        "event_id": "map",
        "tenant_id": "bench",
        "site_id": "big",
        "occurred_at": T0,
        "version": 1,
        "name": "grid",
        "nodes": nodes,
        "lanes": lanes,
        "zones": [],
        "chargers": [],
    }


def _route(rng: random.Random, x: int, y: int, now: int) -> tuple[list[dict[str, Any]], tuple[int, int]]:
    """An L-shaped shortest route from (x, y) to a random node 5..12 hops away on each axis."""
    gx = min(SIDE - 1, max(0, x + rng.choice((-1, 1)) * rng.randint(5, 12)))
    gy = min(SIDE - 1, max(0, y + rng.choice((-1, 1)) * rng.randint(5, 12)))
    cells: list[tuple[int, int]] = []
    cx, cy = x, y
    order = (0, 1) if rng.random() < 0.5 else (1, 0)
    for axis in order:
        while (cx, cy)[axis] != (gx, gy)[axis]:
            if axis == 0:
                cx += 1 if gx > cx else -1
            else:
                cy += 1 if gy > cy else -1
            cells.append((cx, cy))
    start = now + rng.randint(0, 1_000)
    route = [{"node_id": f"n{a}_{b}", "eta": start + HOP_MS * (k + 1)} for k, (a, b) in enumerate(cells)]
    return route, (cells[-1] if cells else (x, y))


def _status(
    robot: str, cell: tuple[int, int], route: list[dict[str, Any]], now: int, seq: int
) -> dict[str, Any]:
    return {
        "event_id": f"{robot}-{seq}",
        "tenant_id": "bench",
        "site_id": "big",
        "occurred_at": now,
        "robot_id": robot,
        "fleet_id": "f",
        "status": "MOVING",
        "battery": 0.8,
        "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": f"n{cell[0]}_{cell[1]}"},
        "speed": 1.0,
        "task_id": f"task-{robot}",
        "route": route,
        "seq": seq,
        "last_seen_at": now,
        "reason": "CHANGE",
    }


def _storm(count: int, robots: int, seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Initial statuses of every robot, then ``count`` updates that ignore decisions (random re-plans)."""
    rng = random.Random(seed)
    cells = rng.sample([(x, y) for x in range(SIDE) for y in range(SIDE)], robots)
    initial = []
    where: dict[str, tuple[int, int]] = {}
    for i, cell in enumerate(cells):
        robot = f"r{i:04d}"
        route, _goal = _route(rng, cell[0], cell[1], T0)
        initial.append(_status(robot, cell, route, T0, 1))
        where[robot] = cell
    updates = []
    seq = 1
    now = T0
    step_ms = max(1, 1_000 // robots)
    for _ in range(count):
        now += step_ms
        seq += 1
        robot = f"r{rng.randrange(robots):04d}"
        x, y = where[robot]
        route, goal = _route(rng, x, y, now)
        updates.append(_status(robot, (x, y), route, now, seq))
        where[robot] = goal if rng.random() < 0.2 else (x, y)
    return initial, updates


class _Fleet:
    """Robots that follow their routes and obey decisions; they report where they are and what is left."""

    def __init__(self, robots: int, seed: int) -> None:
        self.rng = random.Random(seed)
        cells = self.rng.sample([(x, y) for x in range(SIDE) for y in range(SIDE)], robots)
        self.node = {f"r{i:04d}": f"n{x}_{y}" for i, (x, y) in enumerate(cells)}
        self.plan: dict[str, list[tuple[str, int]]] = {}
        self.hold_at: dict[str, str | None] = dict.fromkeys(self.node)
        self.seq = dict.fromkeys(self.node, 0)

    def _new_route(self, robot: str, now: int) -> None:
        x, y = (int(v) for v in self.node[robot][1:].split("_"))
        route, _ = _route(self.rng, x, y, now)
        self.plan[robot] = [(w["node_id"], w["eta"]) for w in route]

    def status(self, robot: str, now: int) -> dict[str, Any]:
        plan = self.plan.get(robot) or []
        hold = self.hold_at[robot]
        while plan and plan[0][1] <= now and (hold is None or self.node[robot] != hold):
            self.node[robot] = plan.pop(0)[0]
        if not plan and hold is None:
            self._new_route(robot, now)
            plan = self.plan[robot]
        self.plan[robot] = plan
        self.seq[robot] += 1
        x, y = (int(v) for v in self.node[robot][1:].split("_"))
        route = [{"node_id": n, "eta": t} for n, t in plan]
        return _status(robot, (x, y), route, now, self.seq[robot])

    def obey(self, decision: dict[str, Any]) -> None:
        robot = decision["robot_id"]
        route = [(w["node_id"], w["eta"]) for w in decision["route"]]
        if decision["kind"] == "HOLD":
            self.hold_at[robot] = route[-1][0] if route else self.node[robot]
        else:  # RESUME / REROUTE: drive the new route
            self.hold_at[robot] = None
            self.plan[robot] = route


def _closed_loop(site: dict[str, Any], robots: int, count: int, seed: int) -> tuple[dict, list[dict]]:
    """Run the fleet against the step; returns the step timings and every status fed (for the baseline)."""
    fleet = _Fleet(robots, seed)
    state = new_site(TrafficConfig())
    step(state, MAP, site, T0)
    fed: list[dict[str, Any]] = []
    latest: dict[str, dict[str, Any]] = {}
    ids = sorted(fleet.node)
    for robot in ids:  # everyone reports once
        record = latest[robot] = fleet.status(robot, T0)
        for o in step(state, STATUS, record, T0)[1]:
            if o.topic == DECISIONS:
                fleet.obey(o.value)
    lat: list[float] = []
    outputs = 0
    now = T0
    tick = max(1, 1_000 // robots)
    warmup = WARMUP_S * 1_000 // tick
    clock = time.perf_counter
    for i in range(warmup + count):
        now += tick
        record = fleet.status(ids[i % robots], now)
        t = clock()
        _, out = step(state, STATUS, record, now)
        if i >= warmup:
            lat.append(clock() - t)
            outputs += len(out)
            fed.append(record)
        else:
            latest[record["robot_id"]] = record
        for o in out:
            if o.topic == DECISIONS:
                fleet.obey(o.value)
    total = sum(lat)
    timings = {
        "rate": count / total,
        "p99": _p99(lat),
        "mean": total / count,
        "outputs": outputs,
        "held": len(state.held),
    }
    # for the baseline: everyone's last status before the timed window, then the timed statuses
    return timings, [*latest.values(), *fed]


def _p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _timed_step(site: dict[str, Any], initial: list[dict[str, Any]], updates: list[dict[str, Any]]) -> dict:
    state = new_site(TrafficConfig())
    step(state, MAP, site, T0)
    for record in initial:
        step(state, STATUS, record, record["occurred_at"])
    lat: list[float] = []
    outputs = 0
    clock = time.perf_counter
    t_all = clock()
    for record in updates:
        t = clock()
        _, out = step(state, STATUS, record, record["occurred_at"])
        lat.append(clock() - t)
        outputs += len(out)
    total = clock() - t_all
    return {
        "rate": len(updates) / total,
        "p99": _p99(lat),
        "mean": total / len(updates),
        "outputs": outputs,
        "held": len(state.held),
    }


def _timed_naive(site: dict[str, Any], initial: list[dict[str, Any]], updates: list[dict[str, Any]]) -> dict:
    """All-pairs detection: no index, every reservation against every other robot's reservations."""
    config = TrafficConfig()
    model = SiteView(graph_for(site, config.speed_mps))
    plans: dict[str, list] = {}

    def reserve(record: dict[str, Any]) -> list:
        plan = [(record["pose"]["node_id"], record["occurred_at"])]
        plan += [(w["node_id"], w["eta"]) for w in record["route"]]
        return plan_reservations(record["robot_id"], plan, model, config)

    for record in initial:
        plans[record["robot_id"]] = reserve(record)
    lat: list[float] = []
    found = 0
    clock = time.perf_counter
    t_all = clock()
    for record in updates:
        t = clock()
        rid = record["robot_id"]
        mine = plans[rid] = reserve(record)
        for other_id, others in plans.items():
            if other_id == rid:
                continue
            for a in mine:
                for b in others:
                    if a.lane == b.lane and a.key == b.key and clash_between(a, b, config) is not None:
                        found += 1
        lat.append(clock() - t)
    total = clock() - t_all
    return {"rate": len(updates) / total, "p99": _p99(lat), "mean": total / len(updates), "found": found}


def run() -> list[dict]:
    site = grid_site()
    rows: list[dict] = []
    means: dict[int, float] = {}
    for robots in SIZES:
        got, fed = _closed_loop(site, robots, UPDATES, seed=robots)
        naive = _timed_naive(
            site, fed[:robots], fed[robots : robots + max(50, NAIVE_UPDATES * 500 // robots)]
        )
        means[robots] = got["mean"]
        logger.info(
            "traffic %d robots: %.0f updates/s, p99 %.0f us, %d outputs, %d held at end; naive %.0f/s",
            robots,
            got["rate"],
            got["p99"] * 1e6,
            got["outputs"],
            got["held"],
            naive["rate"],
        )
        goal = ">= 5,000/s" if robots == 1_000 else "-"
        rows.append(
            {
                "name": f"traffic.monitor step updates/s @{robots} robots",
                "value": got["rate"],
                "unit": "updates/s",
                "baseline": naive["rate"],
                "ratio": got["rate"] / naive["rate"],
                "goal": goal,
            }
        )
        rows.append(
            {
                "name": f"traffic.monitor step p99 @{robots} robots",
                "value": got["p99"] * 1e6,
                "unit": "us",
                "baseline": naive["p99"] * 1e6,
                "ratio": got["p99"] / naive["p99"],
                "goal": "-",
            }
        )
    small, large = SIZES[0], SIZES[-1]
    growth = means[large] / means[small]
    rows.append(
        {
            "name": f"traffic.monitor step cost growth {small}->{large} robots",
            "value": growth,
            "unit": "x",
            "baseline": large / small,
            "ratio": growth / (large / small),
            "goal": f"< {large // small}x (robots grew {large // small}x)",
        }
    )
    initial, updates = _storm(STORM_UPDATES, 1_000, seed=1)
    storm = _timed_step(site, initial, updates)
    naive = _timed_naive(site, initial, updates[:NAIVE_UPDATES])
    logger.info("traffic replan storm: %.0f updates/s, %d outputs", storm["rate"], storm["outputs"])
    rows.append(
        {
            "name": "traffic.monitor step replan storm @1000 robots",
            "value": storm["rate"],
            "unit": "updates/s",
            "baseline": naive["rate"],
            "ratio": storm["rate"] / naive["rate"],
            "goal": "worst case, for reference",
        }
    )
    return rows
