"""One vehicle's messages in: identity, dedupe, connection, factsheet, state and visualization.

Pure transitions over plain dicts (``VehicleState`` and the orders of :mod:`topologies.vda5050.control`);
outputs are the kernel's :class:`~topologies.kernel.Output` values. The time of an input is the Kafka
timestamp of its ``vda5050.inbound`` record (when the ingress received it), so a replay is the same run.

Vehicle state (one state sub-key per vehicle)::

    robot_id, tenant_id, site_id, fleet_id, name      where the vehicle belongs
    manufacturer, serial, prefix, major, version, release   its identity and protocol (from its messages)
    known        configured, or any vehicle when unknown ones are registered (FLEET_VDA_REGISTER_UNKNOWN)
    registered   fingerprint of the last RobotRegistration emitted
    limits       what the bridge obeys of its factsheet (inbound.limits)
    online, offline_sent, factsheet_asked   connection bookkeeping
    last         {topic: [timestamp ms, headerId(, connectionState)]}: dedupe and order
    seq          RobotTelemetry.seq of the last sample emitted (increasing)
    tele         the last RobotTelemetry emitted (for OFFLINE statuses and visualization updates)
    report       the last state, reduced (inbound.report)
    hid          {topic: headerId} of what the bridge sent last; decisions: recent decision ids
"""

from __future__ import annotations

from typing import NotRequired, TypedDict, cast

from schemas import vda
from schemas.errors import RejectedRecord
from schemas.records import Pose, RobotTelemetry
from topologies.kernel import Output
from topologies.telemetry.config import TelemetryConfig
from topologies.telemetry.rules import derive_status
from topologies.vda5050 import inbound, records
from topologies.vda5050.config import VdaConfig
from topologies.vda5050.inbound import Limits, Report
from topologies.vda5050.messages import VdaTopic
from topologies.vda5050.protocol import Connection, Factsheet, InboundHeader, State, Visualization
from topologies.vda5050.sitemodel import MapLookup

__all__ = [
    "VehicleState",
    "accept",
    "identity",
    "on_connection",
    "on_factsheet",
    "telemetry",
    "visualization",
]


class VehicleState(TypedDict):
    """One vehicle's state sub-key (see the module docstring)."""

    robot_id: str
    tenant_id: str
    site_id: str
    fleet_id: str
    name: str
    manufacturer: str
    serial: str
    known: bool
    registered: str | None
    limits: Limits | None
    online: bool | None  # None until it said anything
    offline_sent: bool
    factsheet_asked: int | None
    last: dict[str, list[int | str | None]]
    seq: int
    tele: RobotTelemetry | None
    report: Report | None
    hid: dict[str, int]
    decisions: list[str]
    prefix: str
    major: str
    version: str
    release: str
    factsheet_asks: NotRequired[int]  # factsheet requests sent
    plans: NotRequired[list[str]]  # recent plan ids of traffic's GRANTs
    paused_by_us: NotRequired[bool]  # the bridge sent a startPause
    stop_charging_at: NotRequired[int]  # when the bridge last sent a stopCharging


_STATUS_RULES = TelemetryConfig()
_WORKING = frozenset({"INITIALIZING", "RUNNING", "PAUSED"})


def identity(v: VehicleState | None, where: VdaTopic, message: InboundHeader, release: str,
             config: VdaConfig) -> VehicleState:  # fmt: skip
    """The vehicle's state with its identity and protocol refreshed from a valid message."""
    entry = config.entry(where.manufacturer, where.serial)
    if v is None:
        return {
            "robot_id": config.robot_id(where.manufacturer, where.serial),
            "tenant_id": config.tenant_id,
            "site_id": (entry.site_id if entry else None) or config.site_id,
            "fleet_id": (entry.fleet_id if entry else None) or config.fleet_id,
            "name": (entry.name if entry else None) or f"{where.manufacturer} {where.serial}",
            "manufacturer": where.manufacturer,
            "serial": where.serial,
            "known": entry is not None or config.register_unknown,
            "registered": None,
            "limits": None,
            "online": None,
            "offline_sent": False,
            "factsheet_asked": None,
            "last": {},
            "seq": 0,
            "tele": None,
            "report": None,
            "hid": {},
            "decisions": [],
            "prefix": where.prefix,
            "major": where.major,
            "version": message["version"],
            "release": release,
        }
    v = v.copy()
    v["prefix"] = where.prefix
    v["major"] = where.major
    v["version"] = message["version"]
    v["release"] = release
    return v


