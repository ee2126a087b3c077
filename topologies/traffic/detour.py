"""Detours: the shortest way round a contested node/lane (A* on the site graph), and applying one."""

from __future__ import annotations

import itertools
import math

from topologies.traffic import records
from topologies.traffic.problems import Plan, route_out
from topologies.traffic.records import Output
from topologies.traffic.reservations import OPEN
from topologies.traffic.state import SiteState, full_plan

__all__ = ["apply_reroute", "detour"]


def detour(
    state: SiteState,
    robot_id: str,
    avoid_nodes: set[str],
    avoid_lanes: set[str],
    wait_ms: float,
    now: int,
    *,
    goal_may_be_occupied: bool = False,
) -> tuple[Plan, bool, float] | None:
    """A plan from where the robot is to its goal avoiding the given nodes/lanes, if it saves time.

    The robot is taken to be at the last node of its plan it should have reached by ``now`` (or on its
    way to its first node). Nodes where other robots stand still are avoided too; with
    ``goal_may_be_occupied`` (breaking a deadlock) the goal is allowed even so: the robot then holds
    before it until its occupant leaves. The detour must arrive ``reroute_gain_ms`` before waiting would.
    """
    model = state.model
    entry = state.robots[robot_id]
    if model is None or entry.get("status") in {"OFFLINE", "ERROR"}:
        return None
    plan, current = full_plan(entry)
    at, last = 0, len(entry["hold"]["prefix"]) - 1 if entry.get("hold") else len(plan) - 1
    while at < last and plan[at + 1][1] <= now:
        at += 1
    if at:
        plan, current = plan[at:], True
    if len(plan) < 2:
        return None
    (start, t0), (goal, t_goal) = plan[0], plan[-1]
    cfg = state.config
    budget_ms = math.inf if wait_ms >= OPEN else max(0, t_goal - t0) + wait_ms - cfg.reroute_gain_ms
    if budget_ms <= 0:
        return None
    on_node = state.table.on_node

    def occupied(node: str) -> bool:  # another robot stands there until further notice
        return any(r.open and r.robot_id != robot_id for r in on_node(node))

    if not goal_may_be_occupied and occupied(goal):
        return None
    found = model.shortest_path(
        start,
        goal,
        avoid_nodes=avoid_nodes - {start},
        avoid_lanes=avoid_lanes,
        max_length=budget_ms / 1000 * cfg.speed_mps,
        blocked=occupied,
    )
    if found is None:
        return None
    path, length = found
    if path == [n for n, _ in plan]:
        return None  # nothing to avoid on the way: not a detour
    t0 = max(t0, now)
    new: Plan = [(start, t0)]
    t = float(t0)
    for a, b in itertools.pairwise(path):
        t += model.length(a, b) / cfg.speed_mps * 1000 + cfg.dwell_ms
        new.append((b, round(t)))
    if t - t0 > budget_ms:
        return None  # the dwell at each node made it slower than waiting
    return new, current, length


def apply_reroute(
    state: SiteState,
    robot_id: str,
    found: tuple[Plan, bool, float],
    cid: str,
    now: int,
    out: list[Output],
    reason: str,
) -> None:
    plan, current, length = found
    entry = state.robots[robot_id]
    if current:
        entry["node"] = plan[0][0]
        entry["seen"] = plan[0][1]
    entry["route"] = [list(w) for w in route_out(plan, current)] if current else [list(w) for w in plan]
    entry["hold"] = None
    nodes = [n for n, _ in plan]
    if entry.get("last_reroute") != [cid, nodes]:
        entry["last_reroute"] = [cid, nodes]
        out.append(
            records.decision(
                entry,
                kind="REROUTE",
                route=route_out(plan, current),
                occurred_at=now,
                conflict=cid,
                reason=reason,
                cost=round(length, 3),
            )
        )
    state.reserve(robot_id)
    state.touch(robot_id)
