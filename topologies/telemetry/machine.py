"""The per-robot state machine of the telemetry topology, as pure transitions over plain dicts.

Every function takes the robot's current state (or None) and one input and returns the new state and
the records to emit; none of them reads a clock, a broker or the environment. The Quix adapter in
``builder.py`` loads and stores the state and routes the outputs.

Runtime state of one robot (JSON-serialisable, one state sub-key)::

    tenant_id, site_id, robot_id, fleet_id   identity, from the latest sample
    seq, last_seen                            highest seq accepted, latest occurred_at (event time, ms)
    seq_base, session_at                      after a restart of the robot (its seq began again): what is
                                              added to its seq, and when the restart was seen (absent
                                              until the first restart)
    status, battery, pose, speed, task_id, route   the last derived status and sample values
    last_emit                                 occurred_at of the last RobotStatus emitted (heartbeat)
    battery_low                               inside a BATTERY_LOW episode (hysteresis)
    timer_due                                 due_at of the armed offline timer, None when not armed
    window                                    the open 1-minute aggregate accumulator, or None
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from schemas.records import Pose, RobotRegistration, RobotTelemetry, RouteWaypoint, Timer
from topologies import timers
from topologies.kernel import Output
from topologies.telemetry import records
from topologies.telemetry.config import TelemetryConfig
from topologies.telemetry.rules import derive_status

__all__ = [
    "Registration",
    "RobotEntry",
    "RobotRuntime",
    "Step",
    "Window",
    "classify_order",
    "on_registration",
    "on_telemetry",
    "on_timer",
]


class Window(TypedDict):
    """The open 1-minute aggregate accumulator of a robot (``records.aggregate`` emits it)."""

    start: int
    site_id: str
    count: int  # samples folded in
    emitted: int  # ``count`` when it was last emitted
    last_seq: int
    bmin: float
    bmax: float
    bsum: float
    ssum: float
    smax: float
    dist: float


class RobotRuntime(TypedDict):
    """The runtime state of one robot (see the module docstring)."""

    tenant_id: str
    site_id: str
    robot_id: str
    fleet_id: str
    seq: int
    last_seen: int
    status: str
    battery: float
    pose: Pose
    speed: float
    task_id: str | None
    route: list[RouteWaypoint]
    last_emit: int | None
    battery_low: bool
    timer_due: int | None
    window: Window | None
    seq_base: NotRequired[int]
    session_at: NotRequired[int]


class Registration(TypedDict):
    """What a robot's state keeps of its RobotRegistration (:func:`on_registration`)."""

    tenant_id: str
    fleet_id: str
    active: bool
    managed_by: str


class RobotEntry(TypedDict, total=False):
    """A robot's state sub-key (``builder.STATE_ROBOT``); each part is absent until first set."""

    registration: Registration | None
    runtime: RobotRuntime | None
    joined: list[str]  # [tenant_id, site_id] of the site it joined last (``sitemaps``)
    bounds: list[float] | None  # of that site's map (``sitemaps.bounds_to_list``), None: none yet


Step = tuple[RobotRuntime | None, list[Output]]


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _route_nodes(route: Any) -> list[str]:
    return [w["node_id"] for w in route or ()]


def classify_order(robot: RobotRuntime | None, record: RobotTelemetry, config: TelemetryConfig) -> str:
    """``"new"``, ``"duplicate"`` (same seq as the last accepted), ``"stale"`` (an older seq, or a sample
    from before the robot restarted) or ``"restart"`` (the robot's seq began again: see ``on_telemetry``)."""
    if robot is None or robot["tenant_id"] != record["tenant_id"]:
        return "new"
    base = robot.get("seq_base", 0)
    if record["seq"] + base > robot["seq"]:
        return "stale" if base and record["occurred_at"] < robot["session_at"] else "new"
    if record["occurred_at"] - robot["last_seen"] >= config.restart_gap_ms:
        return "restart"
    return "duplicate" if record["seq"] + base == robot["seq"] else "stale"


def on_registration(current: Registration | None, record: RobotRegistration | None) -> Registration | None:
    """The registration kept in the robot's state: what the rules need of a RobotRegistration.

    A tombstone (``None``) forgets the robot; its later telemetry is rejected as unknown.
    """
    if record is None:
        return None
    return {
        "tenant_id": record["tenant_id"],
        "fleet_id": record["fleet_id"],
        "active": record.get("active", True),
        "managed_by": record.get("managed_by", "FLEETSTREAM"),
    }


