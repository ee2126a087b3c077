"""The dispatch site transition: ``step(site_state, kind, event, now_ms) -> (site_state, decisions)``.

Inputs are RobotStatus (kind ``status``), RobotRegistration (``registration``), SiteMap (``map``) and
TaskEvent (``task``) dicts (docs/records.md), each tagged with its kind by the feed it came from. After applying
one, the step matches what the input freed (a robot that became free, a task that became ready) against
the rest of the site, so the site is always at the greedy fixpoint: no free robot can take a ready task.

Contract with the tasks topology (the loop closes through topics):
- A task is ready when its latest TaskEvent is QUEUED (its spec came with CREATED). Dispatch books it at
  that event's ``seq`` and emits ASSIGN; ASSIGNED with the same robot confirms the booking.
- A later QUEUED, RETRYING, WAITING or terminal event, or an ASSIGNED to another robot, releases the
  booking; a REJECTED event while the booking is unconfirmed releases it too (the ASSIGN was refused)
  and the task waits for its next transition before it is dispatched again.
- When a robot goes OFFLINE its booked task gets UNASSIGN and waits for the tasks topology to queue it
  again (QUEUED / RETRYING), then it is dispatched like any other ready task.
The step updates ``site_state`` in place (it is never shared) and reads no clock: ``now_ms`` is injected.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, cast

from schemas.errors import RejectedRecord
from schemas.records import (
    RUNNING_TASK_STATES,
    TERMINAL_TASK_STATES,
    Decision,
    RobotRegistration,
    RobotStatus,
    SiteMap,
    TaskEvent,
)
from schemas.sitegraph import graph_for
from topologies.dispatch.decisions import decision, decision_id, route_waypoints
from topologies.dispatch.policy import Assignment, CostModel, CostTable, greedy, nearest_free_charger
from topologies.dispatch.state import RobotEntry, SiteState, TaskEntry, robot_view

__all__ = ["KINDS", "MAP", "REGISTRATION", "STATUS", "TASK", "Assigner", "greedy_assigner", "step"]

logger = logging.getLogger(__name__)

Assigner = Callable[[CostTable], tuple[list[Assignment], str]]
"""Solves one batch: the assignments and the planner's name (the Decision ``planner`` field)."""

#: Kinds of input, one per source topic.
STATUS, TASK, MAP, REGISTRATION = "status", "task", "map", "registration"
KINDS = (STATUS, TASK, MAP, REGISTRATION)

_TERMINAL = TERMINAL_TASK_STATES
_RELEASING = frozenset({"RETRYING", "WAITING", "CREATED", "QUEUED"})
_BUSY = RUNNING_TASK_STATES


def greedy_assigner(table: CostTable) -> tuple[list[Assignment], str]:
    return greedy(table), "in_process"


def step(
    state: SiteState, kind: str, event: Any, now_ms: int, assigner: Assigner = greedy_assigner
) -> tuple[SiteState, list[dict[str, Any]]]:
    """Apply one input record of ``kind`` to the site and return the decisions it causes (``event``: the
    record of its kind's type, :mod:`schemas.records`). The decisions are :class:`Decision` records,
    returned as the plain dicts the callers in ``pipelines/`` (the dispatch bench, the simulator) take."""
    if kind not in KINDS:
        raise RejectedRecord(f"dispatch: no input of kind {kind!r}")
    if state.tenant_id is None:
        state.tenant_id, state.site_id = event["tenant_id"], event["site_id"]
        state.dirty.add(("meta", ""))
    elif event["tenant_id"] != state.tenant_id:
        raise RejectedRecord(f"site {state.site_id} belongs to another tenant")
    out: list[Decision] = []
    if kind == MAP:
        if _on_map(state, event):
            _match_all(state, now_ms, assigner, out)
        return state, cast("list[dict[str, Any]]", out)
    robots: set[str] = set()
    tasks: set[str] = set()
    booked = len(state.booked)
    if kind == STATUS:
        robots |= _on_status(state, event, now_ms, out)
    elif kind == REGISTRATION:
        robots |= _on_registration(state, event)
    else:
        r, t = _on_task(state, event)
        robots |= r
        tasks |= t
    _charge(state, now_ms, out)
    _match(state, now_ms, assigner, robots & state.free, tasks & state.ready, out)
    if len(state.booked) < booked and state.parked and state.ready:
        # a robot gave up its task without taking another: room for a parked one (see _solve)
        _solve(state, now_ms, assigner, state.parked, state.ready, out)
    return state, cast("list[dict[str, Any]]", out)


