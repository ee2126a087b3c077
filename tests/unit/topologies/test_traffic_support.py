"""Factories of traffic inputs (SiteMap, RobotStatus, TaskEvent dicts) and output filters; no tests here.

Each factory's record knows its kind (:class:`Record`), as the kernel tags each source's records, so
:func:`feed` steps the monitor with it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from topologies.traffic import MAP, STATUS, TASK, TICK, Output, SiteState, TrafficConfig, new_site, step

__all__ = [
    "INSTANT",
    "SITE",
    "T0",
    "TENANT",
    "Record",
    "active_clashes",
    "alerts",
    "conflicts",
    "decisions",
    "feed",
    "fresh",
    "grid_map",
    "site_map",
    "status",
    "task",
]

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TENANT = "acme"
SITE = "s1"
S = 1000  # one second in ms


class Record(dict[str, Any]):
    """A record's fields, and the kind of input it is (``STATUS``, ``MAP``, ``TASK``)."""

    def __init__(self, kind: str, fields: dict[str, Any]) -> None:
        super().__init__(fields)
        self.kind = kind


def _base(at: int) -> dict[str, Any]:
    return {"event_id": f"e-{at}", "tenant_id": TENANT, "site_id": SITE, "occurred_at": at}


def site_map(
    nodes: dict[str, tuple[float, float]],
    lanes: Iterable[tuple[str, str] | tuple[str, str, bool]],
    *,
    zones: Iterable[tuple[str, list[tuple[float, float]]]] = (),
    version: int = 1,
) -> Record:
    lane_list = []
    for lane in lanes:
        a, b = lane[0], lane[1]
        bidirectional = lane[2] if len(lane) > 2 else True
        lane_list.append({"id": f"{a}-{b}", "from_node": a, "to_node": b, "bidirectional": bidirectional})
    record = {
        **_base(T0),
        "version": version,
        "name": "test",
        "nodes": [{"id": n, "x": x, "y": y, "kind": "WAYPOINT"} for n, (x, y) in nodes.items()],
        "lanes": lane_list,
        "zones": [
            {"id": zid, "kind": "NO_GO", "polygon": [{"x": x, "y": y} for x, y in poly]}
            for zid, poly in zones
        ],
        "chargers": [],
    }
    # one event id per map content: the shared graph is cached by (tenant, site, version, event id, ...)
    digest = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]
    return Record(MAP, {**record, "event_id": f"map-{digest}"})


def grid_map(width: int, height: int, spacing: float = 2.0) -> Record:
    """A ``width`` x ``height`` grid of bidirectional lanes; node ``n{x}_{y}``."""
    nodes = {f"n{x}_{y}": (x * spacing, y * spacing) for x in range(width) for y in range(height)}
    lanes: list[tuple[str, str]] = []
    for x in range(width):
        for y in range(height):
            if x + 1 < width:
                lanes.append((f"n{x}_{y}", f"n{x + 1}_{y}"))
            if y + 1 < height:
                lanes.append((f"n{x}_{y}", f"n{x}_{y + 1}"))
    return site_map(nodes, lanes)


def status(
    robot_id: str,
    node: str | None,
    route: Iterable[tuple[str, float]],
    *,
    at: int = T0,
    seq: int = 1,
    task_id: str | None = None,
    state: str = "MOVING",
) -> Record:
    """A RobotStatus at ``node`` with ``route`` given as ``(node_id, seconds after at)``."""
    return Record(
        STATUS,
        {
            **_base(at),
            "robot_id": robot_id,
            "fleet_id": "f1",
            "status": state,
            "previous_status": None,
            "battery": 0.9,
            "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": node, "map_name": "L1"},
            "speed": 0.0,  # standing at `node` until its route starts (a moving robot: see test_traffic_latency)
            "task_id": task_id,
            "route": [{"node_id": n, "eta": at + round(sec * S)} for n, sec in route],
            "seq": seq,
            "last_seen_at": at,
            "reason": "CHANGE",
        },
    )


def task(task_id: str, priority: int, *, state: str = "ASSIGNED", robot_id: str | None = None) -> Record:
    return Record(
        TASK,
        {
            **_base(T0),
            "task_id": task_id,
            "seq": 1,
            "kind": "TRANSITION",
            "state": state,
            "previous_state": None,
            "robot_id": robot_id,
            "attempt": 0,
            "spec": {"category": "delivery", "priority": priority},
        },
    )


#: The crafted scenarios assume decisions reach the robots at once (latency has tests of its own).
INSTANT = TrafficConfig(latency_ms=0)


def fresh(site: dict[str, Any], config: TrafficConfig | None = None) -> SiteState:
    state, _ = step(new_site(config or INSTANT), MAP, site, T0)
    return state


def feed(state: SiteState, *events: Record | None, at: int | None = None) -> list[Output]:
    """Step every record, of its kind, at its own ``occurred_at`` (or at ``at``), and None as a tick at
    ``at``; collect the outputs."""
    out: list[Output] = []
    for event in events:
        if event is not None and not isinstance(event, Record):
            raise TypeError(
                "feed takes records made by status(), task() or site_map() (they know their kind)"
            )
        now = at if at is not None else (event["occurred_at"] if event is not None else T0)
        _, got = step(state, TICK if event is None else event.kind, event, now)
        out.extend(got)
    return out


def decisions(out: Iterable[Output], kind: str | None = None) -> list[dict[str, Any]]:
    return [
        o.value for o in out if o.topic == "scheduler.decisions" and (kind is None or o.value["kind"] == kind)
    ]


def conflicts(out: Iterable[Output]) -> list[dict[str, Any]]:
    return [o.value for o in out if o.topic == "traffic.conflicts"]


def alerts(out: Iterable[Output]) -> list[dict[str, Any]]:
    return [o.value for o in out if o.topic == "alerts"]


def active_clashes(state: SiteState, *, include_held: bool = False) -> list[tuple[str, str, str, str]]:
    """Every pair of conflicting reservations in the table, as ``(kind, robot_a, robot_b, key)``.

    Without ``include_held`` only robots that are not held count (the "active" reservations). Booked
    ways of held robots (``Reservation.booking``) bind only robots that have not set off: a clash with
    one counts only for such a robot.
    """
    from topologies.traffic import clash_between

    found: list[tuple[str, str, str, str]] = []
    for index in (state.table.by_node, state.table.by_lane):
        for key, reservations in index.items():
            live = [r for r in reservations if include_held or r.robot_id not in state.held]
            for i, a in enumerate(live):
                for b in live[i + 1 :]:
                    if a.robot_id == b.robot_id or (a.booking and b.booking):
                        continue
                    booked, other = (a, b) if a.booking else (b, a) if b.booking else (None, None)
                    if booked is not None and other is not None:
                        binds = state.bookings_of(other.robot_id)
                        if binds is None or not binds(booked.robot_id):
                            continue
                    clash = clash_between(a, b, state.config)
                    if clash is not None:
                        first, second = sorted((a.robot_id, b.robot_id))
                        found.append((clash.kind, first, second, key))
    return found
