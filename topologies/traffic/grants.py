"""Exclusive grants of space: which robot may drive onto which node, per site (pure, no I/O).

Every robot the traffic topology coordinates holds a contiguous path of nodes, ``held``: ``held[0]`` is
the node it stands on (or the node it is leaving, while it is on the lane to ``held[1]``), ``held[-1]``
its *frontier*, the last node it may drive to. A node is held by at most one robot (``owner``), and a
robot holding both ends of a lane is the only one on it, so two robots that obey their grants can never
meet in a node or on a lane, whatever the latency of the pipeline: latency only costs throughput.

- Grants only grow at the frontier, and only onto a node nobody holds (:meth:`GrantTable.extend`).
- Grants are released behind the robot as it reports progress (:meth:`GrantTable.advance`): at node
  ``held[j]`` it gives up ``held[:j]``; on the lane into ``held[j]`` it gives up ``held[:j-1]``.
- A robot that goes OFFLINE keeps what it holds; a robot reported where it holds nothing (a restart of
  the robot or of the topology, a robot pushed by hand) is re-anchored there: it gives up its old path
  and claims the node it is at. If another robot holds that node, both are *contested* there (a fact the
  topology reports as a conflict): the node goes to the one that stays when the other leaves it.

Which robot gets which free node, and when, is the planner's choice (:mod:`topologies.traffic.pibt`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from schemas.sitegraph import SiteGraph
from topologies.traffic.state import RobotSeen

__all__ = ["ACTIVE", "FIXED", "OFFLINE", "GrantTable", "Mover", "MoverRecord"]

logger = logging.getLogger(__name__)

#: Modes of a coordinated robot: it can be told to move (ACTIVE); it stands and cannot be moved out of
#: anybody's way for now (FIXED: working, charging); or it will not move for long (OFFLINE: not heard, or
#: in error). FIXED and OFFLINE robots keep what they hold, and others plan round them.
ACTIVE, FIXED, OFFLINE = "ACTIVE", "FIXED", "OFFLINE"


class MoverRecord(RobotSeen):
    """A :class:`Mover` as stored (state sub-key ``mover:<robot_id>``): nodes by id, so that it outlives a
    map version."""

    mode: str
    held: list[str]
    goal: str | None
    since: int
    priority: int
    route: list[str]
    plan: int
    plan_seq: int
    plan_at: int
    granted_at: int


@dataclass(slots=True)
class Mover:
    """One coordinated robot as the grant table sees it (stored per robot, by node id)."""

    robot_id: str
    tenant_id: str
    site_id: str
    fleet_id: str | None = None
    task_id: str | None = None
    seq: int = -1
    seen: int = 0
    mode: str = ACTIVE
    held: list[int] = field(default_factory=list)
    goal: int | None = None
    since: int = 0  # when it last stood at its goal (or had none): its priority is its age since then
    priority: int = 5  # the task's priority, 0..10
    route: list[int] = field(default_factory=list)  # its reported way ahead (next node first)
    plan: int = 0  # how many plans (goals) it has had: plan ids derive from it
    plan_seq: int = -1  # the last GRANT of the current plan (-1: none yet)
    plan_at: int = 0  # when the current plan (goal) began
    granted_at: int = 0  # when its grant last grew

    @property
    def frontier(self) -> int:
        return self.held[-1]

    def to_record(self, graph: SiteGraph) -> MoverRecord:
        """A plain dict for the state store: nodes by id, so that it outlives a map version."""
        ids = graph.ids
        return {
            "robot_id": self.robot_id,
            "tenant_id": self.tenant_id,
            "site_id": self.site_id,
            "fleet_id": self.fleet_id,
            "task_id": self.task_id,
            "seq": self.seq,
            "seen": self.seen,
            "mode": self.mode,
            "held": [ids[n] for n in self.held],
            "goal": ids[self.goal] if self.goal is not None else None,
            "since": self.since,
            "priority": self.priority,
            "route": [ids[n] for n in self.route],
            "plan": self.plan,
            "plan_seq": self.plan_seq,
            "plan_at": self.plan_at,
            "granted_at": self.granted_at,
        }

    @classmethod
    def from_record(cls, record: MoverRecord, graph: SiteGraph) -> Mover:
        """The inverse of :meth:`to_record` on ``graph``; nodes the map no longer has cut the held path
        there (a grant past a removed node is void) and drop out of the route and goal."""
        index = graph.index
        held: list[int] = []
        for node_id in record.get("held") or ():
            i = index.get(node_id)
            if i is None or (held and (held[-1], i) not in graph.lanes):
                break
            held.append(i)
        goal_id = record.get("goal")
        goal = index.get(goal_id) if goal_id else None
        route = [index[n] for n in record.get("route") or () if n in index]
        return cls(
            robot_id=record["robot_id"],
            tenant_id=record["tenant_id"],
            site_id=record["site_id"],
            fleet_id=record.get("fleet_id"),
            task_id=record.get("task_id"),
            seq=int(record.get("seq", -1)),
            seen=int(record.get("seen", 0)),
            mode=str(record.get("mode", ACTIVE)),
            held=held,
            goal=goal,
            since=int(record.get("since", 0)),
            priority=int(record.get("priority", 5)),
            route=route,
            plan=int(record.get("plan", 0)),
            plan_seq=int(record.get("plan_seq", -1)),
            plan_at=int(record.get("plan_at", 0)),
            granted_at=int(record.get("granted_at", 0)),
        )


class GrantTable:
    """The movers of one site and who holds which node. The only writer of ``owner``."""

    def __init__(self, graph: SiteGraph) -> None:
        self.graph = graph
        self.movers: dict[str, Mover] = {}
        self.owner: dict[int, str] = {}
        #: node -> robots that stand on it without owning it (re-anchored onto a held node)
        self.contested: dict[int, list[str]] = {}
        #: nodes nobody may be granted for now (robots that plan their own traffic stand on or near them)
        self.blocked: set[int] = set()

    # -- queries --------------------------------------------------------------------------------------------
    def holder(self, node: int) -> Mover | None:
        rid = self.owner.get(node)
        return self.movers.get(rid) if rid is not None else None

    def free(self, node: int) -> bool:
        return node not in self.owner and node not in self.contested and node not in self.blocked

    def check(self) -> None:
        """Assert the invariants (tests and property checks): one owner per node, held paths drivable."""
        seen: dict[int, str] = {}
        for m in self.movers.values():
            for a, b in zip(m.held, m.held[1:], strict=False):
                assert (a, b) in self.graph.lanes, f"{m.robot_id} holds {a}->{b}, not a lane"
            for n in m.held:
                if self.owner.get(n) != m.robot_id:  # only a robot reported standing there, not granted
                    assert m.robot_id in self.contested.get(n, ()), f"{m.robot_id} holds {n} unowned"
                    continue
                assert n not in seen, f"node {self.graph.ids[n]} granted to {seen[n]} and {m.robot_id}"
                seen[n] = m.robot_id
        for n, rid in self.owner.items():
            assert n in self.movers[rid].held, f"owner table says {rid} holds {n}"

    # -- changes --------------------------------------------------------------------------------------------
    def add(self, mover: Mover) -> None:
        """Put a stored mover back (after a restart or a map change): it claims what it held where free."""
        self.movers[mover.robot_id] = mover
        kept: list[int] = []
        for n in mover.held:
            if n in self.owner:
                break  # another robot's already (only after a map change): this one stops short of it
            self.owner[n] = mover.robot_id
            kept.append(n)
        mover.held = kept

    def remove(self, robot_id: str) -> list[int]:
        """Forget a robot (a tombstone): what it held is free again. Returns the nodes freed."""
        mover = self.movers.pop(robot_id, None)
        if mover is None:
            return []
        return self._release(mover, list(mover.held))

    def advance(self, mover: Mover, node: int | None, next_node: int | None) -> list[int]:
        """The robot reports it stands at ``node`` (or, with ``node`` None, that it drives into
        ``next_node``). Releases what it has passed; returns the nodes freed."""
        held = mover.held
        if node is not None:
            if node in held:
                j = held.index(node)
                return self._release(mover, held[:j]) if j else []
            freed = self._release(mover, list(held))
            self._claim(mover, node)
            return freed
        if next_node is not None and next_node in held:
            j = held.index(next_node)
            return self._release(mover, held[: j - 1]) if j > 1 else []
        return []  # on a lane it was not granted, or no way to tell: keep everything

    def extend(self, mover: Mover, node: int) -> bool:
        """Grant ``node`` to ``mover`` at its frontier, if nobody holds it and a lane leads there."""
        if not mover.held or not self.free(node) or (mover.frontier, node) not in self.graph.lanes:
            return False
        if node in mover.held:
            return False
        mover.held.append(node)
        self.owner[node] = mover.robot_id
        return True

    # -- internals ------------------------------------------------------------------------------------------
    def _claim(self, mover: Mover, node: int) -> None:
        mover.held = [node]
        other = self.owner.get(node)
        if other is None:
            self.owner[node] = mover.robot_id
            return
        logger.warning(
            "robot %s reported at node %s, which %s holds",
            mover.robot_id,
            self.graph.ids[node],
            other,
            extra={"robot_id": mover.robot_id, "site_id": mover.site_id},
        )
        self.contested.setdefault(node, []).append(mover.robot_id)

    def _release(self, mover: Mover, nodes: Iterable[int]) -> list[int]:
        freed: list[int] = []
        gone = set(nodes)
        mover.held = [n for n in mover.held if n not in gone]
        for n in gone:
            waiting = self.contested.get(n)
            if waiting and mover.robot_id in waiting:
                waiting.remove(mover.robot_id)
            elif self.owner.get(n) == mover.robot_id:
                del self.owner[n]
                if waiting:  # a robot stands there too: the node is its now
                    self.owner[n] = waiting.pop(0)
            if not waiting:
                self.contested.pop(n, None)
            if self.free(n):
                freed.append(n)
        freed.sort()
        return freed
