"""One planning round over the robots' frontiers: priority inheritance with backtracking (PIBT).

Okumura et al., "Priority Inheritance with Backtracking for Iterative Multi-agent Path Finding" (AIJ
2022), decides one synchronous step for every agent: in priority order an agent takes the free neighbour
nearest its goal; if that neighbour is another agent's, that agent inherits the priority and must move
out of the way first (recursively), and if it cannot, the first agent backtracks to its next candidate.
The highest-priority agent thus always progresses, and with priorities that grow while an agent has not
reached its goal, every agent reaches its goal (in graphs where every lane lies on a cycle).

Here the step is taken at each robot's *frontier* (the end of what it holds), and executed
asynchronously through grants (:mod:`topologies.traffic.grants`):
- a move onto a free node is granted at once;
- a move onto a node another robot still holds (it drives through it, or was just pushed off it) is a
  *want*: the node goes to the wanting robot the moment its holder reports it has left;
- swaps and rotations, which a synchronous step allows but asynchronous robots cannot perform (each
  would wait for the other to leave first), are excluded: a pushed robot may not move onto the frontier
  of any robot up its inheritance chain;
- FIXED and OFFLINE robots are obstacles, and nobody is planned onto a node of theirs;
- a node kept for one robot (``turns``: a goal kept for the robot that has waited longest for it, see
  ``Coordinator._turns``) is not moved onto by anybody else.

Priorities: a robot's age since it last stood at its goal (older first), advanced by its task's
priority; ties by a hash of its id. Robots with no goal (idle) only move when pushed, preferably into a
dead end (out of everybody's way).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from topologies.traffic.grants import ACTIVE, GrantTable, Mover

__all__ = ["Round", "plan_round"]


_INF = math.inf


def _tie(*parts: object) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


@dataclass(slots=True)
class Round:
    """The decisions of one round: ``moves[robot] = node`` it goes to next (absent: it stays)."""

    moves: dict[str, int] = field(default_factory=dict)
    reserved: dict[int, str] = field(default_factory=dict)  # node -> robot going there this round
    decided: set[str] = field(default_factory=set)


def plan_round(
    table: GrantTable,
    active: list[Mover],
    distances: Callable[[int], list[float]],
    salt: int,
    turns: Mapping[int, str] | None = None,
) -> Round:
    """Decide one step for each robot of ``active`` (already in priority order) and for those they push.

    ``distances(goal)`` gives travel seconds from every node to ``goal``. ``salt`` varies the ties from
    round to round (deterministically), so two robots do not face the same tie forever. ``turns`` keeps
    nodes for one robot each: nobody else is moved onto them.
    """
    rnd = Round()
    kept = turns or {}
    for mover in active:
        if mover.robot_id not in rnd.decided:
            root = distances(mover.goal) if mover.goal is not None else None
            _pibt(table, mover, (), rnd, distances, salt, pushed=False, root=root, turns=kept)
    return rnd


def _pibt(
    table: GrantTable,
    m: Mover,
    chain: tuple[str, ...],
    rnd: Round,
    distances: Callable[[int], list[float]],
    salt: int,
    *,
    pushed: bool,
    root: Any,
    turns: Mapping[int, str],
) -> bool:
    rid = m.robot_id
    rnd.decided.add(rid)
    graph = table.graph
    f = m.frontier
    dist = distances(m.goal) if m.goal is not None else None
    tips = graph.tips
    candidates: list[tuple[tuple[float, float, int, int], int]] = []
    for v in graph.succ[f]:
        if v in rnd.reserved or v in m.held or turns.get(v, rid) != rid:
            continue
        holder = table.holder(v)
        if holder is not None:
            if holder.mode != ACTIVE:
                continue  # an obstacle for now
            if v == holder.frontier and (
                holder.robot_id in chain
                or (holder.robot_id in rnd.decided and holder.robot_id not in rnd.moves)
            ):
                continue  # up the chain (a swap or rotation), or it stays there this round
        elif not table.free(v):
            continue  # contested
        d = dist[v] if dist is not None else (0.0 if v in tips else 1.0)
        # a pushed robot makes room: among equally good nodes, the one farthest from the way of the robot
        # that started the push (the first of the chain), so as not to be pushed again
        away = -root[v] if pushed and root is not None and root[v] < _INF else 0.0
        candidates.append(((d, away, 0 if holder is None else 1, _tie(rid, v, salt)), v))
    candidates.sort()
    stay = dist[f] if dist is not None else None
    for (d, _, _, _), v in candidates:
        if not pushed and stay is not None and d > stay:
            break  # a step away from its goal is worse than waiting (unless it must make room)
        rnd.reserved[v] = rid
        holder = table.holder(v)
        if holder is not None and v == holder.frontier and holder.robot_id not in rnd.decided:
            if _pibt(table, holder, (*chain, rid), rnd, distances, salt, pushed=True, root=root, turns=turns):
                rnd.moves[rid] = v
                return True
            del rnd.reserved[v]
            continue
        rnd.moves[rid] = v
        return True
    return False
