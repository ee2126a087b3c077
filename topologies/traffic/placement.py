"""Where a robot that yields can wait, and whether it must be told now.

A HOLD stops a robot at a node of its plan before the contested node or lane. That node must be one:

- the robot has not passed when the decision reaches it (``latency_ms`` after the input's event time),
  unless it stands there anyway (held there, or starting from there later than that);
- the robot it waits for does not pass after it arrives (or it would block its own way out: head-on in
  a corridor), nor once released if it is held itself, nor the way out of a dead end that robot
  stands in (``SiteView.exits``);
- no other robot passes while it is expected to wait there: until the blocker's window has ended
  plus ``clear_ms`` and ``latency_ms`` (the RESUME's way back), or ``stand_ms`` after its arrival when
  the blocker stands still until further notice. Robots that come later meet a standing robot and
  yield to it in their turn;
- not in a no-go zone.

The latest such node is taken. When there is none, the resolver may accept one that robots reach only
well after it (``later``): they meet it standing there and give way in their turn. The node the robot stands at is the last resort (unless another robot
means to stop there). A robot that has not set off yet (``state.waiting_to_start``) waits where it
stands, at the end of a dead end, out of everybody's way.
"""

from __future__ import annotations

from collections.abc import Collection

from topologies.traffic.problems import Plan, Problem
from topologies.traffic.reservations import Reservation
from topologies.traffic.state import SiteState, full_plan, waiting_to_start

__all__ = ["hold_index", "keep_clear", "release_of", "safe_index", "yielder"]


def yielder(state: SiteState, c: Problem) -> tuple[Reservation, Reservation, bool]:
    """``(yielding reservation, right-of-way reservation, forced)`` of a two-robot problem.

    A robot that stands until further notice never yields; a robot that has not set off yet yields to
    one on its way (it waits where it stands, out of everybody's way, until its whole route is clear);
    in a FOLLOWING violation the follower yields; otherwise the lower task priority, ties to the larger
    robot id.
    """
    a, b = c.mine, c.other
    assert b is not None
    if b.open != a.open:
        return (a, b, True) if b.open else (b, a, True)
    ea, eb = state.robots[a.robot_id], state.robots[b.robot_id]
    a_waits, b_waits = waiting_to_start(ea), waiting_to_start(eb)
    if a_waits != b_waits:
        starter, mover = (a, b) if a_waits else (b, a)
        if state.wanted(starter.robot_id):
            return mover, starter, True  # another robot comes to where it stands: it goes first
        return starter, mover, True
    if c.kind == "FOLLOWING":
        return (a, b, False) if (a.start, a.robot_id) > (b.start, b.robot_id) else (b, a, False)
    return (b, a, False) if state.outranks(a.robot_id, b.robot_id) else (a, b, False)


def _stands(state: SiteState, node: str, robot_id: str) -> bool:
    """Whether another robot means to stand at ``node`` until further notice."""
    return any(r.open and not r.booking and r.robot_id != robot_id for r in state.table.on_node(node))


def release_of(state: SiteState, blocker: Reservation) -> int | None:
    """When a wait for ``blocker`` should end (None: it stands there until further notice)."""
    if blocker.open:
        return None
    cfg = state.config
    return blocker.end + cfg.clear_ms + cfg.latency_ms


def keep_clear(state: SiteState, blocker: Reservation) -> set[str]:
    """Where not to wait for ``blocker``: where it goes once released if it is held, and the way out of
    a dead end it stands in (it must pass there)."""
    entry = state.robots.get(blocker.robot_id)
    hold = entry.get("hold") if entry else None
    avoid = {n for n, _ in hold["pending"]} if hold else set()
    if not blocker.lane and blocker.open and state.model is not None:
        avoid.update(state.model.exits.get(blocker.key, ()))
    return avoid


def safe_index(
    state: SiteState,
    robot_id: str,
    plan: Plan,
    current: bool,
    limit: int,
    now: int,
    *,
    blocker: str,
    release: int | None,
    avoid: Collection[str] = (),
    held_at: int = -1,
    later: int | None = None,
) -> int | None:
    """The last index <= ``limit`` of ``plan`` where ``robot_id`` can wait for ``blocker`` (module doc).

    With ``later``, robots that reach the node ``later`` ms or more after it do not rule it out: they
    will meet it standing there and give way in their turn (the fallback when no node is free)."""
    cfg = state.config
    margin = cfg.node_margin_ms
    horizon = now + cfg.latency_ms
    nogo = state.model.nogo_nodes if state.model is not None else {}
    on_node = state.table.on_node
    for j in range(min(limit, len(plan) - 1), -1, -1):
        node, eta = plan[j]
        if eta < horizon and j != held_at:
            return None  # it is past this node (and every earlier one) before the decision reaches it
        if j == 0 and current:  # where it stands, unless another robot means to stop there too
            return 0 if not _stands(state, node, robot_id) else None
        if node in nogo or node in avoid:
            continue
        arrive = eta - margin
        until = (release if release is not None else eta + cfg.stand_ms) + cfg.dwell_ms + margin
        if later is not None:
            until = min(until, arrive + later)
        if all(
            r.robot_id == robot_id
            or r.booking
            or r.end <= arrive
            or (r.robot_id != blocker and r.start >= until)
            for r in on_node(node)
        ):
            return j
    return None


def hold_index(
    state: SiteState,
    robot_id: str,
    res: Reservation,
    blocker: Reservation | None,
    now: int,
    *,
    later: int | None = None,
) -> int | None:
    """Where ``robot_id`` would be held before its reservation ``res`` to let ``blocker`` pass (None:
    nowhere). ``blocker`` None is a wait for a no-go zone to go. ``later``: see :func:`safe_index`."""
    entry = state.robots[robot_id]
    if entry.get("status") in {"OFFLINE", "ERROR"}:
        return None  # it stands still where it is
    plan, current = full_plan(entry)
    hold = entry.get("hold")
    starts_later = hold or plan[0][1] >= now + state.config.latency_ms
    if waiting_to_start(entry) and starts_later and not _stands(state, plan[0][0], robot_id):
        return 0  # it waits where it stands, until its way is clear
    return safe_index(
        state,
        robot_id,
        plan,
        current,
        res.idx if res.lane else res.idx - 1,
        now,
        blocker=blocker.robot_id if blocker is not None else "",
        release=release_of(state, blocker) if blocker is not None else None,
        avoid=keep_clear(state, blocker) if blocker is not None else (),
        held_at=len(hold["prefix"]) - 1 if hold else -1,
        later=later,
    )
