"""Resuming held robots: when their way is clear (with hysteresis), checked only when it may be."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection

from topologies.traffic import records
from topologies.traffic.deadlock import AFTER, BOOKED, break_deadlock, is_clear, waited_on
from topologies.traffic.detect import Clash, clashes_of, zone_hits
from topologies.traffic.placement import hold_index
from topologies.traffic.problems import Plan, route_out
from topologies.traffic.records import Output
from topologies.traffic.reservations import OPEN, plan_reservations
from topologies.traffic.state import STATIONARY, SiteState, Wait, hold_of, set_plan, waiting_to_start

__all__ = ["check_holds"]


def _blockers(
    state: SiteState, robot_id: str, plan: Plan, now: int, yield_to: Collection[str] = ()
) -> list[Wait]:
    """What would stop ``robot_id`` driving ``plan`` now (starting within ``latency_ms``, then standing at
    its end): conflicts it would lose (all those with ``yield_to``), no-go entries."""
    cfg = state.config
    mine = plan_reservations(robot_id, plan, state.model, cfg, spread=cfg.latency_ms, stay=cfg.stand_ms)
    starting = waiting_to_start(state.robots[robot_id], released=True)
    wanted = starting and state.wanted(robot_id)
    found: list[Wait] = [["", "zone", h.zone_id] for h in zone_hits(mine, state.model)]
    clash: Clash
    for clash in clashes_of(state.table, robot_id, state.config, mine, bookings=state.bookings_of(robot_id)):
        other = clash.other
        if other.robot_id in yield_to or (
            starting and not wanted and not waiting_to_start(state.robots[other.robot_id])
        ):
            loses = True
        elif clash.kind == "FOLLOWING":
            loses = other.open or clash.mine.start >= other.start
        else:
            loses = other.open or state.outranks(other.robot_id, robot_id)
        if not loses and not other.booking and not other.open:
            # it would have the right of way, but the other can no longer be stopped before the node
            # or lane (it is past its last node to wait at): going now would leave the conflict unresolved
            loses = hold_index(state, other.robot_id, other, clash.mine, now) is None
        wait = [other.robot_id, BOOKED if other.booking else "lane" if other.lane else "node", other.key]
        if not loses or wait in found:
            continue
        found.append(wait)
    return found


def _schedule(state: SiteState, robot_id: str, now: int) -> None:
    """Note when a held robot's waits could clear by time alone (waits on robots that stand still are
    re-checked when those robots' plans change instead): when the last of them ends, or for one that has
    not set off (see ``check_holds``) the first."""
    entry = state.robots[robot_id]
    hold = hold_of(entry)
    horizon = now - state.config.clear_ms
    ends = [
        r.end + state.config.clear_ms
        for wait in hold["waits"]
        if wait[1] not in ("zone", AFTER)
        for r in waited_on(state, wait)
        if r.end > horizon
    ]
    due = (min(ends) if waiting_to_start(entry) else max(ends)) if ends else 0
    if 0 < due < OPEN and state.check_at.get(robot_id) != due:
        state.check_at[robot_id] = due
        heapq.heappush(state.due, (due, robot_id))


def _shift(state: SiteState, pending: Plan, now: int) -> Plan:
    """The pending plan leaving the hold node now: the original gaps between waypoints are kept, but never
    shorter than driving the lane at the nominal speed (the reported ETAs may be stale after a wait)."""
    model, cfg = state.model, state.config
    node, eta = pending[0]
    t = max(now, eta)
    shifted = [(node, t)]
    for (a, ta), (b, tb) in itertools.pairwise(pending):
        drive = model.length(a, b) / cfg.speed_mps * 1000 if model is not None and a in model else 0.0
        t += max(tb - ta, round(drive))
        shifted.append((b, t))
    return shifted


def _due_holds(state: SiteState, now: int) -> set[str]:
    candidates = state.recheck
    state.recheck = set()
    while state.due and state.due[0][0] <= now:
        at, rid = heapq.heappop(state.due)
        if state.check_at.get(rid) == at:
            del state.check_at[rid]
            candidates.add(rid)
    return candidates & state.held


def check_holds(state: SiteState, now: int, out: list[Output]) -> list[str]:
    """RESUME every held robot whose way is clear; returns the robots resumed or rerouted.

    Only holds that may have changed are looked at: those whose blockers changed plan since, and those
    whose timed re-check (the blockers' window ends plus ``clear_ms``) is due.
    """
    changed: list[str] = []
    candidates = _due_holds(state, now)
    if not candidates:
        return changed
    # Highest rank first: a lower-ranked robot then sees the plans of those resumed before it.
    for rid in state.by_rank(candidates, highest_first=True):
        entry = state.robots[rid]
        hold = entry.get("hold")
        if not hold or entry.get("status") in STATIONARY:
            continue  # an OFFLINE robot hears nothing: it is resumed once it is back
        # one that has not set off (it waits out of everybody's way) goes as soon as its way is clear,
        # following those on it, not only once they have passed: it does not starve where it stands
        starting = waiting_to_start(entry)
        if not starting and not all(is_clear(state, w, now) for w in hold["waits"]):
            _schedule(state, rid, now)
            continue
        pending = [(n, int(t)) for n, t in hold["pending"]]
        prefix = [(n, int(t)) for n, t in hold["prefix"]]
        shifted = _shift(state, pending, now)
        # held ahead, not there yet: it drives on from where it is, the way there included (from now,
        # if it stands: it sets off when the RESUME reaches it)
        ahead = len(prefix) > 1 and prefix[-1][1] > now
        if not ahead:
            plan = shifted
        elif entry.get("moving"):
            plan = [*prefix[:-1], *shifted]
        else:
            plan = _shift(state, prefix[:-1] + pending, now)
        blockers = _blockers(state, rid, plan, now, hold.get("yield_to") or ())
        if blockers:
            if blockers != hold["waits"]:
                hold["waits"] = blockers
                state.sync_waits(rid)
                state.touch(rid)
                changed.extend(break_deadlock(state, rid, now, out))
            if state.robots[rid].get("hold"):
                _schedule(state, rid, now)
            continue
        if ahead:
            current = bool(hold["current"])
        else:  # it stands at its hold node: it sets off from there
            current = True
            entry["passed"] = None
        entry["hold"] = None
        set_plan(entry, plan, current)
        # a standing robot starts when the RESUME reaches it (one still on its way just drives on)
        entry["go_by"] = None if entry.get("moving") else now + state.config.latency_ms
        state.reserve(rid)
        state.touch(rid)
        out.append(
            records.decision(
                entry,
                kind="RESUME",
                route=route_out(plan, current),
                occurred_at=now,
                conflict=hold["conflict_id"],
                reason=f"way clear after {now - hold['since']} ms held at {hold['node']}",
            )
        )
        changed.append(rid)
    return changed