def accept(v: VehicleState, topic: str, message: InboundHeader, at: int) -> bool:
    """Whether a message is new (and then note it): a later timestamp, or the same with a higher headerId.

    A vehicle that restarts counts its headerIds from 0 again with later timestamps: accepted. A
    ``connection`` message is only dropped when it repeats the last one exactly: its last will was
    written at connect time, so its timestamp and headerId are older than the ONLINE sent after it."""
    header = int(message.get("headerId") or 0)
    try:
        stamp = vda.parse_timestamp(message["timestamp"])
    except (KeyError, ValueError):
        stamp = at
    message["_stamp"] = stamp
    last = v["last"].get(topic)
    key: list[int | str | None]
    if topic == "connection":
        key = [stamp, header, cast(Connection, message).get("connectionState")]
        if last == key:
            return False
    else:
        key = [stamp, header]
        if last is not None and (stamp, header) <= (last[0], last[1]):
            return False
    v["last"] = {**v["last"], topic: key}
    return True


def event_time(message: InboundHeader, at: int, config: VdaConfig) -> int:
    """The vehicle's timestamp, or the receive time when the vehicle's clock is off by more than the
    allowed skew (a sample from a wrong clock would be rejected or misplaced downstream)."""
    stamp = message.get("_stamp")  # parsed once by ``accept``
    if stamp is None:
        try:
            stamp = vda.parse_timestamp(message["timestamp"])
        except (KeyError, ValueError):
            return at
    return int(stamp) if abs(int(stamp) - at) <= config.clock_skew_ms else at


def _registration_outputs(v: VehicleState, factsheet: Factsheet | None, at: int) -> list[Output]:
    caps = inbound.capabilities(factsheet, v["release"]) if factsheet else [f"vda5050:{v['release']}"]
    record = records.registration(v, factsheet, caps, at)
    mark = inbound.fingerprint({k: record[k] for k in ("fleet_id", "name", "model", "capabilities",
                                                        "max_payload_kg", "site_id")})  # fmt: skip
    if mark == v.get("registered"):
        return []
    v["registered"] = mark
    return [records.output(records.REGISTRY, record)]


def on_factsheet(v: VehicleState, message: Factsheet, at: int) -> list[Output]:
    """A factsheet updates the vehicle's registration (model, capabilities, payload) and sets the limits
    the bridge obeys."""
    if not v["known"]:
        raise RejectedRecord(
            f"factsheet of unknown vehicle {v['manufacturer']}/{v['serial']}: not configured in "
            "FLEET_VDA_VEHICLES and FLEET_VDA_REGISTER_UNKNOWN is off"
        )
    v["limits"] = inbound.limits(message)
    return _registration_outputs(v, message, at)


def ensure_registered(v: VehicleState, at: int) -> list[Output]:
    """A known vehicle that sent no factsheet yet is registered from its configuration (a factsheet
    arriving later completes its registration)."""
    if v["known"] and v.get("registered") is None:
        return _registration_outputs(v, None, at)
    return []


def on_connection(v: VehicleState, message: Connection, at: int) -> list[Output]:
    """ONLINE marks the vehicle reachable; OFFLINE, CONNECTIONBROKEN (its last will, sent by the broker)
    and HIBERNATING make it OFFLINE on robot.status at once, for dispatch to take its task back."""
    state = inbound.connection_state(message)
    if state not in inbound.CONNECTION_DOWN:
        v["online"] = True
        return []
    v["online"] = False
    tele = v.get("tele")
    if not v["known"] or tele is None or v.get("offline_sent"):
        return []
    v["offline_sent"] = True
    previous = derive_status(tele, _STATUS_RULES)
    return [records.offline_status(v, tele, previous, max(at, tele["occurred_at"]))]


def _pose(v: VehicleState, rep: Report, maps: MapLookup, config: VdaConfig) -> Pose | None:
    model = maps(v["tenant_id"], v["site_id"])
    last = rep["last_node"] or None
    pos = rep["position"]
    node_xy = model.positions.get(last) if (model is not None and last) else None
    if pos is not None:
        at_node = None
        if node_xy is not None:
            dx, dy = pos["x"] - node_xy[0], pos["y"] - node_xy[1]
            if dx * dx + dy * dy <= config.node_radius_m**2:
                at_node = last
        return {
            "x": pos["x"],
            "y": pos["y"],
            "yaw": pos["theta"],
            "node_id": at_node,
            "map_name": pos["mapId"],
        }
    if node_xy is not None:  # a vehicle that does not localize itself: where its last node is
        return {"x": node_xy[0], "y": node_xy[1], "yaw": 0.0, "node_id": None if rep["driving"] else last,
                "map_name": config.map_id(v["site_id"])}  # fmt: skip
    tele = v.get("tele")
    return tele["pose"].copy() if tele else None