def _open_window(start: int, record: RobotTelemetry, seq: int) -> Window:
    battery = record["battery"]
    speed = record.get("speed", 0.0)
    return {
        "start": start,
        "site_id": record["site_id"],
        "count": 0,
        "emitted": 0,
        "last_seq": seq,
        "bmin": battery,
        "bmax": battery,
        "bsum": 0.0,
        "ssum": 0.0,
        "smax": speed,
        "dist": 0.0,
    }


def _flush(robot: RobotRuntime, window: Window | None, config: TelemetryConfig, out: list[Output]) -> None:
    """Emit ``window`` if it holds samples not emitted yet (an early flush may be followed by a later one)."""
    if window is not None and window["count"] > window["emitted"]:
        out.append(records.aggregate(robot, window, config.window_ms))
        window["emitted"] = window["count"]


def on_telemetry(robot: RobotRuntime | None, record: RobotTelemetry, config: TelemetryConfig) -> Step:
    """Apply one *valid* telemetry sample (see ``rules.validate_telemetry``).

    Duplicates and stale samples (seq not above the last accepted) change nothing and emit nothing.
    A robot that restarts begins its seq again: a sample whose seq is not above the last accepted one but
    that is stamped ``restart_gap_ms`` or more after the last sample starts a new session, whose seqs are
    counted on from the last accepted one (the ``seq`` of statuses stays monotonic for every consumer);
    a sample stamped before that restart is stale from then on.
    Otherwise: ROBOT_ONLINE when the robot was OFFLINE; RobotStatus CHANGE when status, task, current
    node or planned route changed, else HEARTBEAT when none was emitted for ``heartbeat_ms``;
    BATTERY_LOW / BATTERY_OK once per crossing; the offline timer armed if none is pending (or the pending
    one is a whole ``offline_timeout_ms`` overdue: it never fired, so it is armed again); the sample
    folded into its 1-minute window (the previous window is emitted when a later one opens).

    This runs once per record of the busiest topic, so it is written for speed (locals, no helper
    calls on the common path); ``tests/unit/topologies/test_telemetry_machine.py`` pins its behaviour.
    """
    prev: RobotRuntime | None = robot
    occurred_at = record["occurred_at"]
    seq = record["seq"]
    base = 0
    session_at = 0
    if prev is not None:
        if prev["tenant_id"] != record["tenant_id"]:
            prev = None  # the robot id moved to another tenant: start over
        else:
            base = prev.get("seq_base", 0)
            if seq + base <= prev["seq"]:
                if occurred_at - prev["last_seen"] < config.restart_gap_ms:
                    return robot, []  # a duplicate or a stale sample
                base = prev["seq"] + 1  # the robot restarted: its seq began again
                session_at = occurred_at
            elif base:
                session_at = prev["session_at"]
                if occurred_at < session_at:
                    return robot, []  # sent before the robot restarted
            seq += base
    battery = record["battery"]
    speed = record.get("speed", 0.0)
    pose = record["pose"]
    task_id = record.get("task_id")
    route = record.get("route") or []
    new_status = derive_status(record, config)
    out: list[Output] = []
    if prev is None:
        previous_status: str | None = None
        last_seen = occurred_at
        last_emit: int | None = None
        battery_low = False
        timer_due: int | None = None
        window: Window | None = None
        prev_pose: Pose | None = None
        changed = True
    else:
        previous_status = prev.get("status")
        seen = prev.get("last_seen", occurred_at)
        last_seen = occurred_at if occurred_at > seen else seen
        last_emit = prev.get("last_emit")
        battery_low = prev.get("battery_low", False)
        timer_due = prev.get("timer_due")
        window = prev.get("window")
        prev_pose = prev.get("pose")
        prev_route = prev.get("route")
        changed = (
            new_status != previous_status
            or task_id != prev.get("task_id")
            or pose.get("node_id") != (prev_pose or {}).get("node_id")
            or bool((route or prev_route) and _route_nodes(route) != _route_nodes(prev_route))
        )
    state: RobotRuntime = {
        "tenant_id": record["tenant_id"],
        "site_id": record["site_id"],
        "robot_id": record["robot_id"],
        "fleet_id": record["fleet_id"],
        "seq": seq,
        "last_seen": last_seen,
        "status": new_status,
        "battery": battery,
        "pose": pose,
        "speed": speed,
        "task_id": task_id,
        "route": route,
        "last_emit": last_emit,
        "battery_low": battery_low,
        "timer_due": timer_due,
        "window": window,
    }
    if base:
        state["seq_base"] = base
        state["session_at"] = session_at

    if previous_status == "OFFLINE":
        out.append(
            records.alert(
                state,
                kind="ROBOT_ONLINE",
                severity="INFO",
                occurred_at=occurred_at,
                message=f"robot {state['robot_id']} is back online ({new_status})",
            )
        )

    if changed or last_emit is None or occurred_at - last_emit >= config.heartbeat_ms:
        out.append(
            records.status(
                state,
                status_value=new_status,
                previous=previous_status,
                reason="CHANGE" if changed else "HEARTBEAT",
                occurred_at=occurred_at,
            )
        )
        state["last_emit"] = occurred_at

    if not battery_low:
        if battery < config.battery_low:
            state["battery_low"] = True
            out.append(
                records.alert(
                    state,
                    kind="BATTERY_LOW",
                    severity="WARNING",
                    occurred_at=occurred_at,
                    message=f"robot {state['robot_id']} battery {battery:.0%} below {config.battery_low:.0%}",
                )
            )
    elif battery >= config.battery_low + config.battery_margin:
        state["battery_low"] = False
        out.append(
            records.alert(
                state,
                kind="BATTERY_OK",
                severity="INFO",
                occurred_at=occurred_at,
                message=f"robot {state['robot_id']} battery recovered to {battery:.0%}",
            )
        )

    if timer_due is None or last_seen - timer_due >= config.offline_timeout_ms:
        # None pending, or the pending one is a whole timeout overdue while samples keep coming: it was
        # lost on its way (at-least-once firing bounds lateness, not loss), so it is armed afresh.
        due = last_seen + config.offline_timeout_ms
        state["timer_due"] = due
        out.append(records.offline_timer(state, due_at=due, occurred_at=occurred_at))

    start = occurred_at - occurred_at % config.window_ms
    if window is None or start > window["start"]:
        _flush(state, window.copy() if window is not None else None, config, out)
        window = _open_window(start, record, seq)
    elif start == window["start"]:
        window = window.copy()  # the previous state stays as it was
    if start == window["start"]:
        # the sample folded into its window (inline: this is the hot path)
        distance = 0.0
        if prev_pose is not None and prev_pose.get("map_name") == pose.get("map_name"):
            distance = math.hypot(pose["x"] - prev_pose["x"], pose["y"] - prev_pose["y"])
        window["count"] += 1
        if battery < window["bmin"]:
            window["bmin"] = battery
        if battery > window["bmax"]:
            window["bmax"] = battery
        window["bsum"] += battery
        window["ssum"] += speed
        if speed > window["smax"]:
            window["smax"] = speed
        window["dist"] += distance
        window["last_seq"] = seq
    # else: a sample of an already emitted window (older event time, newer seq): not aggregated.
    state["window"] = window
    return state, out


