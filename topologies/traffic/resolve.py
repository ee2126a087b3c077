"""Conflict resolution by priority: HOLD at a safe node, RESUME when clear, REROUTE when cheaper.

Rules (all deterministic, no clock; ``now`` is the event time of the input being processed):

- **Who yields.** A robot that occupies a node until further notice (held, OFFLINE, ERROR) never
  yields: the moving robot does. In a FOLLOWING violation the follower (later lane entry) yields.
  Otherwise the robot of lower task priority yields, ties to the larger robot_id.
- **REROUTE** the yielding robot when the expected wait (blocker's window end + ``clear_ms`` minus its
  own arrival) is at least ``reroute_min_wait_ms`` and a detour (A* on the site graph avoiding the
  contested node/lane, no-go zones and stationary robots) arrives at least ``reroute_gain_ms`` earlier
  and clashes with no other robot.
- **HOLD** it otherwise, at the *safe node* (``placement``): the last node of its plan before the
  contested node (for a lane, at or before the lane's entry node) that it reaches no earlier than
  ``latency_ms`` from now (it drives on until the decision reaches it), that the robot it waits for does
  not pass afterwards and that nobody else passes while it waits. While held it reserves its prefix and
  then the hold node with an open end; its waits are recorded ``[robot_id, "node"|"lane"|"zone", key]``.
  The HOLD's route is the way to the hold node, which is its last entry (empty: stay where you are).
- **RESUME** (anti-flap): a hold sticks until every blocker's reservations on the contested node/lane
  ended at least ``clear_ms`` ago *and* the pending plan, shifted to start now, has no conflict that the
  held robot would lose. Otherwise the hold stays and its waits become the new blockers. A robot that
  has not set off skips the first condition: it goes as soon as its way is clear (``resume``).
- **DEADLOCK**: after every change of waits the wait-for graph is searched for a cycle through the
  robot; one is broken by rerouting its lowest-ranked member that has a detour.
- If the yielding robot can neither detour nor hold, the other robot is held instead; failing that, both
  are tried again at a node that other robots reach only ``latency_ms + reroute_min_wait_ms`` or more
  after it (they meet it standing there and give way in their turn); failing that the conflict is
  emitted with resolution NONE and an Alert CONFLICT_UNRESOLVED is raised.
Each conflict is emitted once per ``conflict_id`` (remembered for ``conflict_ttl_ms``).
"""

from __future__ import annotations

import logging

from topologies.traffic.deadlock import BOOKED, break_deadlock
from topologies.traffic.detour import apply_reroute, clear_of_others, detour
from topologies.traffic.placement import hold_index, yielder
from topologies.traffic.problems import (
    Problem,
    emit_alert,
    emit_conflict,
    first_problem,
    place_hold,
    resource,
)
from topologies.traffic.records import Output
from topologies.traffic.reservations import OPEN, Reservation
from topologies.traffic.state import HoldTerms, SiteState, Wait, full_plan

__all__ = ["settle"]

logger = logging.getLogger(__name__)


def _hold(
    state: SiteState,
    robot_id: str,
    res: Reservation,
    blocker: Reservation | None,
    wait: Wait,
    cid: str,
    now: int,
    out: list[Output],
    reason: str,
    *,
    later: int | None = None,
) -> list[str] | None:
    """Hold ``robot_id`` before ``res`` to let ``blocker`` pass (None: a no-go zone); returns the robots
    changed, or None when it has nowhere to wait (``later``: see ``placement.safe_index``)."""
    entry = state.robots[robot_id]
    j = hold_index(state, robot_id, res, blocker, now, later=later)
    if j is None:
        return None
    plan, current = full_plan(entry)
    prev = entry.get("hold")
    waits = [list(w) for w in prev["waits"]] if prev else []
    if wait not in waits:
        waits.append(wait)
    hold: HoldTerms = {"since": prev["since"] if prev else now, "waits": waits}
    place_hold(state, robot_id, plan, current, j, hold, cid, now, out, reason)
    return [robot_id, *break_deadlock(state, robot_id, now, out)]


def _kind(res: Reservation) -> str:
    """The kind of a wait on ``res``."""
    return BOOKED if res.booking else "lane" if res.lane else "node"


