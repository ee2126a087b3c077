"""Traffic control by grants for the robots fleetstream coordinates (pure, per site).

A :class:`Coordinator` turns the statuses of its robots into GRANT decisions:

1. a status moves the robot along what it holds (nodes behind it are released, and a node another robot
   was waiting for is granted to it at once), and tells its goal: the first *stop* of its reported
   route beyond its frontier (:meth:`schemas.sitegraph.SiteGraph.is_stop`: a station, a dead end, a
   turn-back, or the route's end);
2. every ``round_ms`` of event time a planning round (:mod:`topologies.traffic.pibt`) decides the next
   node of every robot whose grant ends less than ``lookahead_ms`` ahead of it; a robot whose next node
   is free gets it and, greedily, the free nodes after it on its quickest way to its goal up to that
   lookahead;
3. every robot whose grant grew gets one GRANT: ``route`` = what it holds (from the node it stands on or
   is leaving) then the planned horizon to its goal, ``granted`` = how many of those it may drive onto,
   ``plan_id`` / ``plan_seq`` = its current goal's plan and the update's number.

Nothing is ever taken back from a robot: a GRANT only extends, so it is safe to act on whenever it
arrives. A robot that is OFFLINE, working, charging or in error keeps what it holds; the others plan
round it.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from schemas.ids import det_uuid7
from schemas.records import RobotStatus, RouteWaypoint
from schemas.sitegraph import SiteGraph
from topologies.traffic.config import OWNER, TrafficConfig
from topologies.traffic.grants import ACTIVE, FIXED, OFFLINE, GrantTable, Mover, MoverRecord
from topologies.traffic.pibt import plan_round
from topologies.traffic.records import DECISIONS, GrantDecision, Output

__all__ = ["Coordinator"]

logger = logging.getLogger(__name__)

_FIXED_STATUSES = frozenset({"WORKING", "CHARGING"})
_STUCK_STATUSES = frozenset({"OFFLINE", "ERROR"})
_MAX_ROWS = 512
#: Dead ends where a robot may wait out a jam (not a station where others need it gone).
_PARKED_KINDS = frozenset({"PARKING", "PICKUP"})


def _no_priority(_task_id: str) -> int | None:
    return None


class Coordinator:
    """The coordinated robots of one site on one map version, and their grants."""

    def __init__(self, graph: SiteGraph, config: TrafficConfig) -> None:
        self.graph = graph
        self.config = config
        self.table = GrantTable(graph)
        self.wanted: dict[int, str] = {}  # node -> robot that goes there once its holder has left
        self.next_round = 0
        self.rounds = 0
        self.changed: set[str] = set()  # robots whose stored entry is out of date
        #: task id -> its priority (0..10), where known
        self.priorities: Callable[[str], int | None] = _no_priority
        self._penalty: dict[int, float] = {}
        self._rows: dict[int, Any] = {}

    # -- inputs ---------------------------------------------------------------------------------------------
    def on_status(self, record: RobotStatus, now: int) -> list[Output]:
        """Apply one RobotStatus of a coordinated robot; returns the GRANTs it makes possible."""
        rid = record["robot_id"]
        graph, table = self.graph, self.table
        m = table.movers.get(rid)
        if m is not None and int(record["seq"]) == m.seq and record.get("status") == "OFFLINE":
            self.on_offline(rid)  # silence, stamped with the last sample's seq: nothing else is new
            return []
        if m is not None and int(record["seq"]) <= m.seq:
            return []
        if m is None:
            m = Mover(robot_id=rid, tenant_id=record["tenant_id"], site_id=record["site_id"], since=now)
            table.movers[rid] = m
        m.seq, m.seen = int(record["seq"]), now
        m.fleet_id, m.task_id = record.get("fleet_id"), record.get("task_id")
        priority = self.priorities(m.task_id) if m.task_id else None
        m.priority = 5 if priority is None else int(priority)
        status = record.get("status")
        m.mode = OFFLINE if status in _STUCK_STATUSES else FIXED if status in _FIXED_STATUSES else ACTIVE
        pose = record.get("pose") or {}
        node = graph.index.get(pose.get("node_id") or "")
        route: list[int] = []
        for waypoint in record.get("route") or ():
            i = graph.index.get(waypoint["node_id"])
            if i is None:
                break  # a node of another map version: the rest is unknown
            route.append(i)
        if node is None and not m.held and pose.get("x") is not None:
            node = graph.index.get(graph.nearest_node(float(pose["x"]), float(pose["y"])) or "")
        freed = table.advance(m, node, route[0] if route else None)
        m.route = route
        self._set_goal(m, node, now)
        self.changed.add(rid)
        out: list[Output] = []
        for n in freed:
            out.extend(self._hand_over(n, now))
        return out

    def on_offline(self, robot_id: str) -> None:
        """The robot is not heard any more: it keeps what it holds and is planned round."""
        m = self.table.movers.get(robot_id)
        if m is not None:
            m.mode = OFFLINE
            self.changed.add(robot_id)

    def remove(self, robot_id: str, now: int) -> list[Output]:
        """Forget a robot (its status was deleted): what it held is free again."""
        out: list[Output] = []
        for n in self.table.remove(robot_id):
            out.extend(self._hand_over(n, now))
        self.changed.add(robot_id)
        return out

    def _set_goal(self, m: Mover, node: int | None, now: int) -> None:
        """The robot's goal: the first stop of its route beyond what it holds (None: nothing beyond)."""
        route, goal = m.route, None
        if m.held:
            f = m.frontier
            # The route starts after the node it stands on (held[0]): the frontier is among its first
            # waypoints. It is not looked for further on, where the route may pass the node again (in and
            # out of a dead-end station): the station would be skipped.
            ahead = route[: len(m.held) - 1]
            rest, prev = (route[ahead.index(f) + 1 :], f) if f in ahead else (route, m.held[0])
            if rest:
                goal = next(rest[i] for i in range(len(rest)) if self.graph.is_stop(rest, i, prev))
        if goal != m.goal:
            m.goal = goal
            m.plan += 1
            m.plan_seq = -1
            m.plan_at = now
        if goal is None or node == goal or m.mode != ACTIVE:
            m.since = now  # at its goal, without one, or not movable: its wait has not begun

    # -- planning -------------------------------------------------------------------------------------------
    def plan(self, now: int) -> list[Output]:
        """A planning round if one is due at ``now`` (event time); returns the GRANTs it makes."""
        if not self.table.movers:
            return []
        if self.next_round == 0:
            # Robots report one by one: give every robot on the site time to say where it is before the
            # first grant, so that nobody is granted a node an unreported robot stands on.
            self.next_round = now + self.config.warmup_ms
        if now < self.next_round:
            return []
        self.next_round = now + self.config.round_ms
        self.rounds += 1
        self._update_obstacles()
        cfg, table = self.config, self.table
        boost = cfg.priority_boost_ms
        active = [
            m
            for m in table.movers.values()
            if m.mode == ACTIVE
            and m.held
            and m.goal is not None
            and m.goal != m.frontier
            and self._ahead_ms(m) < cfg.lookahead_ms
        ]
        active = self._admit(active)
        owner = table.owner

        stall = cfg.stall_weight
        turns = self._turns(active, now)

        def priority(m: Mover) -> tuple[bool, float, int]:
            # A robot whose goal another robot stands on (or is next in turn for) queues for it: everybody
            # else goes first and may push it out of their way, so that it does not block a lane, or the way
            # out of a dead end, while it waits.
            queued = m.goal is not None and (
                owner.get(m.goal, m.robot_id) != m.robot_id or turns.get(m.goal, m.robot_id) != m.robot_id
            )
            # Age since it last stood at its goal, plus the time it has waited for its next node: a robot
            # merging into a stream of older robots gets its turn within a bounded wait.
            waited = now - max(m.since, m.granted_at)
            return (queued, m.since - boost * m.priority - stall * waited, zlib.crc32(m.robot_id.encode()))

        active.sort(key=priority)
        rnd = plan_round(table, active, self._distances, self.rounds, turns)
        self.wanted = {}
        grown: list[Mover] = []
        for rid, node in sorted(rnd.moves.items()):
            m = table.movers[rid]
            if table.extend(m, node):
                grown.append(m)
            else:
                self.wanted[node] = rid
        reserved = set(rnd.reserved) | set(self.wanted)
        for m in grown:
            self._run_ahead(m, reserved | {g for g, rid in turns.items() if rid != m.robot_id})
        return [self._grant(m, now) for m in grown]

    def _turns(self, active: list[Mover], now: int) -> dict[int, str]:
        """Goals kept for the robot whose turn it is: of the robots bound for a goal, the one that has waited
        longest for its next node, once that wait passes ``turn_after_ms``. Others may not drive onto it
        before that robot has had it, so that robots arriving nearer a busy workstation one after another
        do not keep it from a robot waiting farther off."""
        after = self.config.turn_after_ms
        if after <= 0:
            return {}
        turns: dict[int, tuple[int, int, str]] = {}
        for m in active:
            waited = now - max(m.since, m.granted_at)
            if m.goal is None or waited < after:
                continue
            key = (-waited, zlib.crc32(m.robot_id.encode()), m.robot_id)
            if m.goal not in turns or key < turns[m.goal]:
                turns[m.goal] = key
        return {goal: key[2] for goal, key in turns.items()}

    def _admit(self, active: list[Mover]) -> list[Mover]:
        """Flow control: robots parked in a dead end that is not a station (a parking spot, a storage pocket)
        set off only while fewer than ``max_lane_density`` of the site's lane nodes (those that are not dead
        ends) hold robots on their way somewhere, oldest first, as many as there is room for; the others
        stay where they are (they can still be pushed out to make room). A busy site then drains instead of
        filling up with more robots than its lanes can carry."""
        graph = self.graph
        tips, kinds = graph.tips, graph.kinds
        movers = self.table.movers.values()
        cap = max(1.0, self.config.max_lane_density * (len(graph) - len(tips)))
        # robots on their way: one standing idle on a lane can be pushed aside, and is no reason to keep a
        # parked robot from its task for good
        room = cap - sum(1 for m in movers if m.held and m.held[0] not in tips and m.goal is not None)
        wanted = {m.goal for m in movers if m.goal is not None}  # a robot on another's goal must go anyway
        parked = [
            m
            for m in active
            if len(m.held) == 1
            and m.held[0] in tips
            and kinds[m.held[0]] in _PARKED_KINDS
            and m.held[0] not in wanted
        ]
        if len(parked) <= room:
            return active
        parked.sort(key=lambda m: (m.since, zlib.crc32(m.robot_id.encode())))
        held_back = {m.robot_id for m in parked[max(0, int(room)) :]}
        return [m for m in active if m.robot_id not in held_back]

    def _hand_over(self, node: int, now: int) -> list[Output]:
        """``node`` was just freed: the robot that wanted it gets it now."""
        rid = self.wanted.pop(node, None)
        if rid is None:
            return []
        m = self.table.movers.get(rid)
        if m is None or m.mode != ACTIVE or not self.table.extend(m, node):
            return []
        return [self._grant(m, now)]

    def _run_ahead(self, m: Mover, reserved: set[int]) -> None:
        """Extend a robot that just got a node along its quickest way to its goal, over free nodes nobody
        else is about to take, up to the lookahead."""
        if m.goal is None:
            return
        cfg, graph, table = self.config, self.graph, self.table
        dist = self._distances(m.goal)
        while (
            m.frontier != m.goal and len(m.held) < cfg.max_held_nodes and self._ahead_ms(m) < cfg.lookahead_ms
        ):
            f = m.frontier
            best = None
            for v in graph.succ[f]:
                if (
                    dist[v] < dist[f]
                    and table.free(v)
                    and v not in reserved
                    and v not in m.held
                    and (best is None or dist[v] < dist[best])
                ):
                    best = v
            if best is None or not table.extend(m, best):
                return

    def _ahead_ms(self, m: Mover) -> float:
        lanes = self.graph.lanes
        metres = sum(lanes[(a, b)].length for a, b in zip(m.held, m.held[1:], strict=False))
        return metres / self.config.speed_mps * 1000.0

    def _distances(self, goal: int) -> Any:
        if not self._penalty:
            return self.graph.seconds_to(goal)
        row = self._rows.get(goal)
        if row is None:
            row = self._rows[goal] = self.graph.seconds_to_with(goal, self._penalty)
            while len(self._rows) > _MAX_ROWS:
                self._rows.pop(next(iter(self._rows)))
        return row

    def _update_obstacles(self) -> None:
        """Nodes held by robots that will not move for long (OFFLINE, in error) cost ``obstacle_s`` more
        to drive onto, so that the others plan round them instead of queueing behind them."""
        obstacles = {n for m in self.table.movers.values() if m.mode == OFFLINE for n in m.held}
        if obstacles != set(self._penalty):
            self._penalty = dict.fromkeys(sorted(obstacles), self.config.obstacle_s)
            self._rows = {}

    # -- outputs --------------------------------------------------------------------------------------------
    def _grant(self, m: Mover, now: int) -> Output:
        graph, cfg = self.graph, self.config
        nodes = list(m.held)
        if m.goal is not None and m.goal != m.frontier:
            # along the cost-to-go the planning round used (no search of its own)
            nodes.extend(graph.descend(m.frontier, self._distances(m.goal), cfg.horizon_nodes, self._penalty))
        t = float(now)
        route: list[RouteWaypoint] = []
        for a, b in zip([None, *nodes], nodes, strict=False):
            if a is not None:
                t += graph.lanes[(a, b)].length / cfg.speed_mps * 1000.0
            route.append({"node_id": graph.ids[b], "eta": int(t)})
        m.plan_seq += 1
        m.granted_at = now
        self.changed.add(m.robot_id)
        plan_id = det_uuid7(m.plan_at, m.tenant_id, m.site_id, m.robot_id, "plan", m.plan)
        event_id = det_uuid7(now, m.tenant_id, m.robot_id, "GRANT", plan_id, m.plan_seq)
        value: GrantDecision = {
            "event_id": event_id,
            "tenant_id": m.tenant_id,
            "site_id": m.site_id,
            "occurred_at": now,
            "decision_id": event_id,
            "kind": "GRANT",
            "robot_id": m.robot_id,
            "task_id": m.task_id,
            "route": route,
            "eta": route[-1]["eta"] if route else None,
            "cost": None,
            "reason": "grant",
            "conflict_id": None,
            "planner": OWNER,
            "granted": len(m.held),
            "plan_id": plan_id,
            "plan_seq": m.plan_seq,
        }
        return Output(DECISIONS, m.robot_id, value)

    # -- state ----------------------------------------------------------------------------------------------
    def records(self, robot_ids: Iterable[str]) -> dict[str, MoverRecord | None]:
        """Stored form of the given robots (None: forgotten)."""
        movers = self.table.movers
        return {
            rid: movers[rid].to_record(self.graph) if rid in movers else None for rid in sorted(robot_ids)
        }

    def load(self, records: Iterable[MoverRecord]) -> None:
        """Put stored robots back (after a restart, a rebalance or a new map version)."""
        for record in sorted(records, key=lambda r: r["robot_id"]):
            self.table.add(Mover.from_record(record, self.graph))
