"""Builders of Decision dicts (docs/records.md) with deterministic ids.

``decision_id`` is a UUIDv5 of what was decided (kind, task, robot, attempt and a per-task or per-robot
counter), so replaying the same inputs gives the same ids. ``event_id`` is a UUIDv7 whose timestamp is
the decision's ``occurred_at`` and whose random bits come from the decision id: deterministic too.
"""

from __future__ import annotations

import uuid

from schemas.records import Decision, RouteWaypoint, TaskSpec

__all__ = ["DECISION_NAMESPACE", "decision", "decision_id", "event_id_for", "route_waypoints"]

DECISION_NAMESPACE = uuid.UUID("6f0c6a2e-4a1f-5d0c-9d0e-2b8f6e1d7c3a")


def decision_id(kind: str, *parts: object) -> str:
    """UUIDv5 of ``kind`` and the parts that identify one decision."""
    return str(uuid.uuid5(DECISION_NAMESPACE, ":".join([kind, *(str(p) for p in parts)])))


def event_id_for(decision: str, occurred_at: int) -> str:
    """A UUIDv7 (RFC 9562 layout) with timestamp ``occurred_at`` and bits derived from ``decision``."""
    bits = uuid.UUID(decision).int
    rand_a = bits & 0xFFF
    rand_b = (bits >> 12) & ((1 << 62) - 1)
    value = (occurred_at & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return str(uuid.UUID(int=value))


def route_waypoints(legs: list[list[tuple[str, float]]], start_ms: int) -> list[RouteWaypoint]:
    """Join path legs [(node, seconds from the leg's start)] into RouteWaypoint dicts with ETAs.

    The first waypoint is the robot's current node (ETA = start); consecutive legs share their joint node.
    """
    out: list[RouteWaypoint] = []
    offset = 0.0
    for leg in legs:
        if not leg:
            continue
        for k, (node, seconds) in enumerate(leg):
            if k == 0 and out and out[-1]["node_id"] == node:
                continue
            out.append({"node_id": node, "eta": start_ms + round((offset + seconds) * 1000)})
        offset += leg[-1][1]
    return out


def decision(
    *,
    kind: str,
    decision: str,
    tenant_id: str,
    site_id: str,
    now_ms: int,
    robot_id: str,
    task_id: str | None = None,
    route: list[RouteWaypoint] | None = None,
    cost: float | None = None,
    reason: str | None = None,
    planner: str = "in_process",
    spec: TaskSpec | None = None,
) -> Decision:
    """One Decision record as a dict; ``eta`` is the last waypoint's ETA when there is a route. ``spec``
    (an ASSIGN's task spec) gives the stops and labels a robot driven by order needs (VDA 5050). The
    fields of traffic's decisions (``granted``, ``plan_id``, ``plan_seq``) are None."""
    route = route or []
    return {
        "event_id": event_id_for(decision, now_ms),
        "tenant_id": tenant_id,
        "site_id": site_id,
        "occurred_at": now_ms,
        "decision_id": decision,
        "kind": kind,
        "robot_id": robot_id,
        "task_id": task_id,
        "route": route,
        "eta": route[-1]["eta"] if route else None,
        "cost": None if cost is None else round(cost, 3),
        "reason": reason,
        "conflict_id": None,
        "planner": planner,
        "granted": None,
        "plan_id": None,
        "plan_seq": None,
        "pickup_node": spec.get("pickup_node") if spec else None,
        "dropoff_node": spec.get("dropoff_node") if spec else None,
        "labels": dict(spec.get("labels") or {}) if spec else {},
    }
