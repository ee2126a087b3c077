"""Detours: the shortest way round a contested node/lane (A* on the site graph), and applying one."""

from __future__ import annotations

import itertools
import math

from topologies.traffic import records
from topologies.traffic.detect import clashes_of
from topologies.traffic.graph import SiteView
from topologies.traffic.problems import Plan, route_out
from topologies.traffic.records import Output
from topologies.traffic.reservations import OPEN, plan_reservations
from topologies.traffic.state import SiteState, full_plan, set_plan

__all__ = ["apply_reroute", "clear_of_others", "detour"]


def _rejoin(model: SiteView, nodes: list[str], avoid_nodes: set[str], avoid_lanes: set[str]) -> int:
    """The index of the node where a detour rejoins the plan: just past the last node or lane to avoid."""
    g = 0
    for i, node in enumerate(nodes):
        if i and (node in avoid_nodes or node in model.nogo_nodes):
            g = i + 1
        if i:
            lane = model.lane_id(nodes[i - 1], node)
            if lane is not None and (lane in avoid_lanes or lane in model.nogo_lanes):
                g = max(g, i)
    return g


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
    """The robot's plan with a way round the given nodes/lanes (and no-go zones), if it saves time.

    The robot drives on until the decision reaches it (``latency_ms``): the detour leaves its plan at the
    first node it reaches after that (or where it is held, or stands until later), and the plan up to
    there is kept. It rejoins the plan right after the last node or lane to avoid, and the rest of the
    plan is kept too (shifted in time), so no stop on it is skipped; a detour that would skip a stop in
    between (the end of a spur: a pickup) is not taken. Nodes where other robots stand still are
    avoided; the rejoin node may be one only with ``goal_may_be_occupied`` (breaking a deadlock: the
    robot then waits at its door). The detour must arrive ``reroute_gain_ms`` before waiting would.
    """
    model = state.model
    entry = state.robots[robot_id]
    if model is None or entry.get("status") in {"OFFLINE", "ERROR"}:
        return None
    plan, current = full_plan(entry)
    cfg = state.config
    horizon = now + cfg.latency_ms
    hold = entry.get("hold")
    at, last = 0, len(hold["prefix"]) - 1 if hold else len(plan) - 1
    while at < last and plan[at][1] < horizon:
        at += 1
    kept, plan = plan[:at], plan[at:]
    if len(plan) < 2:
        return None
    nodes = [n for n, _ in plan]
    g = _rejoin(model, nodes, avoid_nodes, avoid_lanes)
    if g == 0 or g >= len(nodes) or any(n in model.tips for n in nodes[1:g]):
        return None  # nothing to avoid ahead, or a stop on the way would be skipped
    # where to rejoin: any node from g on up to the next stop; the one that gets to the goal first
    last = next((k for k in range(g, len(nodes)) if nodes[k] in model.tips), len(nodes) - 1)
    start, t0 = plan[0]
    t_goal = plan[-1][1]
    budget_ms = math.inf if wait_ms >= OPEN else max(0, t_goal - t0) + wait_ms - cfg.reroute_gain_ms
    if budget_ms <= 0:
        return None
    on_node = state.table.on_node
    seen: dict[str, bool] = {}

    def occupied(node: str) -> bool:  # another robot stands there until further notice
        hit = seen.get(node)
        if hit is None:
            hit = seen[node] = any(r.open and not r.booking and r.robot_id != robot_id for r in on_node(node))
        return hit

    index = {nodes[k]: k for k in range(last, g - 1, -1)}  # the first visit of each candidate
    targets = set(index) if goal_may_be_occupied else {n for n in index if not occupied(n)}
    best: tuple[float, int, list[str], float] | None = None
    for target, path, length in model.reach(
        start,
        targets,
        avoid_nodes=(avoid_nodes - {start}) | (model.tips - targets),
        avoid_lanes=avoid_lanes,
        max_length=budget_ms / 1000 * cfg.speed_mps,
        blocked=occupied,
    ):
        if best is not None and length / cfg.speed_mps * 1000 >= best[0]:
            break  # nearest first: no farther rejoin node can arrive earlier
        k = index[target]
        drive = sum(model.drive_ms(a, b, cfg.speed_mps) for a, b in itertools.pairwise(path))
        arrive = drive + (t_goal - plan[k][1])
        if best is None or arrive < best[0]:
            best = (arrive, k, path, length)
    if best is None:
        return None
    _arrive, k, path, length = best
    if path == nodes[: k + 1]:
        return None  # nothing to avoid on the way: not a detour
    t0 = max(t0, now)
    new: Plan = [*kept, (start, t0)]
    t = float(t0)
    for a, b in itertools.pairwise(path):
        t += model.drive_ms(a, b, cfg.speed_mps)
        new.append((b, round(t)))
    if t - t0 + t_goal - plan[k][1] > budget_ms:
        return None
    shift = round(t) - plan[k][1]
    new.extend((n, eta + shift) for n, eta in plan[k + 1 :])
    return new, current, length


def clear_of_others(state: SiteState, robot_id: str, found: tuple[Plan, bool, float]) -> bool:
    """Whether a detour's plan, started within ``latency_ms`` and stood at its end, clashes with no other
    robot's reservations (a detour that only trades one conflict for another is not taken)."""
    cfg = state.config
    plan, _current, _length = found
    mine = plan_reservations(robot_id, plan, state.model, cfg, spread=cfg.latency_ms, stay=cfg.stand_ms)
    return not clashes_of(state.table, robot_id, cfg, mine)


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
    if entry.get("hold"):  # it stands (or will) at its hold node: the new plan starts there
        entry["passed"] = None
    entry["hold"] = None
    set_plan(entry, plan, current)
    entry["go_by"] = now + state.config.latency_ms  # a held robot starts when the REROUTE reaches it
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
