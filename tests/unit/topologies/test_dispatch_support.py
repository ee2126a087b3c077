"""Factories of dispatch inputs (SiteMap, RobotRegistration, RobotStatus, TaskEvent dicts); no tests here.

Each returns a :class:`Record`: the dict, tagged with the kind of input it is, as the feed of its topic
tags it in the processor (the step is never told a kind from the record's fields).
"""

from __future__ import annotations

from typing import Any

from topologies.dispatch import MAP, REGISTRATION, STATUS, TASK

__all__ = [
    "SITE",
    "T0",
    "TENANT",
    "Record",
    "line_map",
    "queued_task",
    "registration",
    "site_map",
    "spec",
    "status",
    "tagged",
    "task_event",
]

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TENANT = "acme"
SITE = "s1"


class Record(dict[str, Any]):
    """A record built for a test, with ``kind``: the kind of input it is."""

    kind: str


def tagged(kind: str, record: dict[str, Any]) -> Record:
    out = Record(record)
    out.kind = kind
    return out


def _base(at: int) -> dict[str, Any]:
    return {"event_id": f"e-{at}", "tenant_id": TENANT, "site_id": SITE, "occurred_at": at}


def site_map(
    nodes: dict[str, tuple[float, float]],
    lanes: list[tuple[str, str]] | list[tuple[str, str, bool]],
    chargers: dict[str, str] | None = None,
    *,
    version: int = 1,
    speed_limits: dict[tuple[str, str], float] | None = None,
) -> Record:
    """Lanes are (a, b) bidirectional or (a, b, False) one-way a -> b; chargers map charger id -> node."""
    out_lanes = []
    for lane in lanes:
        a, b = lane[0], lane[1]
        bidir = lane[2] if len(lane) > 2 else True  # type: ignore[misc]
        limit = (speed_limits or {}).get((a, b))
        out_lanes.append(
            {"id": f"{a}-{b}", "from_node": a, "to_node": b, "bidirectional": bidir, "speed_limit": limit}
        )
    return tagged(
        MAP,
        {
            **_base(T0),
            "event_id": f"map-{version}-{hash(repr((nodes, lanes, chargers, speed_limits)))}",
            "version": version,
            "name": "test",
            "nodes": [
                {
                    "id": n,
                    "x": x,
                    "y": y,
                    "kind": "CHARGER" if n in (chargers or {}).values() else "WAYPOINT",
                    "name": None,
                }
                for n, (x, y) in nodes.items()
            ],
            "lanes": out_lanes,
            "zones": [],
            "chargers": [{"id": c, "node_id": n} for c, n in (chargers or {}).items()],
        },
    )


def line_map(n: int = 6, step: float = 10.0, chargers: dict[str, str] | None = None) -> Record:
    """N0 - N1 - ... - N(n-1) along x, ``step`` metres apart, all lanes bidirectional."""
    nodes = {f"N{i}": (i * step, 0.0) for i in range(n)}
    lanes = [(f"N{i}", f"N{i + 1}") for i in range(n - 1)]
    return site_map(nodes, lanes, chargers)


def registration(
    robot_id: str, caps: tuple[str, ...] = (), *, fleet: str = "f1", active: bool = True
) -> Record:
    return tagged(
        REGISTRATION,
        {
            **_base(T0),
            "robot_id": robot_id,
            "fleet_id": fleet,
            "name": robot_id,
            "model": None,
            "capabilities": list(caps),
            "max_payload_kg": None,
            "managed_by": "FLEETSTREAM",
            "active": active,
        },
    )


def status(
    robot_id: str,
    node: str | None,
    battery: float = 0.9,
    state: str = "IDLE",
    *,
    at: int = T0,
    xy: tuple = (0, 0),
) -> Record:
    return tagged(
        STATUS,
        {
            **_base(at),
            "robot_id": robot_id,
            "fleet_id": "f1",
            "status": state,
            "previous_status": None,
            "battery": battery,
            "pose": {"x": float(xy[0]), "y": float(xy[1]), "yaw": 0.0, "node_id": node, "map_name": None},
            "speed": 0.0,
            "task_id": None,
            "route": [],
            "seq": at,
            "last_seen_at": at,
            "reason": "CHANGE",
        },
    )


def task_event(
    task_id: str,
    seq: int,
    state: str,
    *,
    at: int = T0,
    robot_id: str | None = None,
    spec: dict[str, Any] | None = None,
    kind: str = "TRANSITION",
    attempt: int = 0,
) -> Record:
    return tagged(
        TASK,
        {
            **_base(at),
            "task_id": task_id,
            "seq": seq,
            "kind": kind,
            "state": state,
            "previous_state": None,
            "reason": None,
            "robot_id": robot_id,
            "attempt": attempt,
            "spec": spec,
            "external_id": None,
            "causation_id": None,
        },
    )


def spec(
    pickup: str | None = None,
    dropoff: str | None = None,
    *,
    priority: int = 5,
    caps: tuple[str, ...] = (),
    deadline: int | None = None,
    fleet: str | None = None,
    robot: str | None = None,
) -> dict[str, Any]:
    return {
        "category": "delivery",
        "priority": priority,
        "pickup_node": pickup,
        "dropoff_node": dropoff,
        "required_capabilities": list(caps),
        "deadline": deadline,
        "timeout_ms": None,
        "max_attempts": 3,
        "depends_on": [],
        "on_dependency_failure": "CANCEL",
        "fleet_id": fleet,
        "robot_id": robot,
        "labels": {},
        "payload_json": None,
    }


def queued_task(task_id: str, task_spec: dict[str, Any], *, at: int = T0) -> list[Record]:
    """CREATED (with the spec) then QUEUED."""
    return [
        task_event(task_id, 1, "CREATED", at=at, spec=task_spec),
        task_event(task_id, 2, "QUEUED", at=at),
    ]
