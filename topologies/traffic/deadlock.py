"""Deadlocks: cycles of the wait-for graph of held robots, found and broken by rerouting one member."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

from topologies.traffic import records
from topologies.traffic.detect import find_cycle
from topologies.traffic.detour import apply_reroute, detour
from topologies.traffic.problems import Plan, Problem, emit_alert, emit_conflict, place_hold
from topologies.traffic.records import Output
from topologies.traffic.reservations import OPEN, Reservation
from topologies.traffic.state import (
    STATIONARY,
    HoldTerms,
    SiteState,
    Wait,
    full_plan,
    hold_of,
    waiting_to_start,
)

__all__ = ["break_deadlock", "hold_at", "is_clear", "scan_deadlocks", "step_aside"]

#: How many lanes away a robot may step aside to make room in a deadlock.
_ASIDE_HOPS = 4
#: The kind of wait of a robot that stepped aside: it yields to that robot (``[robot_id, AFTER, ""]``).
AFTER = "after"
#: The kind of wait on a node another robot has booked (``Reservation.booking``).
BOOKED = "booked"


def waited_on(state: SiteState, wait: Wait) -> list[Reservation]:
    """The blocker's reservations a wait is about: on the node or lane, booked ones for a ``booked`` wait
    and the others for a ``node`` / ``lane`` one."""
    robot_id, kind, key = wait
    lane, booked = kind == "lane", kind == BOOKED
    return [r for r in state.table.of(robot_id) if r.key == key and r.lane == lane and r.booking == booked]


def is_clear(state: SiteState, wait: Wait, now: int) -> bool:
    _robot_id, kind, key = wait
    if kind == AFTER:
        return True  # not a wait by itself: the resume check decides (see ``step_aside``)
    if kind == "zone":
        return state.model is None or key not in state.model.nogo_zones
    horizon = now - state.config.clear_ms
    return all(r.end <= horizon for r in waited_on(state, wait))


def _blocks_indefinitely(state: SiteState, wait: Wait, now: int) -> bool:
    """Whether a wait can only end by the blocker moving on: it stands on the node/lane until further
    notice, or it is held and reaches the node/lane only after it resumes. A wait on a robot that passes
    the node/lane on its way ends by itself as time passes, so it is not a wait-for edge."""
    robot_id, kind, _key = wait
    if kind in ("zone", AFTER) or is_clear(state, wait, now):
        return False
    mine = waited_on(state, wait)
    return any(r.open for r in mine) or (robot_id in state.held and not mine)


def _waits_on(state: SiteState, now: int) -> Callable[[str], list[str]]:
    """The wait-for edges, evaluated lazily: the robots a held robot waits on indefinitely. Each robot's
    edges are computed once: make a new one after the state changed."""
    known: dict[str, list[str]] = {}

    def edges(rid: str) -> list[str]:
        found = known.get(rid)
        if found is None:
            entry = state.robots.get(rid)
            hold = entry.get("hold") if entry else None
            found = known[rid] = (
                [w[0] for w in hold["waits"] if _blocks_indefinitely(state, w, now)] if hold else []
            )
        return found

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
            edges = _waits_on(state, now)  # breaking it changed the graph
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
    node = hold_of(state.robots[robot_id])["node"]
    marker = Reservation(robot_id, node, False, now, now, node, node, 0)
    problem = Problem(cid, "DEADLOCK", marker, None, None, now, now, tuple(cycle))
    ring = " -> ".join([*cycle, cycle[0]])
    # First a member that can get out of the way for good, then one that must wait at its goal's door.
    for occupied_goal_ok, victim in itertools.product(
        (False, True), state.by_rank(cycle, highest_first=False)
    ):
        hold = hold_of(state.robots[victim])
        avoid_nodes = {w[2] for w in hold["waits"] if w[1] == "node"}
        avoid_lanes = {w[2] for w in hold["waits"] if w[1] == "lane"}
        if occupied_goal_ok:
            avoid_nodes.discard(hold["pending"][-1][0])
        found = detour(
            state, victim, avoid_nodes, avoid_lanes, OPEN, now, goal_may_be_occupied=occupied_goal_ok
        )
        if found is None:
            continue
        detail = f"wait-for cycle {ring}; rerouted {victim}"
        emit_conflict(state, problem, "REROUTE", victim, now, out, detail)
        apply_reroute(state, victim, found, cid, now, out, f"deadlock broken: {detail}")
        return [victim]
    # Else a member that can step aside: off the way of those waiting on it, until they have passed.
    for victim in state.by_rank(cycle, highest_first=False):
        aside = step_aside(state, victim, cycle, now)
        if aside is None:
            continue
        plan, current, x, waits = aside
        detail = f"wait-for cycle {ring}; {victim} steps aside to {x}"
        emit_conflict(state, problem, "REROUTE", victim, now, out, detail)
        apply_reroute(state, victim, (plan, current, 0.0), cid, now, out, f"deadlock broken: {detail}")
        hold_at(state, victim, x, waits, cid, now, out, f"let {', '.join(w[0] for w in waits)} pass")
        return [victim]
    if any(now - int(hold_of(state.robots[rid])["since"]) < state.config.deadlock_grace_ms for rid in cycle):
        return []  # tried again at the next scan: a member may have a way out by then
    detail = f"wait-for cycle {ring}; no member has a detour"
    emit_conflict(state, problem, "NONE", None, now, out, detail)
    emit_alert(state, cid, robot_id, f"deadlock at site {state.site_id}: {detail}", now, out)
    return []


def step_aside(
    state: SiteState, victim: str, cycle: list[str], now: int
) -> tuple[Plan, bool, str, list[Wait]] | None:
    """A way for a held robot to make room for those in ``cycle`` that wait on it: to the nearest node
    off their ways (within ``_ASIDE_HOPS`` lanes) that nobody needs while it waits there, then on its
    way again (back through its hold node only if that is where its route ends). On the way there it
    may cross their ways ahead of them (they are held: they start once the decision reaches them).

    Returns ``(new plan, first is current, the node aside, the waits there)``: it holds there, yielding
    to them, until its own way on is clear.
    """
    model = state.model
    entry = state.robots[victim]
    hold = entry.get("hold")
    if model is None or not hold or entry.get("status") in STATIONARY or waiting_to_start(entry):
        return None  # (a robot that has not set off waits where it is out of the way)
    waiting = sorted(
        {rid for rid in cycle if rid != victim for w in hold_of(state.robots[rid])["waits"] if w[0] == victim}
    )
    if not waiting:
        return None
    cfg = state.config
    start_at = now + cfg.latency_ms
    their: dict[str, int] = {}  # node -> the earliest they can be there
    for rid in waiting:
        h = hold_of(state.robots[rid])
        pending = [(n, int(t)) for n, t in h["pending"]]
        t_rid = start_at
        their[pending[0][0]] = min(their.get(pending[0][0], start_at), start_at)
        for (a, _ta), (b, _tb) in itertools.pairwise(pending):
            t_rid += round(model.drive_ms(a, b, cfg.speed_mps)) if a in model and b in model else 0
            their[b] = min(their.get(b, t_rid), t_rid)
    plan, current = full_plan(entry)
    j = len(hold["prefix"]) - 1
    here, t_here = plan[j]
    t0 = max(t_here, start_at)
    margin, dwell = cfg.node_margin_ms, cfg.dwell_ms
    on_node = state.table.on_node
    # Dijkstra in time from the hold node, at most _ASIDE_HOPS lanes
    best: dict[str, float] = {here: float(t0)}
    parent: dict[str, str] = {}
    heap: list[tuple[float, int, str]] = [(float(t0), 0, here)]
    pockets: list[tuple[float, str]] = []
    while heap:
        t, hops, u = heapq.heappop(heap)
        if t > best.get(u, math.inf):
            continue
        if u != here and u not in their:
            pockets.append((t, u))
        if hops >= _ASIDE_HOPS:
            continue
        for v in model.successors(u):
            tv = t + model.drive_ms(u, v, cfg.speed_mps)
            if v in model.nogo_nodes or (v in their and tv + dwell + 2 * margin > their[v]):
                continue  # not through their way unless well ahead of them
            if tv < best.get(v, math.inf):
                best[v], parent[v] = tv, u
                heapq.heappush(heap, (tv, hops + 1, v))
    rejoin = j + 1 if j + 1 < len(plan) else j  # the next node of its route (or its goal again)
    for t_x, x in sorted(pockets):
        way = [x]
        while way[-1] != here:
            way.append(parent[way[-1]])
        way.reverse()
        timed: Plan = [(here, t0), *((b, round(best[b])) for b in way[1:])]
        arrive = round(t_x) - margin
        until = arrive + cfg.stand_ms + dwell + margin
        if any(
            r.robot_id != victim
            and not r.booking
            and r.end > best[n] - margin
            and r.start < (until if n == x else best[n] + dwell + margin)
            for n in way[1:]
            for r in on_node(n)
        ):
            continue  # someone else needs the way there, or the pocket, meanwhile
        back = model.shortest_path(x, plan[rejoin][0], avoid_nodes=model.tips - {plan[rejoin][0]})
        if back is None:
            continue
        t = float(timed[-1][1])
        for a, b in itertools.pairwise(back[0]):
            t += model.drive_ms(a, b, cfg.speed_mps)
            timed.append((b, round(t)))
        shift = round(t) - plan[rejoin][1]
        new = [*plan[:j], *timed, *((n, eta + shift) for n, eta in plan[rejoin + 1 :])]
        # re-checked whenever one of them changes plan; the resume check finds what it waits for
        return new, current, x, [[rid, AFTER, ""] for rid in waiting]
    return None


def hold_at(
    state: SiteState,
    robot_id: str,
    node: str,
    waits: list[Wait],
    cid: str,
    now: int,
    out: list[Output],
    reason: str,
) -> None:
    """Hold a robot at the first visit of ``node`` on its plan, yielding to the robots it waits for."""
    entry = state.robots[robot_id]
    plan, current = full_plan(entry)
    j = next(i for i, (n, _) in enumerate(plan) if n == node and i > 0)
    hold: HoldTerms = {"since": now, "waits": waits, "yield_to": sorted({w[0] for w in waits})}
    place_hold(state, robot_id, plan, current, j, hold, cid, now, out, reason)
