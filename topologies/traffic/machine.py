"""The pure site-state transition of the traffic monitor: ``step(site_state, kind, event, now_ms)``.

Inputs (plain dicts, all of one site), each with the kind its caller tagged it with: ``status``
(RobotStatus, ``robot.status``), ``map`` (SiteMap, ``site.maps``), ``task`` (TaskEvent, ``task.events``,
for task priorities) and ``tick`` (no record: re-check holds as time passes).
Outputs: :class:`~topologies.traffic.records.Output` records for ``scheduler.decisions`` (HOLD /
RESUME / REROUTE, key robot_id), ``traffic.conflicts`` (key site_id) and ``alerts``.

``step`` mutates and returns the state it is given (copying a site per message would cost O(robots));
it reads no clock, broker or environment, so the same inputs always give the same outputs.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from schemas.errors import RejectedRecord
from schemas.records import TERMINAL_TASK_STATES, RobotStatus, SiteMap, TaskEvent
from schemas.sitegraph import graph_for
from topologies.traffic.config import TrafficConfig
from topologies.traffic.deadlock import scan_deadlocks
from topologies.traffic.geometry import distance_to_segment
from topologies.traffic.graph import SiteView
from topologies.traffic.problems import clear_alerts
from topologies.traffic.records import MonitorInput, Output
from topologies.traffic.resolve import settle
from topologies.traffic.resume import check_holds
from topologies.traffic.state import Hold, RobotEntry, SiteState, StoredWaypoint, full_plan

__all__ = ["MAP", "STATUS", "TASK", "TICK", "new_site", "remove_robot", "step"]

logger = logging.getLogger(__name__)

#: Kinds of the monitor's inputs (the traffic site adds ``registration``, see ``site``).
STATUS, MAP, TASK, TICK = "status", "map", "task", "tick"
_KINDS = frozenset({STATUS, MAP, TASK, TICK})


def new_site(config: TrafficConfig, site_id: str = "", tenant_id: str = "") -> SiteState:
    return SiteState(config=config, site_id=site_id, tenant_id=tenant_id)


def _identify(state: SiteState, record: MonitorInput) -> None:
    if not state.site_id:
        state.site_id = record["site_id"]
    if not state.tenant_id:
        state.tenant_id = record["tenant_id"]


#: How far from a lane a pose may be and still count as on it (localisation noise, rounding).
_ON_LANE_M = 0.25


def _passed(model: SiteView | None, record: RobotStatus) -> StoredWaypoint | None:
    """``[node, at]``: the node a moving robot is driving away from and when it was there, from its pose
    and speed, while it is on the lane from that node to the first of its route (or still leaving it)."""
    speed = float(record.get("speed") or 0.0)
    route = record.get("route") or ()
    pose = record.get("pose") or {}
    if model is None or speed <= 0.0 or not route or pose.get("x") is None:
        return None
    nxt = route[0]["node_id"]
    here = (float(pose["x"]), float(pose["y"]))
    node = pose.get("node_id")
    if node == nxt:
        return None  # arriving at the route's first node
    if node is None:  # on a lane: the one into the route's first node that passes where it is
        ends = model.predecessors(nxt)
        if not ends:
            return None
        end = model.position(nxt)
        node = min(ends, key=lambda u: (distance_to_segment(here, model.position(u), end), u))
    elif model.lane_id(node, nxt) is None:
        return None
    if distance_to_segment(here, model.position(node), model.position(nxt)) > _ON_LANE_M:
        return None  # the pose is not on that lane: nothing to tell from it
    at = int(record["occurred_at"]) - round(math.dist(here, model.position(node)) / speed * 1000)
    return [node, at]


def _starter(model: SiteView | None, prev: RobotEntry | None, record: RobotStatus, moving: bool) -> bool:
    """Whether the robot has a route it has not set off on yet, from the end of a dead end (a parking
    spot, a dock, a charger: out of everybody's way): it reports a departure (its route starts with the
    node it stands on), or it did and has not moved since."""
    node = (record.get("pose") or {}).get("node_id")
    route = record.get("route") or ()
    if moving or node is None or not route or model is None or node not in model.tips:
        return False
    if route[0]["node_id"] == node:
        return True
    return bool(prev and prev.get("starter") and prev.get("node") == node and not prev.get("moving"))


def _carry_hold(entry: RobotEntry, hold: Hold) -> Hold | None:
    """The hold in force over the robot's new status: where a held robot stops (as the robot does).

    At the hold node while it is ahead on the same way (the same pending tail), else at the first visit
    of the hold node on a new route, else where it stands now: the node it is at, or the end of the lane
    it is on (also when it is just leaving a node).
    """
    plan, current = full_plan(entry)
    if not plan:
        return None  # nowhere known: nothing to hold it at
    nodes = [n for n, _ in plan]
    tail = [n for n, _ in hold["pending"]]
    if tail and nodes[len(nodes) - len(tail) :] == tail:
        j = len(nodes) - len(tail)
    elif hold["node"] in nodes:
        j = nodes.index(hold["node"])
    else:  # it stops where it is, or at the end of the lane it is on
        j = 1 if entry.get("passed") and len(plan) > 1 else 0
    return {
        **hold,
        "node": plan[j][0],
        "current": current,
        "prefix": [list(w) for w in plan[: j + 1]],
        "pending": [list(w) for w in plan[j:]],
    }


def _on_status(state: SiteState, record: RobotStatus) -> list[str]:
    rid = record["robot_id"]
    prev = state.robots.get(rid)
    if prev is not None and record["seq"] <= prev["seq"]:
        if record["seq"] == prev["seq"] and record.get("status") == "OFFLINE" != prev.get("status"):
            prev["status"] = "OFFLINE"  # fell silent: the last sample's seq, a new status
            state.dirty_robots.add(rid)
        return []
    moving = float(record.get("speed") or 0.0) > 0.0
    go_by = prev.get("go_by") if prev else None
    entry: RobotEntry = {
        "robot_id": rid,
        "tenant_id": record["tenant_id"],
        "site_id": record["site_id"],
        "fleet_id": record.get("fleet_id"),
        "task_id": record.get("task_id"),
        "seq": record["seq"],
        "seen": record["occurred_at"],
        "status": record.get("status"),
        "node": (record.get("pose") or {}).get("node_id"),
        "moving": moving,
        "passed": _passed(state.model, record),
        "starter": _starter(state.model, prev, record, moving),
        "route": [[w["node_id"], int(w["eta"])] for w in record.get("route") or ()],
        "hold": None,
        # told to go, not moving yet: the decision may still be on its way
        "go_by": go_by if go_by is not None and not moving and record["occurred_at"] < go_by else None,
        "last_reroute": prev.get("last_reroute") if prev else None,
        "conflicts": prev.get("conflicts", {}) if prev else {},
        "alert": prev.get("alert") if prev else None,  # an open CONFLICT_UNRESOLVED situation
    }
    hold = prev.get("hold") if prev else None
    if hold:
        # A hold lasts until RESUME or REROUTE, whatever route the robot is given meanwhile (an OFFLINE
        # robot keeps it too: it is resumed once it is back).
        entry["hold"] = _carry_hold(entry, hold)
        if entry["hold"] is not None and entry["hold"]["node"] != hold["node"]:
            logger.info(
                "robot %s is past its hold node %s: it holds at %s",
                rid,
                hold["node"],
                entry["hold"]["node"],
                extra={"robot_id": rid, "site_id": state.site_id},
            )
    state.robots[rid] = entry
    state.reserve(rid)
    state.touch(rid)
    return [rid]


def _on_map(state: SiteState, record: SiteMap) -> list[str]:
    current = state.site_map
    if current is not None and int(record.get("version", 0)) < int(current.get("version", 0)):
        return []
    try:
        graph_for(record, state.config.speed_mps)  # parsed once, shared (the view is built in rebuild)
    except ValueError as exc:  # a lane to an unknown node, a duplicate node id
        raise RejectedRecord(f"site map v{record.get('version')} is not a graph: {exc}") from exc
    state.site_map = record
    state.dirty_map = True
    state.rebuild()
    return sorted(state.robots)


def _on_task(state: SiteState, record: TaskEvent) -> list[str]:
    task_id = record["task_id"]
    if record.get("state") in TERMINAL_TASK_STATES:
        if state.tasks.pop(task_id, None) is not None:
            state.dirty_tasks.add(task_id)
        return []
    spec = record.get("spec")
    if spec and spec.get("priority") is not None and state.tasks.get(task_id) != int(spec["priority"]):
        state.tasks[task_id] = int(spec["priority"])
        state.dirty_tasks.add(task_id)
    return []


def _prune(state: SiteState, now: int, out: list[Output]) -> None:
    if now < state.next_prune:
        return
    state.next_prune = now + state.config.bucket_ms
    for cid in [cid for cid, until in state.emitted.items() if until <= now]:
        state.forget(cid)
    clear_alerts(state, now, out)


def step(state: SiteState, kind: str, event: Any, now_ms: int) -> tuple[SiteState, list[Output]]:
    """Apply one input of ``kind`` (STATUS, MAP, TASK, or TICK with ``event`` None) at event time
    ``now_ms``; returns the (same, updated) state and the outputs. ValueError for any other kind.
    ``event`` is the record of its kind's type (:data:`~topologies.traffic.records.MonitorInput`): the
    kind tags it, as the feed it came from.

    Event time never goes back: an input older than the latest one seen is applied at the latest time.
    """
    if kind not in _KINDS:
        raise ValueError(f"not a traffic monitor input kind: {kind!r}")
    if (event is None) != (kind == TICK):
        raise ValueError("a tick carries no record" if kind == TICK else f"a {kind} input needs its record")
    now_ms = state.clock = max(now_ms, state.clock)
    changed: list[str] = []
    if event is not None:
        _identify(state, event)
        if kind == STATUS:
            changed = _on_status(state, event)
        elif kind == MAP:
            changed = _on_map(state, event)
        elif kind == TASK:
            changed = _on_task(state, event)
    out: list[Output] = []
    _prune(state, now_ms, out)
    if state.model is None:
        return state, out
    changed.extend(check_holds(state, now_ms, out))
    if state.held and now_ms >= state.next_scan:
        state.next_scan = now_ms + state.config.deadlock_scan_ms
        changed.extend(scan_deadlocks(state, now_ms, out))
    settle(state, changed, now_ms, out)
    return state, out


def remove_robot(state: SiteState, robot_id: str) -> SiteState:
    """Forget a robot (a tombstone on its status): its reservations go with it."""
    state.robots.pop(robot_id, None)
    state.reserve(robot_id)
    state.touch(robot_id)
    return state