def _resolve(state: SiteState, p: Problem, now: int, out: list[Output]) -> list[str] | None:
    """Resolve one problem; returns the robots whose plans changed, or None when it cannot be resolved."""
    cfg = state.config
    if p.other is None:  # NO_GO_ZONE
        rid = p.mine.robot_id
        found = detour(state, rid, set(), set(), OPEN, now)
        if found is not None:
            emit_conflict(state, p, "REROUTE", rid, now, out, f"route enters no-go zone {p.zone_id}; detour")
            apply_reroute(state, rid, found, p.cid, now, out, f"avoid no-go zone {p.zone_id}")
            return [rid]
        changed = _hold(
            state,
            rid,
            p.mine,
            None,
            ["", "zone", p.zone_id or ""],
            p.cid,
            now,
            out,
            f"route enters no-go zone {p.zone_id}",
        )
        detail = f"route enters no-go zone {p.zone_id} and no detour exists"
        emit_conflict(state, p, "HOLD" if changed else "NONE", rid if changed else None, now, out, detail)
        emit_alert(state, p.cid, rid, f"robot {rid}: {detail}", now, out)
        return changed
    loser, winner, forced = yielder(state, p)
    what = f"{p.kind.lower()} conflict with {winner.robot_id} at {resource(p.mine)}"
    wait_ms = OPEN if winner.open else winner.end + cfg.clear_ms - loser.start
    if wait_ms >= cfg.reroute_min_wait_ms:
        avoid_n = set() if loser.lane else {loser.key}
        avoid_l = {loser.key} if loser.lane else set()
        found = detour(state, loser.robot_id, avoid_n, avoid_l, wait_ms, now)
        if found is not None and clear_of_others(state, loser.robot_id, found):
            emit_conflict(
                state, p, "REROUTE", loser.robot_id, now, out, f"{what}; detour cheaper than waiting"
            )
            apply_reroute(state, loser.robot_id, found, p.cid, now, out, what)
            return [loser.robot_id]
    wait = [winner.robot_id, _kind(winner), winner.key]
    wait_swapped = [loser.robot_id, _kind(loser), loser.key]
    swapped = f"{p.kind.lower()} conflict with {loser.robot_id} at {resource(p.mine)} (no safe node for it)"
    # First a node nobody else needs meanwhile; failing that, one that robots coming later than
    # latency + reroute_min_wait after it need: they meet it standing there and give way in their turn.
    for later in (None, cfg.latency_ms + cfg.reroute_min_wait_ms):
        changed = _hold(state, loser.robot_id, loser, winner, wait, p.cid, now, out, what, later=later)
        if changed is not None:
            emit_conflict(state, p, "HOLD", loser.robot_id, now, out, what)
            return changed
        if not forced:
            changed = _hold(
                state, winner.robot_id, winner, loser, wait_swapped, p.cid, now, out, swapped, later=later
            )
            if changed is not None:
                emit_conflict(state, p, "HOLD", winner.robot_id, now, out, swapped)
                return changed
    detail = f"{what}: {loser.robot_id} can neither detour nor hold"
    emit_conflict(state, p, "NONE", None, now, out, detail)
    emit_alert(state, p.cid, loser.robot_id, f"robot {loser.robot_id}: {detail}", now, out)
    return None


def settle(state: SiteState, robot_ids: list[str], now: int, out: list[Output]) -> None:
    """Resolve the problems of the given robots, and of every robot a resolution changes, earliest first."""
    queue = list(dict.fromkeys(robot_ids))
    given_up: set[str] = set()
    resolved: set[str] = set()
    rounds = 0
    limit = state.config.max_rounds * max(1, len(queue))
    while queue:
        rid = queue.pop(0)
        if rid not in state.robots:
            continue
        while True:
            problem = first_problem(state, rid, given_up)
            if problem is None:
                break
            rounds += 1
            if rounds > limit:
                logger.warning(
                    "traffic resolution did not settle in %d rounds at site %s", limit, state.site_id
                )
                emit_alert(
                    state, problem.cid, rid, f"robot {rid}: conflict resolution did not settle", now, out
                )
                return
            if problem.cid in resolved:  # it came back after being resolved: do not flap, give up
                given_up.add(problem.cid)
                if problem.start - now <= state.config.latency_ms:
                    # too close for a decision of a later input to reach the robot in time
                    emit_alert(
                        state,
                        problem.cid,
                        rid,
                        f"robot {rid}: {problem.kind.lower()} conflict persists after its resolution",
                        now,
                        out,
                    )
                else:  # the next input (statuses keep coming while robots move) resolves it afresh
                    logger.debug(
                        "conflict %s of %s persists after its resolution; left to the next input",
                        problem.cid,
                        rid,
                    )
                continue
            changed = _resolve(state, problem, now, out)
            resolved.add(problem.cid)
            if not changed:
                given_up.add(problem.cid)
                continue
            for other in changed:
                if other != rid and other not in queue:
                    queue.append(other)