def _mode(rep: Report) -> tuple[str, str | None]:
    if not rep["automatic"]:
        return "ERROR", f"operatingMode {rep['mode']}"
    if rep["blocking_error"]:
        return "ERROR", rep["blocking_error"]
    if rep["charging"]:
        return "CHARGING", None
    if rep["driving"]:
        return "MOVING", None
    if any(s in _WORKING for s in rep["actions"].values()):
        return "WORKING", None
    if rep["nodes"]:
        # Nodes of its order still ahead and no action running: on its way, standing at the end of its
        # base until traffic grants more (the simulator's robots report the same as MOVING). Traffic plans
        # a WORKING robot as one that will not move.
        return "MOVING", None
    return "IDLE", None


def telemetry(
    v: VehicleState,
    message: State,
    rep: Report,
    task: tuple[str | None, str],
    at: int,
    maps: MapLookup,
    config: VdaConfig,
) -> list[Output]:
    """The RobotTelemetry of a state (``task``: the task id and phase the orders give it), and, for a
    vehicle that was reported OFFLINE, its status back at once."""
    pose = _pose(v, rep, maps, config)
    if pose is None:
        return []  # never localized and no known node: nothing to place it with (its orders still work)
    occurred_at = event_time(message, at, config)
    seq = max(int(v["seq"]) + 1, occurred_at)
    model = maps(v["tenant_id"], v["site_id"])
    remaining = [n[0] for n in rep["nodes"]]
    if remaining and remaining[0] == pose.get("node_id"):
        remaining = remaining[1:]
    limits = v.get("limits")
    speed_max = (limits.get("speed_max") if limits else None) or config.default_speed
    route = model.etas(occurred_at, pose["x"], pose["y"], remaining, float(speed_max)) if model else []
    mode, error_code = _mode(rep)
    task_id, phase = task
    record: RobotTelemetry = {
        "event_id": "",
        "tenant_id": v["tenant_id"],
        "site_id": v["site_id"],
        "occurred_at": occurred_at,
        "robot_id": v["robot_id"],
        "fleet_id": v["fleet_id"],
        "seq": seq,
        "pose": pose,
        "battery": rep["battery"],
        "speed": rep["speed"] if rep["driving"] else 0.0,
        "mode": mode,
        "error_code": error_code,
        "task_id": task_id,
        "task_phase": phase,
        "route": route,
    }
    record["event_id"] = records.det_uuid7(occurred_at, v["tenant_id"], v["robot_id"], "telemetry", seq)
    v["seq"] = seq
    v["tele"] = record
    out = [records.output(records.TELEMETRY, record)]
    if v.get("offline_sent"):
        v["offline_sent"] = False
        value = derive_status(record, _STATUS_RULES)
        out.append(
            records.status(v, record, value=value, previous="OFFLINE", reason="CHANGE", at=occurred_at)
        )
    return out


def visualization(
    v: VehicleState, message: Visualization, at: int, maps: MapLookup, config: VdaConfig
) -> list[Output]:
    """A pose update between states: the last telemetry with the new pose, at most every
    ``visualization_interval_ms``."""
    tele = v.get("tele")
    pos = inbound.position(message)
    if tele is None or pos is None:
        return []
    occurred_at = event_time(message, at, config)
    if occurred_at - int(tele["occurred_at"]) < config.visualization_interval_ms:
        return []
    seq = max(int(v["seq"]) + 1, occurred_at)
    pose: Pose = {**tele["pose"], "x": pos["x"], "y": pos["y"], "yaw": pos["theta"], "map_name": pos["mapId"]}
    model = maps(v["tenant_id"], v["site_id"])
    node = pose.get("node_id")
    if node and model is not None and node in model:
        nx, ny = model.positions[node]
        if (pos["x"] - nx) ** 2 + (pos["y"] - ny) ** 2 > config.node_radius_m**2:
            pose["node_id"] = None
    record: RobotTelemetry = {**tele, "occurred_at": occurred_at, "seq": seq, "pose": pose}
    if tele["task_phase"] == "STARTED":
        record["task_phase"] = "IN_PROGRESS"
    elif tele["task_phase"] in ("COMPLETED", "FAILED"):
        record["task_id"], record["task_phase"] = None, "NONE"
    record["event_id"] = records.det_uuid7(occurred_at, v["tenant_id"], v["robot_id"], "telemetry", seq)
    v["seq"] = seq
    v["tele"] = record
    return [records.output(records.TELEMETRY, record)]