# -- inputs -------------------------------------------------------------------------------------------
def _on_map(state: SiteState, record: SiteMap) -> bool:
    current = state.site_map
    if current is not None and int(current.get("version", 0)) > int(record.get("version", 0)):
        return False
    try:
        graph_for(record, state.config.nominal_speed_mps)
    except ValueError as exc:  # a lane to an unknown node, a duplicate node id
        raise RejectedRecord(f"site map v{record.get('version')} is not a graph: {exc}") from exc
    state.site_map = record
    state.dirty.add(("map", ""))
    graph = state.graph
    assert graph is not None
    for rid, robot in state.robots.items():
        x, y = robot["x"], robot["y"]
        if robot["node"] not in graph and x is not None and y is not None:
            robot["node"] = graph.nearest_node(x, y)
            state.dirty.add(("robot", rid))
    for charger_id, rid in list(state.charger_holder.items()):
        if all(cid != charger_id for cid, _ in graph.chargers):
            _release_charger(state, rid)
    state.reindex()
    return True


def _on_registration(state: SiteState, record: RobotRegistration) -> set[str]:
    rid = record["robot_id"]
    robot = state.robots.get(rid) or state.add_robot(rid)
    robot.update(
        {
            "registered": True,
            "fleet_id": record.get("fleet_id"),
            "active": bool(record.get("active", True)),
            "capabilities": sorted(record.get("capabilities") or ()),
        }
    )
    state.touch_robot(rid)
    return {rid}


def _on_status(state: SiteState, record: RobotStatus, now_ms: int, out: list[Decision]) -> set[str]:
    rid = record["robot_id"]
    robot = state.robots.get(rid) or state.add_robot(rid)
    at = int(record.get("occurred_at", 0))
    if at < robot["status_at"]:
        return set()  # an older status than the one applied
    was_free = rid in state.free
    old_node, old_battery = robot["node"], float(robot["battery"])
    pose = record.get("pose") or {}
    graph = state.graph
    node = pose.get("node_id")
    if graph is not None and node not in graph and pose.get("x") is not None:
        node = graph.nearest_node(float(pose["x"]), float(pose["y"]))
    robot.update(
        {
            "status": record["status"],
            "battery": float(record["battery"]),
            "node": node,
            "x": pose.get("x"),
            "y": pose.get("y"),
            "status_at": at,
            "fleet_id": record.get("fleet_id") or robot["fleet_id"],
        }
    )
    if record["status"] == "OFFLINE":
        if robot["task_id"] is not None:
            _unassign(state, robot, now_ms, "robot went offline", out)
        if robot["charger"] is not None:
            _release_charger(state, rid)
    elif robot["charger"] is not None and robot["battery"] >= state.config.charge_release:
        _release_charger(state, rid)
    state.touch_robot(rid)
    changed = not was_free or node != old_node or float(robot["battery"]) > old_battery
    return {rid} if changed else set()