def on_timer(robot: RobotRuntime | None, timer: Timer, config: TelemetryConfig) -> Step:
    """Handle a due offline timer (from ``timers.due.telemetry``).

    A timer that is not the one armed in state (already re-armed, or fired twice) is ignored. If the
    robot was seen since the timer was armed, the timer is re-armed for the remainder; otherwise the
    robot goes OFFLINE: RobotStatus OFFLINE, ROBOT_OFFLINE alert, its open window flushed, timer disarmed.
    """
    if (
        robot is None
        or robot["tenant_id"] != timer["tenant_id"]
        or not timers.is_armed(timer, robot.get("timer_due"))
    ):
        return robot, []
    due_at = timer["due_at"]
    state = robot.copy()
    out: list[Output] = []
    expected = timers.remaining_due(robot["last_seen"], config.offline_timeout_ms, due_at)
    if expected is not None:
        state["timer_due"] = expected
        out.append(records.offline_timer(state, due_at=expected, occurred_at=due_at))
        return state, out

    state["timer_due"] = None
    if robot["status"] != "OFFLINE":
        state["status"] = "OFFLINE"
        state["last_emit"] = due_at
        out.append(
            records.status(
                state,
                status_value="OFFLINE",
                previous=robot["status"],
                reason="OFFLINE",
                occurred_at=due_at,
            )
        )
        out.append(
            records.alert(
                state,
                kind="ROBOT_OFFLINE",
                severity="WARNING",
                occurred_at=due_at,
                message=(
                    f"robot {robot['robot_id']} sent no telemetry for {config.offline_timeout_ms / 1000:g} s "
                    f"(last seen {_iso(robot['last_seen'])})"
                ),
            )
        )
    window = robot.get("window")
    if window:
        window = state["window"] = window.copy()
        _flush(state, window, config, out)
    return state, out
