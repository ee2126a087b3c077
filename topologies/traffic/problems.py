"""The problems the resolver works on (a clash with another robot, a no-go entry) and emitting them.

Each conflict is emitted once per ``conflict_id`` (remembered for ``conflict_ttl_ms``).
"""

from __future__ import annotations

from dataclasses import dataclass

from topologies.traffic import records
from topologies.traffic.detect import clashes_of, zone_hits
from topologies.traffic.records import Output
from topologies.traffic.reservations import OPEN, Reservation
from topologies.traffic.state import HoldTerms, SiteState

__all__ = ["Plan", "Problem", "emit_alert", "emit_conflict", "first_problem", "resource", "route_out"]

Plan = list[tuple[str, int]]


@dataclass(frozen=True, slots=True)
class Problem:
    """The earliest conflict of one robot: a clash with another robot, or a no-go-zone entry."""

    cid: str
    kind: str
    mine: Reservation
    other: Reservation | None
    zone_id: str | None
    start: int
    end: int
    members: tuple[str, ...] = ()

    @property
    def robots(self) -> list[str]:
        if self.members:
            return list(self.members)
        return [self.mine.robot_id] + ([self.other.robot_id] if self.other is not None else [])


def resource(res: Reservation) -> str:
    return f"lane:{res.key}" if res.lane else f"node:{res.key}"


def first_problem(state: SiteState, robot_id: str, skip: set[str]) -> Problem | None:
    """The earliest unresolved problem of ``robot_id`` not in ``skip`` (ids already given up on)."""
    bucket = state.config.bucket_ms
    mine = state.table.of(robot_id)
    for hit in zone_hits(mine, state.model):
        cid = records.conflict_id("NO_GO_ZONE", [robot_id], f"zone:{hit.zone_id}", hit.res.start, bucket)
        if cid not in skip:
            return Problem(cid, "NO_GO_ZONE", hit.res, None, hit.zone_id, hit.res.start, hit.res.end)
    for clash in clashes_of(state.table, robot_id, state.config, bookings=state.bookings_of(robot_id)):
        robots = [robot_id, clash.other.robot_id]
        cid = records.conflict_id(clash.kind, robots, resource(clash.mine), clash.start, bucket)
        if cid not in skip:
            return Problem(cid, clash.kind, clash.mine, clash.other, None, clash.start, clash.end)
    return None


def emit_conflict(
    state: SiteState,
    p: Problem,
    resolution: str,
    resolved: str | None,
    now: int,
    out: list[Output],
    detail: str,
) -> None:
    if p.cid in state.emitted:
        return
    state.remember(p.cid, p.robots, now + state.config.conflict_ttl_ms)
    res = p.mine
    out.append(
        records.conflict(
            state.site,
            cid=p.cid,
            kind=p.kind,
            robot_ids=p.robots,
            window=(p.start, p.end if p.end < OPEN else max(p.start, now)),
            open_ended=p.end >= OPEN,
            resolution=resolution,
            resolved_robot_id=resolved,
            occurred_at=now,
            node_id=None if res.lane else res.key,
            lane_id=res.key if res.lane else None,
            zone_id=p.zone_id,
            detail=detail,
        )
    )


def emit_alert(state: SiteState, cid: str, subject: str, message: str, now: int, out: list[Output]) -> None:
    """Raise CONFLICT_UNRESOLVED about ``subject`` once per situation: while its alert is open (it had an
    unresolved conflict less than ``alert_clear_ms`` ago) a new one only extends it. Sent within the
    site's alert budget (:func:`_spend`)."""
    entry = state.robots.get(subject)
    if entry is None:
        return
    state.dirty_robots.add(subject)
    situation = entry.get("alert")
    if situation is not None:
        situation["last"] = now
        return
    sent = _spend(state, now)
    entry["alert"] = {"since": now, "last": now, "cid": cid, "sent": sent}
    if sent:
        out.append(
            records.alert(
                state.site,
                subject_id=subject,
                cid=cid,
                message=_with_suppressed(state, message),
                occurred_at=now,
            )
        )


def clear_alerts(state: SiteState, now: int, out: list[Output]) -> None:
    """End the alert situations that have had no unresolved conflict for ``alert_clear_ms``: one
    CONFLICT_CLEARED each (for those whose CONFLICT_UNRESOLVED was sent)."""
    for rid in sorted(state.robots):
        entry = state.robots[rid]
        situation = entry.get("alert")
        if situation is None or now - int(situation["last"]) < state.config.alert_clear_ms:
            continue
        if clashes_of(state.table, rid, state.config):
            situation["last"] = now  # still in conflict (a robot that reports nothing new: OFFLINE)
            state.dirty_robots.add(rid)
            continue
        entry["alert"] = None
        state.dirty_robots.add(rid)
        if situation.get("sent"):
            message = f"robot {rid}: no unresolved conflict for {state.config.alert_clear_ms // 1000} s"
            out.append(
                records.alert(
                    state.site, subject_id=rid, cid=str(situation["cid"]), message=message, occurred_at=now,
                    kind="CONFLICT_CLEARED",
                )
            )  # fmt: skip


def _spend(state: SiteState, now: int) -> bool:
    """Take one alert from the site's budget (``alerts_per_minute``, refilled over time); False when it is
    spent (the alert is counted as suppressed)."""
    burst = float(state.config.alerts_per_minute)
    tokens = burst if state.alert_tokens < 0 else state.alert_tokens
    tokens = min(burst, tokens + max(0, now - state.alert_at) * burst / 60_000.0)
    state.alert_at = now
    if tokens >= 1.0:
        state.alert_tokens = tokens - 1.0
        return True
    state.alert_tokens = tokens
    state.alerts_suppressed += 1
    return False


def _with_suppressed(state: SiteState, message: str) -> str:
    if not state.alerts_suppressed:
        return message
    n, state.alerts_suppressed = state.alerts_suppressed, 0
    return f"{message} ({n} more alert(s) of this site suppressed over the budget of {state.config.alerts_per_minute}/min)"


def place_hold(
    state: SiteState,
    robot_id: str,
    plan: Plan,
    current: bool,
    j: int,
    hold: HoldTerms,
    cid: str,
    now: int,
    out: list[Output],
    reason: str,
) -> None:
    """Hold ``robot_id`` at ``plan[j]``: its hold entry (``hold`` adds what the caller keeps: since, waits,
    ...), its reservations, and the HOLD decision with its way there."""
    entry = state.robots[robot_id]
    node = plan[j][0]
    entry["hold"] = {
        "node": node,
        "current": current,
        "prefix": [list(w) for w in plan[: j + 1]],
        "pending": [list(w) for w in plan[j:]],
        "conflict_id": cid,
        **hold,
    }
    state.reserve(robot_id)
    state.touch(robot_id)
    out.append(
        records.decision(
            entry,
            kind="HOLD",
            route=route_out(plan[: j + 1], current),
            occurred_at=now,
            conflict=cid,
            reason=f"hold at {node}: {reason}",
        )
    )


def route_out(plan: Plan, current: bool) -> Plan:
    """A plan as a Decision route: the node the robot is at is not part of it (first entry = next node)."""
    return plan[1:] if current else plan
