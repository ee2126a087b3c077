"""What vehicles report, in the shape the bridge works with: 2.x and 3.0 states, factsheets, connections.

``report`` reduces a (valid) ``state`` message of either major version to a small dict the order logic
reads (:class:`Report`); ``registration`` turns a factsheet into a RobotRegistration; ``limits`` keeps
what of a factsheet the bridge itself obeys (:class:`Limits`). Field-by-field mapping: docs/vda5050.md.
"""

from __future__ import annotations

import hashlib
from typing import Any, TypedDict

import orjson

from topologies.vda5050.protocol import Connection, Factsheet, State, Visualization

__all__ = [
    "CONNECTION_DOWN",
    "REJECTIONS",
    "Limits",
    "Position",
    "Report",
    "ReportedError",
    "capabilities",
    "connection_state",
    "fingerprint",
    "limits",
    "position",
    "report",
]

#: connectionState values meaning the vehicle cannot be reached (2.x spelling, 3.0 spelling, 3.0 sleep).
CONNECTION_DOWN = frozenset({"OFFLINE", "CONNECTIONBROKEN", "CONNECTION_BROKEN", "HIBERNATING"})
#: Error types (lower case, without ``_``) by which vehicles report that they rejected an order or update:
#: 2.1 §6.6.4 and 3.0 §6.1.4, plus the spellings of common implementations.
REJECTIONS = frozenset(
    {
        "validationerror",
        "validationfailure",
        "ordererror",
        "orderupdateerror",
        "outdatedorderupdate",
        "sameorderupdateid",
        "otherorderactive",
        "startnodeoutofrange",
        "noroutetotarget",
        "norouteerror",
        "unsupportedparameter",
        "invalidorderaction",
        "orderactionerror",
        "mobilerobotnotavailable",
        "unknownmapid",
        "maperror",
        "orderupdatefollowingcancel",
    }
)
#: Error levels that mean the vehicle cannot go on without help: FATAL (3.0 CRITICAL still accepts orders).
_BLOCKING_LEVELS = frozenset({"FATAL"})
_AUTOMATIC = frozenset({"AUTOMATIC", "SEMIAUTOMATIC"})
_TERMINAL = frozenset({"FINISHED", "FAILED"})


class Position(TypedDict):
    """Where a localized vehicle is: its ``agvPosition``/``mobileRobotPosition`` without the flags."""

    x: float
    y: float
    theta: float
    mapId: str


#: ``(errorType, errorLevel, {referenceKey: referenceValue}, errorDescription)`` of a reported error.
ReportedError = tuple[str, str, dict[str, str], str | None]


class Report(TypedDict):
    """What the bridge uses of a state (:func:`report`); stored as the vehicle's ``report`` (where the
    tuples are JSON arrays)."""

    order_id: str  # "" when the vehicle has no order
    update_id: int
    last_node: str
    last_seq: int
    nodes: list[tuple[str, int, bool]]  # (nodeId, sequenceId, released) of its nodeStates
    idle: bool
    actions: dict[str, str]  # actionId -> actionStatus, order and instant actions
    errors: list[ReportedError]
    driving: bool
    paused: bool
    charging: bool
    battery: float  # 0..1
    speed: float  # m/s
    position: Position | None
    mode: str  # operatingMode
    automatic: bool
    blocking_error: str | None  # errorType of the first FATAL error
    distance: float | None  # distanceSinceLastNode


class Limits(TypedDict):
    """What the bridge obeys of a vehicle's factsheet (:func:`limits`)."""

    max_nodes: int | None  # nodes per order message (maxArrayLens)
    speed_max: float | None  # m/s
    actions: list[str]  # the action types it knows


def fingerprint(value: Any) -> str:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=8).hexdigest()


def connection_state(message: Connection) -> str:
    return str(message["connectionState"])


def position(message: State | Visualization) -> Position | None:
    """``{x, y, theta, mapId}`` of a state or visualization, None when the vehicle is not localized."""
    pos = message.get("agvPosition") or message.get("mobileRobotPosition")
    if not pos:
        return None
    if not pos.get("positionInitialized", pos.get("localized", True)):
        return None
    return {"x": float(pos["x"]), "y": float(pos["y"]), "theta": float(pos["theta"]), "mapId": pos["mapId"]}


def _speed(message: State | Visualization) -> float:
    velocity = message.get("velocity") or {}
    vx, vy = float(velocity.get("vx") or 0.0), float(velocity.get("vy") or 0.0)
    return (vx * vx + vy * vy) ** 0.5