def _on_task(state: SiteState, record: TaskEvent) -> tuple[set[str], set[str]]:
    tid = record["task_id"]
    task: TaskEntry | None = state.tasks.get(tid)
    if record.get("kind", "TRANSITION") != "TRANSITION":
        if (
            record.get("kind") == "REJECTED"
            and task is not None
            and task["robot_id"]
            and not task["confirmed"]
        ):
            # The ASSIGN was refused: free the robot, and let the task wait for its next transition
            # (re-assigning it at once could loop ASSIGN -> REJECTED through the topics).
            released = _release_booking(state, task)
            task["requeue"] = True
            state.touch_task(tid)
            return released, set()
        return set(), set()
    if task is None:
        if record["state"] in _TERMINAL:
            return set(), set()
        task = {
            "task_id": tid,
            "seq": 0,
            "state": "UNKNOWN",
            "spec": None,
            "created_at": int(record["occurred_at"]),
            "queued_at": int(record["occurred_at"]),
            "attempt": 0,
            "robot_id": None,
            "booked_seq": None,
            "confirmed": False,
            "assign_seq": 0,
            "requeue": False,
        }
        state.add_task(task)
    if int(record["seq"]) <= task["seq"]:
        return set(), set()  # duplicate or replayed
    new_state = record["state"]
    task.update({"seq": int(record["seq"]), "state": new_state, "attempt": int(record.get("attempt") or 0)})
    if record.get("spec") is not None:
        task["spec"] = record["spec"]
    if new_state == "CREATED":
        task["created_at"] = int(record["occurred_at"])
    freed: set[str] = set()
    if new_state in _TERMINAL:
        freed = _release_booking(state, task)
        state.drop_task(tid)
        return freed, set()
    if new_state in _RELEASING:
        freed = _release_booking(state, task)
        task["requeue"] = False
        if new_state == "QUEUED":
            task["queued_at"] = int(record["occurred_at"])
    elif new_state in _BUSY:
        who = record.get("robot_id")
        if task["robot_id"] == who:
            task["confirmed"] = True
        else:
            freed = _release_booking(state, task)
            robot = state.robots.get(who) if who else None
            if robot is not None and robot["task_id"] is None:
                _book(state, task, robot, confirmed=True)
    state.touch_task(tid)
    return freed, {tid}


# -- bookings -----------------------------------------------------------------------------------------
def _book(state: SiteState, task: TaskEntry, robot: RobotEntry, *, confirmed: bool) -> None:
    task.update({"robot_id": robot["robot_id"], "booked_seq": task["seq"], "confirmed": confirmed})
    robot["task_id"] = task["task_id"]
    state.touch_robot(robot["robot_id"])
    state.touch_task(task["task_id"])


def _release_booking(state: SiteState, task: TaskEntry) -> set[str]:
    rid = task["robot_id"]
    task.update({"robot_id": None, "booked_seq": None, "confirmed": False})
    if rid is None:
        return set()
    robot = state.robots.get(rid)
    if robot is not None and robot["task_id"] == task["task_id"]:
        robot["task_id"] = None
        state.touch_robot(rid)
    return {rid}


def _unassign(state: SiteState, robot: RobotEntry, now_ms: int, reason: str, out: list[Decision]) -> None:
    tid = robot["task_id"]
    robot["task_id"] = None
    task = state.tasks.get(tid) if tid is not None else None
    if task is None:
        return
    rid = robot["robot_id"]
    out.append(
        decision(
            kind="UNASSIGN",
            decision=decision_id("UNASSIGN", task["task_id"], rid, task["attempt"], task["assign_seq"]),
            tenant_id=state.tenant_id or "",
            site_id=state.site_id or "",
            now_ms=now_ms,
            robot_id=rid,
            task_id=task["task_id"],
            reason=reason,
        )
    )
    task.update({"robot_id": None, "booked_seq": None, "confirmed": False, "requeue": True})
    state.touch_task(task["task_id"])


def _release_charger(state: SiteState, robot_id: str) -> None:
    robot = state.robots[robot_id]
    if robot["charger"] is not None:
        state.charger_holder.pop(robot["charger"], None)
    robot.update({"charger": None, "charger_node": None})
    state.touch_robot(robot_id)


# -- decisions ----------------------------------------------------------------------------------------
def _charge(state: SiteState, now_ms: int, out: list[Decision]) -> None:
    """Send robots below the reserve to the nearest free charger, lowest battery first."""
    graph = state.graph
    if graph is None or not state.needs_charge:
        return
    for rid in sorted(state.needs_charge, key=lambda r: (float(state.robots[r]["battery"]), r)):
        free = [(cid, node) for cid, node in graph.chargers if cid not in state.charger_holder]
        if not free:
            return
        robot = state.robots[rid]
        start = robot["node"]
        assert start is not None  # a robot that needs a charger stands on a node (SiteState.wants_charge)
        found = nearest_free_charger(graph, start, free)
        if found is None:
            continue
        charger_id, node, seconds = found
        robot.update(
            {"charger": charger_id, "charger_node": node, "charge_seq": int(robot["charge_seq"]) + 1}
        )
        state.charger_holder[charger_id] = rid
        state.touch_robot(rid)
        out.append(
            decision(
                kind="CHARGE",
                decision=decision_id("CHARGE", rid, charger_id, robot["charge_seq"]),
                tenant_id=state.tenant_id or "",
                site_id=state.site_id or "",
                now_ms=now_ms,
                robot_id=rid,
                route=route_waypoints([graph.timed_path(start, node)], now_ms),
                cost=seconds,
                reason=f"battery {float(robot['battery']):.2f} below reserve {state.config.battery_reserve:.2f}; "
                f"charger {charger_id}",
            )
        )


