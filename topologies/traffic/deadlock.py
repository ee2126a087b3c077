"""Deadlocks: cycles of the wait-for graph of held robots, found and broken by rerouting one member."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from topologies.traffic import records
from topologies.traffic.detect import find_cycle
from topologies.traffic.detour import apply_reroute, detour
from topologies.traffic.problems import Problem, emit_alert, emit_conflict
from topologies.traffic.records import Output
from topologies.traffic.reservations import OPEN, Reservation
from topologies.traffic.state import SiteState

__all__ = ["break_deadlock", "is_clear", "scan_deadlocks"]


def is_clear(state: SiteState, wait: list[str], now: int) -> bool:
    robot_id, kind, key = wait
    if kind == "zone":
        return state.model is None or key not in state.model.nogo_zones
    lane = kind == "lane"
    horizon = now - state.config.clear_ms
    return all(r.end <= horizon for r in state.table.of(robot_id) if r.key == key and r.lane == lane)


def _blocks_indefinitely(state: SiteState, wait: list[str], now: int) -> bool:
    """Whether a wait can only end by the blocker moving on: it stands on the node/lane until further
    notice, or it is held and reaches the node/lane only after it resumes. A wait on a robot that passes
    the node/lane on its way ends by itself as time passes, so it is not a wait-for edge."""
    robot_id, kind, key = wait
    if kind == "zone" or is_clear(state, wait, now):
        return False
    lane = kind == "lane"
    mine = [r for r in state.table.of(robot_id) if r.key == key and r.lane == lane]
    return any(r.open for r in mine) or (robot_id in state.held and not mine)


def _waits_on(state: SiteState, now: int) -> Callable[[str], list[str]]:
    """The wait-for edges, evaluated lazily: the robots a held robot waits on indefinitely."""

    def edges(rid: str) -> list[str]:
        entry = state.robots.get(rid)
        hold = entry.get("hold") if entry else None
        if not hold:
            return []
        return [w[0] for w in hold["waits"] if _blocks_indefinitely(state, w, now)]

    return edges


def scan_deadlocks(state: SiteState, now: int, out: list[Output]) -> list[str]:
    """Search the whole wait-for graph for cycles and break them; returns the robots rerouted.

    Holds check for a cycle when their waits change; this periodic scan also catches a cycle that
    formed without any wait changing (a blocker that stopped for good after the wait was recorded).
    """
    edges = _waits_on(state, now)
    changed: list[str] = []
    seen: set[str] = set()
    for rid in sorted(state.held):
        if rid in seen or rid not in state.held:
            continue
        cycle = find_cycle(edges, rid, state.config.deadlock_max_robots)
        if cycle is not None:
            seen.update(cycle)
            changed.extend(_break_cycle(state, cycle, rid, now, out))
    return changed


def break_deadlock(state: SiteState, robot_id: str, now: int, out: list[Output]) -> list[str]:
    cycle = find_cycle(_waits_on(state, now), robot_id, state.config.deadlock_max_robots)
    if cycle is None:
        return []
    return _break_cycle(state, cycle, robot_id, now, out)


def _break_cycle(state: SiteState, cycle: list[str], robot_id: str, now: int, out: list[Output]) -> list[str]:
    cid = records.conflict_id("DEADLOCK", cycle, "", now, state.config.bucket_ms)
    if cid in state.emitted:
        return []  # this cycle was handled in this time bucket already
    node = state.robots[robot_id]["hold"]["node"]
    marker = Reservation(robot_id, node, False, now, now, node, node, 0)
    problem = Problem(cid, "DEADLOCK", marker, None, None, now, now, tuple(cycle))
    # First a member that can get out of the way for good, then one that must wait at its goal's door.
    for occupied_goal_ok, victim in itertools.product(
        (False, True), state.by_rank(cycle, highest_first=False)
    ):
        hold = state.robots[victim]["hold"]
        avoid_nodes = {w[2] for w in hold["waits"] if w[1] == "node"}
        avoid_lanes = {w[2] for w in hold["waits"] if w[1] == "lane"}
        pending = hold["pending"]
        if len(pending) > 1 and state.model is not None:  # leave by another way than towards the blocker
            first = state.model.lane_of.get((pending[0][0], pending[1][0]))
            if first is not None:
                avoid_lanes.add(first)
        found = detour(
            state, victim, avoid_nodes, avoid_lanes, OPEN, now, goal_may_be_occupied=occupied_goal_ok
        )
        if found is None:
            continue
        detail = f"wait-for cycle {' -> '.join([*cycle, cycle[0]])}; rerouted {victim}"
        emit_conflict(state, problem, "REROUTE", victim, now, out, detail)
        apply_reroute(state, victim, found, cid, now, out, f"deadlock broken: {detail}")
        return [victim]
    detail = f"wait-for cycle {' -> '.join([*cycle, cycle[0]])}; no member has a detour"
    emit_conflict(state, problem, "NONE", None, now, out, detail)
    emit_alert(state, cid, robot_id, f"deadlock at site {state.site_id}: {detail}", now, out)
    return []