def report(message: State) -> Report:
    """The parts of a state message the bridge uses, the same for 2.x and 3.0.

    ``actions`` holds order and instant actions (3.0 reports them apart); ``errors`` lists
    ``(type, level, references, description)``; ``idle`` follows 3.0 §6.6.8 (no node or edge states,
    every order action FINISHED or FAILED)."""
    power = message.get("batteryState") or message.get("powerSupply")
    charge = power.get("batteryCharge", power.get("stateOfCharge", 0.0)) if power else 0.0
    order_actions = {a["actionId"]: a["actionStatus"] for a in message.get("actionStates") or ()}
    instant = {a["actionId"]: a["actionStatus"] for a in message.get("instantActionStates") or ()}
    errors: list[ReportedError] = [
        (
            str(e["errorType"]),
            str(e["errorLevel"]),
            {str(r["referenceKey"]): str(r["referenceValue"]) for r in e.get("errorReferences") or ()},
            e.get("errorDescription"),
        )
        for e in message.get("errors") or ()
    ]
    node_states = message.get("nodeStates") or []
    edge_states = message.get("edgeStates") or []
    mode = str(message.get("operatingMode"))
    return {
        "order_id": message.get("orderId") or "",
        "update_id": int(message.get("orderUpdateId") or 0),
        "last_node": message.get("lastNodeId") or "",
        "last_seq": int(message.get("lastNodeSequenceId") or 0),
        "nodes": [(n["nodeId"], int(n["sequenceId"]), bool(n["released"])) for n in node_states],
        "idle": not node_states and not edge_states and all(s in _TERMINAL for s in order_actions.values()),
        "actions": {**order_actions, **instant},
        "errors": errors,
        "driving": bool(message.get("driving")),
        "paused": bool(message.get("paused")),
        "charging": bool(power and power.get("charging")),
        "battery": min(max(float(charge) / 100.0, 0.0), 1.0),
        "speed": _speed(message),
        "position": position(message),
        "mode": mode,
        "automatic": mode in _AUTOMATIC,
        "blocking_error": next((e[0] for e in errors if e[1] in _BLOCKING_LEVELS), None),
        "distance": message.get("distanceSinceLastNode"),
    }


def limits(factsheet: Factsheet) -> Limits:
    """What the bridge obeys of a factsheet: order array limits, top speed, the action types it knows."""
    protocol = factsheet.get("protocolLimits") or {}
    arrays = protocol.get("maxArrayLens") or protocol.get("maximumArrayLengths") or {}
    features = factsheet.get("protocolFeatures") or {}
    actions = features.get("agvActions") or features.get("mobileRobotActions") or []
    physical = factsheet.get("physicalParameters") or {}
    caps: list[int] = []  # an order with n nodes has n - 1 edges
    if isinstance(arrays.get("order.nodes"), int) and arrays["order.nodes"] > 0:
        caps.append(arrays["order.nodes"])
    if isinstance(arrays.get("order.edges"), int) and arrays["order.edges"] > 0:
        caps.append(arrays["order.edges"] + 1)
    return {
        "max_nodes": min(caps) if caps else None,
        "speed_max": physical.get("speedMax") or physical.get("maximumSpeed"),
        "actions": sorted({str(a.get("actionType")) for a in actions if a.get("actionType")}),
    }


def capabilities(factsheet: Factsheet, release: str) -> list[str]:
    """RobotRegistration capabilities of a factsheet: the protocol, the vehicle class and kinematics,
    the actions it can do, the load types it carries."""
    spec = factsheet.get("typeSpecification")
    features = factsheet.get("protocolFeatures") or {}
    actions = features.get("agvActions") or features.get("mobileRobotActions") or []
    loads = (factsheet.get("loadSpecification") or {}).get("loadSets") or []
    out = [f"vda5050:{release}"]
    vehicle_class = (spec.get("agvClass") or spec.get("mobileRobotClass")) if spec else None
    kinematic = (
        (spec.get("agvKinematic") or spec.get("mobileRobotKinematic") or spec.get("mobileRobotKinematics"))
        if spec
        else None
    )
    if vehicle_class:
        out.append(f"class:{vehicle_class}")
    if kinematic:
        out.append(f"kinematic:{kinematic}")
    out.extend(sorted({str(a["actionType"]) for a in actions if a.get("actionType")}))
    out.extend(sorted({f"load:{s['loadType']}" for s in loads if s.get("loadType")}))
    return list(dict.fromkeys(out))
