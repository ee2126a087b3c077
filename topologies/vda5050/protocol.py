"""The VDA 5050 messages the bridge reads and writes, typed after the official JSON schemas (2.1.0 and
3.0.0, ``schemas/vda5050/``); every field name is the schemas' own.

One type per message or object serves both releases: where 3.0 renamed a field (``agvPosition`` ->
``mobileRobotPosition``, ``batteryState`` -> ``powerSupply``, ``maxArrayLens`` -> ``maximumArrayLengths``,
...) both spellings are declared, each ``NotRequired``, and a field is required only when both schemas
require it. Only the fields the bridge reads or writes are declared: the vehicles' messages carry more.
A received message was validated against the schema of its version before it is typed as one of these
(:func:`topologies.vda5050.messages.decode`); what the bridge sends is validated before it leaves
(:func:`topologies.vda5050.control.send`).
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

__all__ = [
    "Action",
    "ActionParameter",
    "ActionState",
    "AgvAction",
    "AgvPosition",
    "BatteryState",
    "Connection",
    "Edge",
    "EdgeState",
    "Error",
    "ErrorReference",
    "Factsheet",
    "Header",
    "InboundHeader",
    "InstantActions",
    "InstantActionsBody",
    "LoadSet",
    "LoadSpecification",
    "MaxArrayLens",
    "Node",
    "NodePosition",
    "NodeState",
    "Order",
    "OrderBody",
    "OutboundMessage",
    "PhysicalParameters",
    "ProtocolFeatures",
    "ProtocolLimits",
    "State",
    "TypeSpecification",
    "VehicleMessage",
    "Velocity",
    "Visualization",
]


# ------------------------------------------------------------------------------------------- headers
class Header(TypedDict):
    """The protocol header (2.1 §6.4, 3.0 §7.2) of every message the bridge sends."""

    headerId: int
    timestamp: str
    version: str
    manufacturer: str
    serialNumber: str


class InboundHeader(TypedDict):
    """The header of a message a vehicle sent, as ``decode`` accepts it (version and vehicle checked)."""

    headerId: NotRequired[int]  # optional in 2.1 factsheet and visualization
    timestamp: NotRequired[str]
    version: str
    manufacturer: str
    serialNumber: str
    _stamp: NotRequired[int]  # not VDA 5050: ``timestamp`` in ms, parsed once by ``vehicle.accept``


# ----------------------------------------------------------------------------- sent: order, instantActions
class ActionParameter(TypedDict):
    key: str
    value: Any  # any JSON value (the schemas allow array, boolean, number, string and object)


class Action(TypedDict):
    """An action of a node or edge, or an instant action."""

    actionType: str
    actionId: str
    blockingType: str
    actionParameters: NotRequired[list[ActionParameter]]


class NodePosition(TypedDict):
    x: float
    y: float
    mapId: str


class Node(TypedDict):
    nodeId: str
    sequenceId: int
    released: bool
    nodePosition: NotRequired[NodePosition]
    actions: list[Action]


class Edge(TypedDict):
    edgeId: str
    sequenceId: int
    released: bool
    startNodeId: NotRequired[str]  # 2.1 (required there); 3.0 has none
    endNodeId: NotRequired[str]
    actions: list[Action]


class OrderBody(TypedDict):
    """An ``order`` without its header (``orders.issue`` builds it, ``control.send`` adds the header)."""

    orderId: str
    orderUpdateId: int
    nodes: list[Node]
    edges: list[Edge]


class Order(Header, OrderBody):
    """The ``order`` message (2.1 §6.6, 3.0 §6.1)."""


class InstantActionsBody(TypedDict):
    actions: list[Action]


class InstantActions(Header, InstantActionsBody):
    """The ``instantActions`` message (2.1 §6.9, 3.0 §6.2.1)."""

    instantActions: NotRequired[list[Action]]  # the 2.0.0 name of ``actions``: 2.0 vehicles get both


OutboundMessage = Order | InstantActions


# ------------------------------------------------------------------------------------ received: state
class NodeState(TypedDict):
    nodeId: str
    sequenceId: int
    released: bool


class EdgeState(TypedDict):
    edgeId: str
    sequenceId: int
    released: bool


class ActionState(TypedDict):
    actionId: str
    actionStatus: str


class ErrorReference(TypedDict):
    referenceKey: str
    referenceValue: str


class Error(TypedDict):
    errorType: str
    errorLevel: str
    errorReferences: NotRequired[list[ErrorReference]]
    errorDescription: NotRequired[str]


class AgvPosition(TypedDict):
    """``agvPosition`` (2.1) or ``mobileRobotPosition`` (3.0)."""

    x: float
    y: float
    theta: float
    mapId: str
    positionInitialized: NotRequired[bool]  # 2.1 (required there)
    localized: NotRequired[bool]  # 3.0 (required there)


class Velocity(TypedDict, total=False):
    vx: float
    vy: float


class BatteryState(TypedDict):
    """``batteryState`` (2.1) or ``powerSupply`` (3.0)."""

    batteryCharge: NotRequired[float]  # 2.1 (required there)
    stateOfCharge: NotRequired[float]  # 3.0 (required there)
    charging: bool


class State(InboundHeader):
    """The ``state`` message (2.1 §6.10, 3.0 §6.6)."""

    orderId: str
    orderUpdateId: int
    lastNodeId: str
    lastNodeSequenceId: int
    nodeStates: list[NodeState]
    edgeStates: list[EdgeState]
    driving: bool
    paused: NotRequired[bool]
    distanceSinceLastNode: NotRequired[float]
    operatingMode: str
    actionStates: list[ActionState]
    instantActionStates: NotRequired[list[ActionState]]  # 3.0 (required there)
    batteryState: NotRequired[BatteryState]  # 2.1 (required there)
    powerSupply: NotRequired[BatteryState]  # 3.0 (required there)
    errors: list[Error]
    agvPosition: NotRequired[AgvPosition]  # 2.1
    mobileRobotPosition: NotRequired[AgvPosition]  # 3.0
    velocity: NotRequired[Velocity]


class Visualization(InboundHeader, total=False):
    """The ``visualization`` message (2.1 §6.13, 3.0 §6.7)."""

    agvPosition: AgvPosition  # 2.1
    mobileRobotPosition: AgvPosition  # 3.0
    velocity: Velocity


class Connection(InboundHeader):
    """The ``connection`` message (2.1 §6.14, 3.0 §6.5)."""

    connectionState: str


# -------------------------------------------------------------------------------- received: factsheet
class TypeSpecification(TypedDict):
    seriesName: str
    agvClass: NotRequired[str]  # 2.1 (required there)
    mobileRobotClass: NotRequired[str]  # 3.0 (required there)
    agvKinematic: NotRequired[str]  # 2.1 (required there)
    mobileRobotKinematic: NotRequired[str]  # 3.0 as its schema requires it
    mobileRobotKinematics: NotRequired[str]  # 3.0 as its schema defines and its text names it
    maxLoadMass: NotRequired[float]  # 2.1 (required there)
    maximumLoadMass: NotRequired[float]  # 3.0 (required there)


class PhysicalParameters(TypedDict, total=False):
    speedMax: float  # 2.1 (required there)
    maximumSpeed: float  # 3.0 (required there)


#: ``maxArrayLens`` (2.1) or ``maximumArrayLengths`` (3.0): the keys are dotted names.
MaxArrayLens = TypedDict("MaxArrayLens", {"order.nodes": int, "order.edges": int}, total=False)


class ProtocolLimits(TypedDict, total=False):
    maxArrayLens: MaxArrayLens  # 2.1 (required there)
    maximumArrayLengths: MaxArrayLens  # 3.0 (required there)


class AgvAction(TypedDict):
    """An entry of ``agvActions`` (2.1) or ``mobileRobotActions`` (3.0)."""

    actionType: str


class ProtocolFeatures(TypedDict, total=False):
    agvActions: list[AgvAction]  # 2.1 (required there)
    mobileRobotActions: list[AgvAction]  # 3.0 (required there)


class LoadSet(TypedDict):
    setName: str
    loadType: str


class LoadSpecification(TypedDict, total=False):
    loadSets: list[LoadSet]


class Factsheet(InboundHeader):
    """The ``factsheet`` message (2.1 §6.15, 3.0 §6.10)."""

    typeSpecification: TypeSpecification
    physicalParameters: PhysicalParameters
    protocolLimits: ProtocolLimits
    protocolFeatures: ProtocolFeatures
    loadSpecification: LoadSpecification


#: A message a vehicle sent (``vda.INBOUND_TOPICS``), as ``decode`` returns it.
VehicleMessage = State | Connection | Factsheet | Visualization
