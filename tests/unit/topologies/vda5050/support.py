"""A small site, message builders for a vehicle, and a harness that steps one vehicle's state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas import vda
from topologies.vda5050 import Output, VdaConfig, model_for, on_decision, on_inbound

T0 = 1_760_000_000_000
TENANT, SITE = "acme", "s1"

#: A ladder: a0-a1-a2-a3-a4-a5 along y=0, b0..b5 along y=3, rungs a_i-b_i; lane ids "a0-a1" etc.
_NODES = [(f"{row}{i}", 3.0 * i, 0.0 if row == "a" else 3.0) for row in "ab" for i in range(6)]
_LANES = [(f"{r}{i}", f"{r}{i + 1}") for r in "ab" for i in range(5)] + [(f"a{i}", f"b{i}") for i in range(6)]
SITE_MAP: dict[str, Any] = {
    "event_id": "map-1",
    "tenant_id": TENANT,
    "site_id": SITE,
    "occurred_at": T0,
    "version": 1,
    "name": "ladder",
    "nodes": [{"id": n, "x": x, "y": y, "kind": "WAYPOINT", "name": None} for n, x, y in _NODES],
    "lanes": [
        {"id": f"{a}-{b}", "from_node": a, "to_node": b, "bidirectional": True, "speed_limit": None}
        for a, b in _LANES
    ],
    "zones": [],
    "chargers": [{"id": "c1", "node_id": "b5"}],
}
MODEL = model_for(SITE_MAP)


def maps(tenant: str, site: str) -> Any:
    return MODEL if (tenant, site) == (TENANT, SITE) else None


def config(**kw: Any) -> VdaConfig:
    return VdaConfig(tenant_id=TENANT, site_id=SITE, resend_after_ms=1000, **kw)


@dataclass
class Vehicle:
    """Builds valid messages of one vehicle (2.1.0 or 3.0.0)."""

    manufacturer: str = "acme"
    serial: str = "agv-1"
    version: str = "2.1.0"
    interface: str = "uagv"
    header: dict[str, int] = field(default_factory=dict)

    @property
    def major(self) -> str:
        return self.version.split(".")[0]

    def topic(self, name: str) -> str:
        root = "vda5050" if self.major == "3" else self.interface
        return f"{root}/v{self.major}/{self.manufacturer}/{self.serial}/{name}"

    def _header(self, name: str, at: int) -> dict[str, Any]:
        hid = self.header[name] = self.header.get(name, -1) + 1
        return {"headerId": hid, "timestamp": vda.format_timestamp(at), "version": self.version,
                "manufacturer": self.manufacturer, "serialNumber": self.serial}  # fmt: skip

    def connection(self, state: str, at: int) -> dict[str, Any]:
        return {**self._header("connection", at), "connectionState": state}

    def state(
        self,
        at: int,
        last: str,
        *,
        last_seq: int = 0,
        order_id: str = "",
        update_id: int = 0,
        nodes: list[tuple[str, int, bool]] = (),  # type: ignore[assignment]
        actions: list[tuple[str, str]] = (),  # type: ignore[assignment]
        driving: bool = False,
        errors: list[dict[str, Any]] = (),  # type: ignore[assignment]
        charging: bool = False,
        battery: float = 80.0,
        position: tuple[float, float] | None = None,
        mode: str = "AUTOMATIC",
    ) -> dict[str, Any]:
        x, y = position if position is not None else MODEL.positions[last]
        msg: dict[str, Any] = {
            **self._header("state", at),
            "orderId": order_id,
            "orderUpdateId": update_id,
            "lastNodeId": last,
            "lastNodeSequenceId": last_seq,
            "nodeStates": [{"nodeId": n, "sequenceId": s, "released": r} for n, s, r in nodes],
            "edgeStates": [],
            "driving": driving,
            "actionStates": [{"actionId": a, "actionStatus": s} for a, s in actions],
            "operatingMode": mode,
            "errors": list(errors),
        }
        if self.major == "3":
            msg["instantActionStates"] = []
            msg["powerSupply"] = {"stateOfCharge": battery, "charging": charging}
            msg["safetyState"] = {"activeEmergencyStop": "NONE", "fieldViolation": False}
            msg["mobileRobotPosition"] = {"x": x, "y": y, "theta": 0.0, "mapId": SITE, "localized": True}
            if msg["operatingMode"] == "TEACHIN":
                msg["operatingMode"] = "TEACH_IN"
        else:
            msg["batteryState"] = {"batteryCharge": battery, "charging": charging}
            msg["safetyState"] = {"eStop": "NONE", "fieldViolation": False}
            msg["agvPosition"] = {"x": x, "y": y, "theta": 0.0, "mapId": SITE, "positionInitialized": True}
        return msg

    def factsheet(self, at: int, *, max_nodes: int | None = None) -> dict[str, Any]:
        arrays = {"order.nodes": max_nodes, "order.edges": max_nodes - 1} if max_nodes else {}
        if self.major == "3":
            return {
                **self._header("factsheet", at),
                "typeSpecification": {"seriesName": "X3", "mobileRobotKinematic": "DIFF",
                                      "mobileRobotClass": "CARRIER", "maximumLoadMass": 50,
                                      "localizationTypes": ["NATURAL"], "navigationTypes": ["AUTONOMOUS"]},
                "physicalParameters": {"minimumSpeed": 0.0, "maximumSpeed": 1.5, "maximumAcceleration": 1.0,
                                       "maximumDeceleration": 1.0, "minimumHeight": 0.2, "maximumHeight": 1.0,
                                       "width": 0.6, "length": 0.9},
                "protocolLimits": {"maximumStringLengths": {}, "maximumArrayLengths": arrays,
                                   "timing": {"minimumOrderInterval": 0.1, "minimumStateInterval": 0.1}},
                "protocolFeatures": {"optionalParameters": [], "mobileRobotActions": [
                    {"actionType": "pick", "actionScopes": ["NODE"], "pauseAllowed": False, "cancelAllowed": True},
                    {"actionType": "drop", "actionScopes": ["NODE"], "pauseAllowed": False, "cancelAllowed": True}]},
                "mobileRobotGeometry": {},
                "loadSpecification": {"loadSets": [{"setName": "default", "loadType": "EPAL"}]},
            }  # fmt: skip
        return {
            **self._header("factsheet", at),
            "typeSpecification": {"seriesName": "X2", "agvKinematic": "DIFF", "agvClass": "CARRIER",
                                  "maxLoadMass": 100, "localizationTypes": ["NATURAL"],
                                  "navigationTypes": ["AUTONOMOUS"]},
            "physicalParameters": {"speedMin": 0.0, "speedMax": 1.5, "accelerationMax": 1.0,
                                   "decelerationMax": 1.0, "heightMax": 1.0, "width": 0.6, "length": 0.9},
            "protocolLimits": {"maxStringLens": {}, "maxArrayLens": arrays,
                               "timing": {"minOrderInterval": 0.1, "minStateInterval": 0.1}},
            "protocolFeatures": {"optionalParameters": [], "agvActions": [
                {"actionType": "pick", "actionScopes": ["NODE"]}, {"actionType": "drop", "actionScopes": ["NODE"]}]},
            "agvGeometry": {},
            "loadSpecification": {"loadSets": [{"setName": "default", "loadType": "EPAL"}]},
        }  # fmt: skip


def decision(kind: str, route: list[str] | None = None, *, at: int = T0, robot: str = "acme-agv-1",
             decision_id: str | None = None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "event_id": f"e-{decision_id or kind}",
        "tenant_id": TENANT,
        "site_id": SITE,
        "occurred_at": at,
        "decision_id": decision_id or f"{kind.lower()}-{at}",
        "kind": kind,
        "robot_id": robot,
        "task_id": None,
        "route": [{"node_id": n, "eta": at} for n in route or []],
        "eta": None,
        "cost": None,
        "reason": None,
        "conflict_id": None,
        "planner": "in_process",
        "granted": None,
        "plan_id": None,
        "plan_seq": None,
        "pickup_node": None,
        "dropoff_node": None,
        "labels": {},
        **extra,
    }


@dataclass
class Harness:
    """One vehicle's bridge state, stepped with inbound messages and decisions."""

    config: VdaConfig
    vehicle: dict[str, Any] | None = None
    orders: dict[str, Any] | None = None

    def inbound(self, topic: str, message: dict[str, Any] | bytes, at: int) -> list[Output]:
        raw = message if isinstance(message, bytes) else orjson.dumps(message)
        v, o, out = on_inbound(self.vehicle, self.orders, raw, topic, at, maps, self.config)
        self.vehicle = v if v is not None else self.vehicle
        self.orders = o if o is not None else self.orders
        return out

    def decide(self, d: dict[str, Any], at: int | None = None) -> list[Output]:
        v, o, out = on_decision(self.vehicle, self.orders, d, at if at is not None else d["occurred_at"], maps,
                                self.config)  # fmt: skip
        self.vehicle = v if v is not None else self.vehicle
        self.orders = o if o is not None else self.orders
        return out


def sent(out: list[Output], topic: str | None = None) -> list[dict[str, Any]]:
    """The messages of ``vda5050.outbound`` outputs (optionally of one MQTT subtopic)."""
    return [o.value["message"] for o in out
            if o.topic == "vda5050.outbound" and (topic is None or o.value["topic"].endswith("/" + topic))]  # fmt: skip


def records(out: list[Output], topic: str) -> list[dict[str, Any]]:
    return [o.value for o in out if o.topic == topic]


def node_states(message: dict[str, Any], skip_first: bool = True) -> list[tuple[str, int, bool]]:
    """What a vehicle's nodeStates are right after accepting ``message`` (a new order: all but the
    node it stands on)."""
    nodes = [(n["nodeId"], n["sequenceId"], n["released"]) for n in message["nodes"]]
    return nodes[1:] if skip_first else nodes