def _match(
    state: SiteState,
    now_ms: int,
    assigner: Assigner,
    robots: set[str],
    tasks: set[str],
    out: list[Decision],
) -> None:
    """Match what became free/ready against the rest of the site (the rest is already at the fixpoint)."""
    if robots and state.ready:
        _solve(state, now_ms, assigner, robots, state.ready, out)
    tasks &= state.ready
    if tasks and state.free:
        _solve(state, now_ms, assigner, state.free, tasks, out)


def _match_all(state: SiteState, now_ms: int, assigner: Assigner, out: list[Decision]) -> None:
    _charge(state, now_ms, out)
    if state.free and state.ready:
        _solve(state, now_ms, assigner, state.free, state.ready, out)


def _solve(
    state: SiteState,
    now_ms: int,
    assigner: Assigner,
    robot_ids: Iterable[str],
    task_ids: Iterable[str],
    out: list[Decision],
) -> None:
    """Assign ``task_ids`` to ``robot_ids``. While the site's robots with a task would pass its cap
    (``DispatchConfig.max_busy_density``), the robots not parked go first and parked robots take only
    the room left: more robots than the lanes carry would wait in their spots with a task they cannot
    start, while robots already out could have taken it."""
    robots, tasks = set(robot_ids), set(task_ids)
    cap = state.busy_cap()
    parked = robots & state.parked
    if cap is None or not parked or len(state.booked) + min(len(robots), len(tasks)) <= cap:
        _assign(state, now_ms, assigner, robots, tasks, out)
        return
    if robots - parked:
        _assign(state, now_ms, assigner, robots - parked, tasks, out)
        tasks &= state.ready
    room = cap - len(state.booked)
    if room > 0 and tasks:
        _assign(state, now_ms, assigner, parked, tasks, out, limit=room)


def _assign(
    state: SiteState,
    now_ms: int,
    assigner: Assigner,
    robot_ids: Iterable[str],
    task_ids: Iterable[str],
    out: list[Decision],
    limit: int | None = None,
) -> None:
    """Solve one batch and book its assignments (the first ``limit`` of them, in the assigner's order)."""
    graph = state.graph
    if graph is None:
        return
    model = CostModel(graph, state.config, now_ms)
    table = model.table(
        [robot_view(state.robots[r]) for r in sorted(robot_ids)],
        [state.task_view(t) for t in task_ids],
    )
    # The configured assigner decides whenever there is a choice (one robot freed with tasks queued is the
    # common case); a single robot-task pair needs no solver.
    assignments, planner = (
        assigner(table) if len(table.robots) * len(table.tasks) > 1 else greedy_assigner(table)
    )
    for a in assignments[:limit]:
        robot, task = state.robots.get(a.robot_id), state.tasks.get(a.task_id)
        if robot is None or task is None or a.robot_id not in state.free or a.task_id not in state.ready:
            logger.warning("dropping an assignment of a busy robot or an unready task: %s", a)
            continue
        start = robot["node"]
        assert start is not None  # a free robot stands on a node (SiteState.is_free)
        _book(state, task, robot, confirmed=False)
        task["assign_seq"] = int(task["assign_seq"]) + 1
        view = state.task_view(a.task_id)
        first = view.pickup or view.dropoff or start
        legs = [graph.timed_path(start, first)]
        if view.pickup and view.dropoff:
            legs.append(graph.timed_path(view.pickup, view.dropoff))
        out.append(
            decision(
                kind="ASSIGN",
                decision=decision_id("ASSIGN", a.task_id, a.robot_id, task["attempt"], task["assign_seq"]),
                tenant_id=state.tenant_id or "",
                site_id=state.site_id or "",
                now_ms=now_ms,
                robot_id=a.robot_id,
                task_id=a.task_id,
                route=route_waypoints(legs, now_ms),
                cost=a.cost,
                reason=f"travel {a.travel_s:.1f}s",
                planner=planner,
                spec=task["spec"],
            )
        )
