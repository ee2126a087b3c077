"""The in-memory model of one site: robot entries, task priorities, the site graph and the reservations.

Robot entries are plain JSON-serialisable dicts (one state sub-key each in the Quix adapter)::

    robot_id, tenant_id, site_id, fleet_id, task_id    identity and task, from the latest RobotStatus
    seq, seen, status                                   latest status seq, occurred_at, RobotState
    node                                                pose.node_id (the node the robot is at), or None
    moving                                              its reported speed was above zero
    passed                                              [node_id, at] the node it is driving away from and
                                                        when it was there (on a lane, or leaving a node)
    route                                               [[node_id, eta], ...] the plan, next node first
    hold                                                None, or the HOLD in force (see ``resolve``)
    go_by                                               after a RESUME / REROUTE of a standing robot: the
                                                        time by which it will have started (None: known)
    last_reroute                                        [conflict_id, nodes] of the last REROUTE emitted
    conflicts                                           {conflict_id: remember_until} emitted about it
    alert                                               None, or its open CONFLICT_UNRESOLVED situation:
                                                        {since, last, cid, sent} (``problems``)

Everything else (the view of the site graph, reservation table, held set) is derived and rebuilt by
:meth:`rebuild`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from schemas.records import SiteMap
from schemas.sitegraph import graph_for
from topologies.traffic.config import TrafficConfig
from topologies.traffic.graph import SiteView
from topologies.traffic.reservations import OPEN, Reservation, ReservationTable, plan_reservations

__all__ = [
    "IDLE_PRIORITY",
    "STATIONARY",
    "AlertSituation",
    "Hold",
    "HoldTerms",
    "PlanView",
    "RobotEntry",
    "RobotSeen",
    "SiteIds",
    "SiteState",
    "StoredWaypoint",
    "Wait",
    "comes_for",
    "effective_plan",
    "full_plan",
    "hold_of",
    "set_plan",
    "spread_of",
    "waiting_to_start",
]

#: RobotStates of a robot that does not move whatever its route says: it occupies its node.
STATIONARY = frozenset({"OFFLINE", "ERROR"})
#: Priority of a robot without a task (below every task priority, 0..10).
IDLE_PRIORITY = -1
#: Priority of a robot whose task's priority is unknown (the TaskSpec default).
DEFAULT_PRIORITY = 5

PlanView = tuple[list[tuple[str, int]], bool]

# ------------------------------------------------------------------------------------------ robot entries
# What the monitor stores per robot (one state sub-key each, JSON): these describe exactly the keys
# written there, so a misspelt key or a wrong value type is a mypy error.

#: ``[node_id, eta]``: a waypoint as stored, a JSON array (a list, also in memory, so that an entry
#: compares equal to itself after a round trip through the store); mypy has no fixed-length list type.
StoredWaypoint = list[Any]
#: ``[robot_id, kind, key]``: what a held robot waits for; kind ``node`` / ``lane`` / ``zone`` (robot_id
#: "") / ``booked`` / ``after`` (``deadlock``), key the node, lane or zone id ("" for ``after``).
Wait = list[str]


class HoldTerms(TypedDict):
    """What the caller of ``problems.place_hold`` keeps of a hold: since when, what it waits for."""

    since: int
    waits: list[Wait]
    yield_to: NotRequired[list[str]]  # a robot that stepped aside (``deadlock.hold_at``): whom it lets pass


class Hold(HoldTerms):
    """The HOLD in force over a robot (``problems.place_hold``): it drives its ``prefix`` to ``node``
    (the prefix's last waypoint) and waits there; ``pending`` is its plan from there once resumed."""

    node: str
    current: bool  # the prefix's first node is one the robot is at (or has just passed)
    prefix: list[StoredWaypoint]
    pending: list[StoredWaypoint]
    conflict_id: str


class AlertSituation(TypedDict):
    """A robot's open CONFLICT_UNRESOLVED situation (``problems.emit_alert``)."""

    since: int
    last: int  # its last unresolved conflict
    cid: str  # the conflict id of the alert
    sent: bool  # the alert was sent (within the site's budget)


class RobotSeen(TypedDict):
    """Who a robot is and which of its RobotStatus records was the last applied (``seq``, at ``seen``):
    what the monitor's and the coordinator's stored robots have in common."""

    robot_id: str
    tenant_id: str
    site_id: str
    fleet_id: str | None
    task_id: str | None
    seq: int
    seen: int


class RobotEntry(RobotSeen):
    """A robot the monitor tracks (module doc), built from its latest RobotStatus (``machine``)."""

    status: str | None
    node: str | None
    moving: bool
    passed: StoredWaypoint | None
    starter: bool
    route: list[StoredWaypoint]
    hold: Hold | None
    go_by: int | None
    last_reroute: list[str | list[str]] | None  # [conflict_id, [node_id, ...]]
    conflicts: dict[str, int]
    alert: AlertSituation | None


class SiteIds(TypedDict):
    """Whose site: what the Conflict and Alert builders (``records``) take of it."""

    tenant_id: str
    site_id: str


def full_plan(entry: RobotEntry) -> PlanView:
    """The robot's whole intended plan and whether its first node is one the robot is at (or has just
    passed: it is on the lane from it to the next one).

    A held robot's plan is its prefix up to the hold node followed by the pending rest.
    """
    hold = entry.get("hold")
    if hold:
        prefix = [(n, int(t)) for n, t in hold["prefix"]]
        pending = [(n, int(t)) for n, t in hold["pending"]]
        return prefix[:-1] + pending, bool(hold["current"])
    plan = [(n, int(t)) for n, t in entry.get("route") or ()]
    passed = entry.get("passed")
    if passed:
        return [(passed[0], int(passed[1])), *plan], True
    node = entry.get("node")
    if node is None:
        return plan, False
    if not plan or plan[0][0] != node:
        plan.insert(0, (node, int(entry["seen"])))
    return plan, True


def effective_plan(entry: RobotEntry) -> tuple[list[tuple[str, int]], bool, bool]:
    """``(plan, first_is_current, open_end)``: what the robot will actually occupy.

    A held robot occupies its prefix and then its hold node until resumed; an OFFLINE/ERROR robot its
    node until further notice, and so does a robot that stands without a route; any other robot its full
    plan, and then the end of its route for ``stand_ms`` (where it stands until it is given a new one:
    until further notice once it is there).
    """
    if entry.get("status") in STATIONARY:
        node = entry.get("node")
        return ([(node, int(entry["seen"]))], True, True) if node else ([], False, False)
    hold = entry.get("hold")
    if hold:
        return [(n, int(t)) for n, t in hold["prefix"]], bool(hold["current"]), True
    plan, current = full_plan(entry)
    return plan, current, len(plan) == 1 and current


def waiting_to_start(entry: RobotEntry, *, released: bool = False) -> bool:
    """Whether the robot stands where it was given its route and has not set off yet (``starter``: it
    reported a departure, its route starting with the node it stands on, and has not moved since); if
    held, held there. ``released``: whether it would be once its hold ends."""
    if not entry.get("starter") or entry.get("node") is None or entry.get("moving") or entry.get("passed"):
        return False
    hold = entry.get("hold")
    return released or not hold or len(hold["prefix"]) == 1


def comes_for(entry: RobotEntry, other: RobotEntry) -> bool:
    """Whether ``entry``'s robot is on its way to where ``other``'s robot stands (its goal): it must wait
    for that one to leave, so that one never waits for it."""
    node = other.get("node")
    if node is None:
        return False
    plan, _current = full_plan(entry)
    return len(plan) > 1 and plan[-1][0] == node


def set_plan(entry: RobotEntry, plan: list[tuple[str, int]], current: bool) -> None:
    """Write a (new) plan back into a robot's entry, as :func:`full_plan` reads it."""
    if not current:
        entry["route"] = [list(w) for w in plan]
        return
    if entry.get("passed"):
        entry["passed"] = list(plan[0])
    else:
        entry["node"], entry["seen"] = plan[0]
    entry["route"] = [list(w) for w in plan[1:]]


def hold_of(entry: RobotEntry) -> Hold:
    """The hold in force over a robot known to be held (one of ``SiteState.held``, a member of a wait-for
    cycle, a robot just held)."""
    hold = entry["hold"]
    assert hold is not None, f"robot {entry['robot_id']} is not held"
    return hold


def spread_of(entry: RobotEntry) -> int:
    """How late the robot may start its plan: after a RESUME, until the decision has reached it."""
    go_by = entry.get("go_by")
    return max(0, int(go_by) - int(entry["seen"])) if go_by is not None and not entry.get("hold") else 0


@dataclass(slots=True)
class SiteState:
    """One site: the durable part (``site_map``, ``robots``, ``tasks``, the clocks) and derived indices.

    ``emitted`` (conflict id -> remember until) is derived from the robots' ``conflicts``, so that emitting
    a conflict rewrites only the entries of the robots concerned. ``dirty_robots`` / ``dirty_tasks`` /
    ``dirty_map`` name what changed since the adapter last stored it.
    """

    config: TrafficConfig
    site_id: str = ""
    tenant_id: str = ""
    site_map: SiteMap | None = None
    robots: dict[str, RobotEntry] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    emitted: dict[str, int] = field(default_factory=dict)
    emitted_by: dict[str, list[str]] = field(default_factory=dict)
    clock: int = 0
    model: SiteView | None = None
    table: ReservationTable = field(default_factory=ReservationTable)
    held: set[str] = field(default_factory=set)
    dirty_robots: set[str] = field(default_factory=set)
    dirty_tasks: set[str] = field(default_factory=set)
    dirty_map: bool = False
    next_prune: int = 0
    next_scan: int = 0
    alert_tokens: float = -1.0  # the site's alert budget (token bucket; -1: full)
    alert_at: int = 0  # when the budget was last topped up
    alerts_suppressed: int = 0  # alerts over the budget since the last one sent
    waiters: dict[str, set[str]] = field(default_factory=dict)
    waits_of: dict[str, set[str]] = field(default_factory=dict)
    recheck: set[str] = field(default_factory=set)
    due: list[tuple[int, str]] = field(default_factory=list)
    check_at: dict[str, int] = field(default_factory=dict)

    @property
    def site(self) -> SiteIds:
        return {"tenant_id": self.tenant_id, "site_id": self.site_id}

    def priority(self, robot_id: str) -> int:
        entry = self.robots.get(robot_id)
        task_id = entry.get("task_id") if entry else None
        if not task_id:
            return IDLE_PRIORITY
        return self.tasks.get(task_id, DEFAULT_PRIORITY)

    def outranks(self, a: str, b: str) -> bool:
        """Whether robot ``a`` has right of way over ``b``: higher task priority, ties to the smaller id."""
        pa, pb = self.priority(a), self.priority(b)
        return pa > pb or (pa == pb and a < b)

    def by_rank(self, robot_ids: Iterable[str], *, highest_first: bool) -> list[str]:
        """Robots ordered by right of way (see :meth:`outranks`)."""
        ordered = sorted(robot_ids, key=lambda rid: (-self.priority(rid), rid))
        return ordered if highest_first else ordered[::-1]

    def reserve(self, robot_id: str) -> None:
        """Recompute one robot's reservations from its entry (O(its plan x local overlaps))."""
        entry = self.robots.get(robot_id)
        if entry is None:
            self.table.remove(robot_id)
            self.held.discard(robot_id)
            self.sync_waits(robot_id)
            self.recheck.update(self.waiters.get(robot_id, ()))  # whoever waited on it may go now
            return
        plan, _current, open_end = effective_plan(entry)
        reservations = plan_reservations(
            robot_id,
            plan,
            self.model,
            self.config,
            open_end=open_end,
            spread=spread_of(entry),
            stay=self.config.stand_ms,
        )
        hold = entry.get("hold")
        if (
            hold
            and len(hold["pending"]) > 1
            and entry.get("status") not in STATIONARY
            and not waiting_to_start(entry)
        ):
            # held on its way: the rest of its way stays booked, from when it could get there if it went
            # now, against robots that have not set off yet (``bookings_of``)
            t_hold = int(hold["pending"][0][1])
            shift = max(0, self.clock - t_hold) - self.config.node_margin_ms
            reservations.extend(
                Reservation(robot_id, n, False, int(t) + shift, OPEN, n, n, -1, booking=True)
                for n, t in hold["pending"][1:]
            )
        self.table.replace(robot_id, reservations)
        if entry.get("hold"):
            self.held.add(robot_id)
            self.recheck.add(robot_id)
        else:
            self.held.discard(robot_id)
        self.sync_waits(robot_id)
        # whoever waits on this robot may be free now
        self.recheck.update(self.waiters.get(robot_id, ()))

    def sync_waits(self, robot_id: str) -> None:
        """Keep the reverse index blocker -> held robots waiting on it in step with the robot's hold."""
        entry = self.robots.get(robot_id)
        hold = entry.get("hold") if entry else None
        new = {w[0] for w in hold["waits"] if w[0]} if hold else set()
        old = self.waits_of.get(robot_id, set())
        if new == old:
            return
        for blocker in old - new:
            waiting = self.waiters.get(blocker)
            if waiting is not None:
                waiting.discard(robot_id)
                if not waiting:
                    del self.waiters[blocker]
        for blocker in new - old:
            self.waiters.setdefault(blocker, set()).add(robot_id)
        if new:
            self.waits_of[robot_id] = new
        else:
            self.waits_of.pop(robot_id, None)

    def wanted(self, robot_id: str) -> bool:
        """Whether another robot is on its way to where ``robot_id`` stands (and waits for it to leave)."""
        entry = self.robots.get(robot_id)
        if entry is None:
            return False
        node = entry.get("node")
        if node is None:
            return False
        return any(
            r.robot_id != robot_id and not r.lane and r.idx > 0 and comes_for(self.robots[r.robot_id], entry)
            for r in self.table.on_node(node)
        )

    def bookings_of(self, robot_id: str) -> Callable[[str], bool] | None:
        """Whose booked ways ``robot_id`` must keep clear of: none once it is on its way; before it sets
        off, those of the robots held on their way, except those that wait for it to leave where it is;
        none once it has been told to go (RESUME, REROUTE: it may be on its way before a HOLD reaches it)."""
        entry = self.robots.get(robot_id)
        if entry is None or not waiting_to_start(entry):
            return None
        if entry.get("go_by") is not None and not entry.get("hold"):
            return None
        here = entry.get("node")

        def binds(other_id: str) -> bool:
            other = self.robots.get(other_id)
            theirs = other.get("hold") if other else None
            if not theirs:
                return False
            return bool(theirs["pending"][-1][0] != here)  # (not one waiting for it to leave)

        return binds

    def touch(self, robot_id: str) -> None:
        self.dirty_robots.add(robot_id)

    def remember(self, cid: str, robot_ids: list[str], until: int) -> None:
        """Note a conflict (or alert) id as emitted, under each robot it concerns."""
        self.emitted[cid] = until
        self.emitted_by[cid] = list(robot_ids)
        for rid in robot_ids:
            entry = self.robots.get(rid)
            if entry is not None:
                entry.setdefault("conflicts", {})[cid] = until
                self.touch(rid)

    def forget(self, cid: str) -> None:
        self.emitted.pop(cid, None)
        for rid in self.emitted_by.pop(cid, ()):
            entry = self.robots.get(rid)
            if entry is not None and entry.get("conflicts", {}).pop(cid, None) is not None:
                self.touch(rid)

    def rebuild(self) -> None:
        """Recompute the derived parts (model, reservations, held set) from the durable ones. The model is
        a view of the map's shared graph (``schemas.sitegraph.graph_for``: parsed once per map version)."""
        self.model = SiteView(graph_for(self.site_map, self.config.speed_mps)) if self.site_map else None
        self.table = ReservationTable()
        self.held = set()
        self.waiters, self.waits_of, self.due, self.check_at = {}, {}, [], {}
        self.emitted, self.emitted_by = {}, {}
        for robot_id in sorted(self.robots):
            self.reserve(robot_id)
            for cid, until in (self.robots[robot_id].get("conflicts") or {}).items():
                self.emitted[cid] = max(until, self.emitted.get(cid, 0))
                self.emitted_by.setdefault(cid, []).append(robot_id)
        self.recheck = set(self.held)
