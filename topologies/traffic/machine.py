"""The pure site-state transition of the traffic topology: ``step(site_state, event, now_ms)``.

Inputs (plain dicts, all of one site): RobotStatus (``robot.status``), SiteMap (``site.maps``), and
TaskEvent (``task.events``, for task priorities); ``None`` is a tick (re-check holds as time passes).
Outputs: :class:`~topologies.traffic.records.Output` records for ``scheduler.decisions`` (HOLD /
RESUME / REROUTE, key robot_id), ``traffic.conflicts`` (key site_id) and ``alerts``.

``step`` mutates and returns the state it is given (copying a site per message would cost O(robots));
it reads no clock, broker or environment, so the same inputs always give the same outputs.
"""

from __future__ import annotations

import logging
from typing import Any

from topologies.traffic.config import TrafficConfig
from topologies.traffic.deadlock import scan_deadlocks
from topologies.traffic.records import Output
from topologies.traffic.resolve import settle
from topologies.traffic.resume import check_holds
from topologies.traffic.state import STATIONARY, SiteState, full_plan

__all__ = ["TERMINAL_TASK_STATES", "classify", "new_site", "remove_robot", "step"]

logger = logging.getLogger(__name__)

TERMINAL_TASK_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})

STATUS, MAP, TASK, TICK = "status", "map", "task", "tick"


def new_site(config: TrafficConfig, site_id: str = "", tenant_id: str = "") -> SiteState:
    return SiteState(config=config, site_id=site_id, tenant_id=tenant_id)


def classify(event: dict[str, Any] | None) -> str:
    """Which input ``event`` is: ``status``, ``map``, ``task`` or ``tick``."""
    if event is None:
        return TICK
    if "nodes" in event and "lanes" in event:
        return MAP
    if "robot_id" in event and "status" in event:
        return STATUS
    if "task_id" in event and "state" in event:
        return TASK
    raise ValueError(f"not a traffic input: fields {sorted(event)}")


def _identify(state: SiteState, record: dict[str, Any]) -> None:
    if not state.site_id:
        state.site_id = record["site_id"]
    if not state.tenant_id:
        state.tenant_id = record["tenant_id"]


def _on_status(state: SiteState, record: dict[str, Any]) -> list[str]:
    rid = record["robot_id"]
    prev = state.robots.get(rid)
    if prev is not None and record["seq"] <= prev["seq"]:
        return []
    entry: dict[str, Any] = {
        "robot_id": rid,
        "tenant_id": record["tenant_id"],
        "site_id": record["site_id"],
        "fleet_id": record.get("fleet_id"),
        "task_id": record.get("task_id"),
        "seq": record["seq"],
        "seen": record["occurred_at"],
        "status": record.get("status"),
        "node": (record.get("pose") or {}).get("node_id"),
        "route": [[w["node_id"], int(w["eta"])] for w in record.get("route") or ()],
        "hold": None,
        "last_reroute": prev.get("last_reroute") if prev else None,
        "conflicts": prev.get("conflicts", {}) if prev else {},
    }
    hold = prev.get("hold") if prev else None
    if hold and entry["status"] not in STATIONARY:
        plan, current = full_plan(entry)
        nodes = [n for n, _ in plan]
        if hold["node"] in nodes:  # still on its way to (or at) the hold node: keep holding there
            j = nodes.index(hold["node"])
            entry["hold"] = {
                **hold,
                "current": current,
                "prefix": [list(w) for w in plan[: j + 1]],
                "pending": [list(w) for w in plan[j:]],
            }
        else:
            logger.info(
                "robot %s left its hold node %s; hold dropped",
                rid,
                hold["node"],
                extra={"robot_id": rid, "site_id": state.site_id},
            )
    state.robots[rid] = entry
    state.reserve(rid)
    state.touch(rid)
    return [rid]


def _on_map(state: SiteState, record: dict[str, Any]) -> list[str]:
    current = state.site_map
    if current is not None and int(record.get("version", 0)) < int(current.get("version", 0)):
        return []
    state.site_map = record
    state.dirty_map = True
    state.rebuild()
    return sorted(state.robots)


def _on_task(state: SiteState, record: dict[str, Any]) -> list[str]:
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


def _prune(state: SiteState, now: int) -> None:
    if now < state.next_prune:
        return
    state.next_prune = now + state.config.bucket_ms
    for cid in [cid for cid, until in state.emitted.items() if until <= now]:
        state.forget(cid)


def step(state: SiteState, event: dict[str, Any] | None, now_ms: int) -> tuple[SiteState, list[Output]]:
    """Apply one input at event time ``now_ms``; returns the (same, updated) state and the outputs.

    Event time never goes back: an input older than the latest one seen is applied at the latest time.
    """
    kind = classify(event)
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
    _prune(state, now_ms)
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
