"""Simulated robots as VDA 5050 vehicles (2.1 or 3.0): the vehicle side of the protocol over ``FleetSim``.

``VdaFleet`` wraps a :class:`FleetSim` whose robots do nothing on their own (not autonomous, no
self-charging): each robot is a :class:`VdaVehicle` that accepts orders and order updates as the
specification says (2.1 §6.6.2 / 3.0 §6.1.2: a new order only when idle and starting where it stands, an
update only stitched on its decision point, the same update again ignored, an older one refused), drives its
base through the public hooks of ``FleetSim`` (``assign`` of the released nodes up to the next node with
actions: it never drives onto a node that is not released; ``unassign`` to stop at the next node;
``hold``/``resume`` to pause), reports ``nodeStates``/``edgeStates``/``actionStates`` as it goes, runs node actions
(HARD blocking, ``action_ms`` each; ``startCharging`` charges), and carries out ``cancelOrder``,
``startPause``/``stopPause``, ``stopCharging``, ``stateRequest`` and ``factsheetRequest``. Nothing here does
I/O: ``pipelines.simulator.vda5050_mqtt`` connects it to a broker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas import vda

from .fleet import FleetSim

__all__ = ["Outgoing", "VdaFleet", "VdaVehicle"]

Outgoing = tuple[str, dict[str, Any], int, bool]
"""A message to publish: ``(topic, message, qos, retain)``."""

_TERMINAL = frozenset({"FINISHED", "FAILED"})


@dataclass
class _Action:
    action_type: str
    status: str = "WAITING"
    until: int | None = None
    result: str | None = None
    instant: bool = False


class VdaVehicle:
    """One simulated robot speaking VDA 5050 as vehicle ``manufacturer/serial``."""

    def __init__(self, sim: FleetSim, robot_id: str, *, manufacturer: str, serial: str, version: str,
                 interface: str, map_id: str, action_ms: int) -> None:  # fmt: skip
        self.sim, self.robot_id = sim, robot_id
        self.manufacturer, self.serial, self.version = manufacturer, serial, version
        self.major = version.split(".")[0]
        self.release = vda.schema_release(version)
        root = "vda5050" if self.major == "3" else interface
        self.prefix = f"{root}/v{self.major}/{manufacturer}/{serial}"
        self.map_id, self.action_ms = map_id, action_ms
        self.header: dict[str, int] = {}
        self.order_id, self.update_id = "", 0
        self.nodes: list[dict[str, Any]] = []  # the order's nodes (released ones as first sent)
        self.edges: list[dict[str, Any]] = []
        self.reached = -1  # index in nodes of the last node traversed (-1: none of this order)
        self.last_node = sim.view(robot_id).anchor
        self.last_seq = 0
        self.leg: list[int] = []  # node indices the robot was told to drive, in order
        self.actions: dict[str, _Action] = {}
        self.errors: list[dict[str, Any]] = []
        self.paused = False
        self.charging_stopped = False
        self.cancelled = False
        self.cancel_action: str | None = None

    # -- what the vehicle reports -----------------------------------------------------------------------
    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _header(self, topic: str, at: int) -> dict[str, Any]:
        hid = self.header[topic] = self.header.get(topic, -1) + 1
        return {"headerId": hid, "timestamp": vda.format_timestamp(at), "version": self.version,
                "manufacturer": self.manufacturer, "serialNumber": self.serial}  # fmt: skip

    def connection(self, state: str, at: int) -> Outgoing:
        if self.major == "3" and state == "CONNECTIONBROKEN":
            state = "CONNECTION_BROKEN"
        return self.topic("connection"), {**self._header("connection", at), "connectionState": state}, 1, True

    def factsheet(self, at: int) -> Outgoing:
        speed = self.sim.config.max_speed * self.sim.config.speed_scale
        actions = ["pick", "drop", "startCharging", "stopCharging", "startPause", "stopPause", "cancelOrder"]
        if self.major == "3":
            body: dict[str, Any] = {
                "typeSpecification": {"seriesName": self.sim.config.model, "mobileRobotKinematic": "DIFF",
                                      "mobileRobotKinematics": "DIFF", "mobileRobotClass": "CARRIER",
                                      "maximumLoadMass": 100, "localizationTypes": ["NATURAL"],
                                      "navigationTypes": ["AUTONOMOUS"]},
                "physicalParameters": {"minimumSpeed": 0.0, "maximumSpeed": speed, "maximumAcceleration": 1.0,
                                       "maximumDeceleration": 1.0, "minimumHeight": 0.3, "maximumHeight": 0.5,
                                       "width": 0.6, "length": 0.9},
                "protocolLimits": {"maximumStringLengths": {}, "maximumArrayLengths": {},
                                   "timing": {"minimumOrderInterval": 0.1, "minimumStateInterval": 0.1}},
                "protocolFeatures": {"optionalParameters": [], "mobileRobotActions": [
                    {"actionType": a, "actionScopes": ["INSTANT", "NODE"], "pauseAllowed": "false",
                     "cancelAllowed": "true"} for a in actions]},
                "mobileRobotGeometry": {},
                "loadSpecification": {"loadSets": [{"setName": "tote", "loadType": "EPAL"}]},
            }  # fmt: skip
        else:
            body = {
                "typeSpecification": {"seriesName": self.sim.config.model, "agvKinematic": "DIFF",
                                      "agvClass": "CARRIER", "maxLoadMass": 100, "localizationTypes": ["NATURAL"],
                                      "navigationTypes": ["AUTONOMOUS"]},
                "physicalParameters": {"speedMin": 0.0, "speedMax": speed, "accelerationMax": 1.0,
                                       "decelerationMax": 1.0, "heightMax": 0.5, "width": 0.6, "length": 0.9},
                "protocolLimits": {"maxStringLens": {}, "maxArrayLens": {},
                                   "timing": {"minOrderInterval": 0.1, "minStateInterval": 0.1}},
                "protocolFeatures": {"optionalParameters": [], "agvActions": [
                    {"actionType": a, "actionScopes": ["INSTANT", "NODE"]} for a in actions]},
                "agvGeometry": {},
                "loadSpecification": {"loadSets": [{"setName": "tote", "loadType": "EPAL"}]},
            }  # fmt: skip
        return self.topic("factsheet"), {**self._header("factsheet", at), **body}, 0, True

    def _busy(self) -> bool:
        pending = any(i > self.reached for i in range(len(self.nodes)))
        running = any(a.status not in _TERMINAL for a in self.actions.values() if not a.instant)
        return pending or running

    def state(self, at: int) -> Outgoing:
        view = self.sim.view(self.robot_id)
        driving = view.activity == "TRAVEL" and bool(view.path) and not self.paused
        charging = view.activity == "CHARGING" and not self.charging_stopped
        ahead = range(self.reached + 1, len(self.nodes))
        node_states = [{"nodeId": self.nodes[i]["nodeId"], "sequenceId": self.nodes[i]["sequenceId"],
                        "released": self.nodes[i]["released"]} for i in ahead]  # fmt: skip
        passed = self.nodes[self.reached]["sequenceId"] if self.reached >= 0 else -1
        edge_states = [{"edgeId": e["edgeId"], "sequenceId": e["sequenceId"], "released": e["released"]}
                       for e in self.edges if e["sequenceId"] > passed]  # fmt: skip
        order_actions: list[dict[str, Any]] = []
        instant_actions: list[dict[str, Any]] = []
        for action_id, a in self.actions.items():
            entry = {"actionId": action_id, "actionType": a.action_type, "actionStatus": a.status}
            if a.result:
                entry["actionResult" if self.major == "3" else "resultDescription"] = a.result
            (instant_actions if a.instant else order_actions).append(entry)
        speed = 1.2 * self.sim.config.speed_scale if driving else 0.0
        position = {"x": round(view.x, 3), "y": round(view.y, 3), "theta": 0.0, "mapId": self.map_id}
        message: dict[str, Any] = {
            **self._header("state", at),
            "orderId": self.order_id,
            "orderUpdateId": self.update_id,
            "lastNodeId": self.last_node,
            "lastNodeSequenceId": self.last_seq,
            "nodeStates": node_states,
            "edgeStates": edge_states,
            "driving": driving,
            "paused": self.paused,
            "operatingMode": "AUTOMATIC",
            "errors": list(self.errors),
            "velocity": {"vx": speed, "vy": 0.0, "omega": 0.0},
        }
        battery = round(min(max(view.battery, 0.0), 1.0) * 100.0, 2)
        if self.major == "3":
            message["actionStates"] = order_actions
            message["instantActionStates"] = instant_actions
            message["powerSupply"] = {"stateOfCharge": battery, "charging": charging}
            message["safetyState"] = {"activeEmergencyStop": "NONE", "fieldViolation": False}
            message["mobileRobotPosition"] = {**position, "localized": True}
        else:
            message["actionStates"] = order_actions + instant_actions
            message["batteryState"] = {"batteryCharge": battery, "charging": charging}
            message["safetyState"] = {"eStop": "NONE", "fieldViolation": False}
            message["agvPosition"] = {**position, "positionInitialized": True}
        return self.topic("state"), message, 0, False

    # -- orders ----------------------------------------------------------------------------------------------
    def _error(self, kind: str, message: dict[str, Any], description: str) -> None:
        names = {  # 2.x error types (§6.6.4), 3.0 ones (§6.1.4)
            "validation": ("validationError", "VALIDATION_FAILURE"),
            "busy": ("orderError", "OTHER_ORDER_ACTIVE"),
            "start": ("orderError", "START_NODE_OUT_OF_RANGE"),
            "outdated": ("orderUpdateError", "OUTDATED_ORDER_UPDATE"),
            "stitch": ("orderUpdateError", "ORDER_UPDATE_FOLLOWING_CANCEL"),
            "continuation": ("orderUpdateError", "NO_ROUTE_TO_TARGET"),
            "cancel": ("noOrderToCancel", "NO_ORDER_TO_CANCEL"),
        }
        error_type = names[kind][1 if self.major == "3" else 0]
        refs = [{"referenceKey": "orderId", "referenceValue": str(message.get("orderId", ""))},
                {"referenceKey": "orderUpdateId", "referenceValue": str(message.get("orderUpdateId", ""))}]  # fmt: skip
        if kind == "cancel":
            refs = [{"referenceKey": "actionId", "referenceValue": str(message.get("actionId", ""))}]
        self.errors.append({"errorType": error_type, "errorLevel": "WARNING", "errorReferences": refs,
                            "errorDescription": description})  # fmt: skip

    def _clear_order_errors(self) -> None:
        self.errors = [e for e in self.errors if e["errorType"] in ("noOrderToCancel", "NO_ORDER_TO_CANCEL")]

    def on_order(self, message: dict[str, Any], at: int) -> None:
        """Accept or refuse an order or order update (2.1 Figure 8, 3.0 Figure 8)."""
        if vda.problems("order", message, self.release):
            self._error("validation", message, "order does not validate against the schema")
            return
        nodes, edges = message["nodes"], message["edges"]
        if message["orderId"] != self.order_id:
            if self._busy():
                self._error("busy", message, f"still executing order {self.order_id}")
                return
            first = nodes[0]
            if first["nodeId"] != self.last_node and not self._near(first):
                self._error("start", message, f"first node {first['nodeId']} is not where the vehicle stands")
                return
            self._clear_order_errors()
            self.order_id, self.update_id = message["orderId"], message["orderUpdateId"]
            self.nodes, self.edges = [dict(n) for n in nodes], [dict(e) for e in edges]
            self.actions = {k: a for k, a in self.actions.items() if a.instant and a.status not in _TERMINAL}
            self.cancelled, self.cancel_action = False, None
            for node in self.nodes:
                for act in node["actions"]:
                    self.actions[act["actionId"]] = _Action(act["actionType"])
            self.reached, self.leg = -1, []
            self._traverse(0, at)
            self._drive(at)
            return
        if message["orderUpdateId"] < self.update_id:
            self._error("outdated", message, f"orderUpdateId {message['orderUpdateId']} < {self.update_id}")
            return
        if message["orderUpdateId"] == self.update_id:
            return  # the same update again (the master resent it): ignored
        if self.cancelled:
            self._error("stitch", message, "order update after cancelOrder")
            return
        base = [i for i, n in enumerate(self.nodes) if n["released"]]
        point = self.nodes[base[-1]] if base else None
        first = nodes[0]
        if point is None or (first["nodeId"], first["sequenceId"]) != (point["nodeId"], point["sequenceId"]):
            self._error("continuation", message, "update does not start on the decision point")
            return
        self._clear_order_errors()
        dp = base[-1]
        for node in self.nodes[dp + 1 :]:  # the horizon is replaced: its actions with it
            for act in node["actions"]:
                self.actions.pop(act["actionId"], None)
        self.nodes = self.nodes[: dp + 1] + [dict(n) for n in nodes[1:]]
        self.edges = [e for e in self.edges if e["sequenceId"] < point["sequenceId"]] + [
            dict(e) for e in edges
        ]
        for node in nodes[1:]:
            for act in node["actions"]:
                self.actions.setdefault(act["actionId"], _Action(act["actionType"]))
        self.update_id = message["orderUpdateId"]
        self._drive(at)

    def _near(self, node: dict[str, Any]) -> bool:
        pos = node.get("nodePosition")
        if not pos:
            return False
        view = self.sim.view(self.robot_id)
        return math.hypot(view.x - pos["x"], view.y - pos["y"]) <= 0.5

    def _traverse(self, index: int, at: int) -> None:
        node = self.nodes[index]
        self.reached, self.last_node, self.last_seq = index, node["nodeId"], node["sequenceId"]
        for act in node["actions"]:
            state = self.actions.get(act["actionId"])
            if state is not None and state.status == "WAITING":
                state.status = "RUNNING" if state is self._first_waiting(node) else "WAITING"
                if state.status == "RUNNING":
                    self._start(act, state, at)

    def _first_waiting(self, node: dict[str, Any]) -> _Action | None:
        for act in node["actions"]:
            state = self.actions.get(act["actionId"])
            if state is not None and state.status not in _TERMINAL:
                return state
        return None

    def _start(self, act: dict[str, Any], state: _Action, at: int) -> None:
        state.status, state.until = "RUNNING", at + self.action_ms
        if act["actionType"] == "startCharging":
            self.sim.send_to_charger(self.robot_id, self.last_node)
            self.charging_stopped = False
            state.until = at

    def _drive(self, at: int) -> None:
        """Give the robot its next leg: the released nodes after where it is, up to the next node with
        actions to run (it stops there) or the end of the base."""
        if self.reached < 0 or self.paused or self.cancelled:
            return
        here = self.nodes[self.reached]
        if any(self.actions[a["actionId"]].status not in _TERMINAL for a in here["actions"]
               if a["actionId"] in self.actions):  # fmt: skip
            return  # working here first
        view = self.sim.view(self.robot_id)
        if self.leg and view.path and self.nodes[self.leg[-1]]["actions"]:
            return  # driving to a node where it has work to do: the rest comes after
        leg: list[int] = []
        for i in range(self.reached + 1, len(self.nodes)):
            if not self.nodes[i]["released"]:
                break
            leg.append(i)
            if self.nodes[i]["actions"]:
                break
        if not leg or leg == self.leg:
            return
        self.leg = leg  # a leg it is driving, extended by a later release, is given again from here
        self.sim.assign(self.robot_id, self.order_id, [self.nodes[i]["nodeId"] for i in leg])

    # -- instant actions ------------------------------------------------------------------------------------
    def on_instant_actions(self, message: dict[str, Any], at: int) -> list[Outgoing]:
        out: list[Outgoing] = []
        actions = message.get("actions") or message.get("instantActions") or []
        for act in actions:
            kind, action_id = act["actionType"], act["actionId"]
            state = self.actions[action_id] = _Action(kind, status="FINISHED", instant=True)
            if kind == "cancelOrder":
                if not self.order_id or self.cancelled or not self._busy():
                    state.status = "FAILED"
                    self._error("cancel", {"actionId": action_id}, "no order to cancel")
                    continue
                self.cancelled, self.cancel_action = True, action_id
                for a in self.actions.values():
                    if not a.instant and a.status not in _TERMINAL:
                        a.status = "FAILED"
                self._follow(at)  # nodes passed until now
                self.sim.unassign(self.robot_id)  # it stops at the next node (or where it stands)
                self.leg = self.leg[:1] if self.sim.view(self.robot_id).path else []
                state.status = "RUNNING"
            elif kind == "startPause":
                self.paused = True
                self.sim.hold(self.robot_id)  # it stops at the next node (or where it stands)
            elif kind == "stopPause":
                self.paused = False
                self.sim.resume(self.robot_id)
                self._drive(at)
            elif kind == "stopCharging":
                self.charging_stopped = True
            elif kind == "factsheetRequest":
                out.append(self.factsheet(at))
            elif kind == "stateRequest":
                out.append(self.state(at))
        return out

    # -- time ------------------------------------------------------------------------------------------------
    def _follow(self, at: int) -> None:
        """Mark the nodes of its leg the robot has reached (those no longer on its path) traversed."""
        view = self.sim.view(self.robot_id)
        done = len(self.leg) - len(view.path)
        while self.leg and done > 0:
            index = self.leg.pop(0)
            done -= 1
            self._traverse(index, at)

    def tick(self, at: int) -> None:
        """After the robots moved to ``at``: nodes reached, actions done, the next leg, a cancel's end."""
        view = self.sim.view(self.robot_id)
        self._follow(at)
        for state in self.actions.values():
            if (
                state.status == "RUNNING"
                and not state.instant
                and state.until is not None
                and at >= state.until
            ):
                state.status = "FINISHED"
        if self.reached >= 0:
            node = self.nodes[self.reached]
            nxt = self._first_waiting(node)
            if nxt is not None and nxt.status == "WAITING":
                act = next(a for a in node["actions"] if self.actions.get(a["actionId"]) is nxt)
                self._start(act, nxt, at)
        if self.cancelled and self.cancel_action is not None and not view.path and not self.leg:
            cancel = self.actions.get(self.cancel_action)
            if cancel is not None and cancel.status == "RUNNING":
                cancel.status = "FINISHED"
                self.nodes = self.nodes[: self.reached + 1]
                self.edges, self.leg = [], []
        self._drive(at)


class VdaFleet:
    """Every robot of a :class:`FleetSim` as a VDA 5050 vehicle (``serial`` = the robot id)."""

    def __init__(self, sim: FleetSim, *, manufacturer: str, version: str, interface: str = "uagv",
                 map_id: str | None = None, action_ms: int = 2000, skip: int = 0) -> None:  # fmt: skip
        self.sim = sim
        ids = sim.robot_ids
        for robot_id in ids[:skip]:  # robots another simulator drives: here only where they stand
            sim.power_off(robot_id)
        self.vehicles: dict[str, VdaVehicle] = {
            robot_id: VdaVehicle(sim, robot_id, manufacturer=manufacturer, serial=robot_id, version=version,
                                 interface=interface, map_id=map_id or sim.site_id, action_ms=action_ms)
            for robot_id in ids[skip:]
        }  # fmt: skip
        self._by_topic = {v.topic(t): v for v in self.vehicles.values() for t in ("order", "instantActions")}

    def subscriptions(self) -> list[str]:
        return sorted(self._by_topic)

    def start(self, at: int) -> list[Outgoing]:
        out: list[Outgoing] = []
        for v in self.vehicles.values():
            out += [v.connection("ONLINE", at), v.factsheet(at)]
        return out

    def stop(self, at: int) -> list[Outgoing]:
        return [v.connection("OFFLINE", at) for v in self.vehicles.values()]

    def receive(self, topic: str, message: Mapping[str, Any], at: int) -> list[Outgoing]:
        vehicle = self._by_topic.get(topic)
        if vehicle is None or not self.sim.view(vehicle.robot_id).powered:
            return []
        if topic.endswith("/order"):
            vehicle.on_order(dict(message), at)
            return []
        return vehicle.on_instant_actions(dict(message), at)

    def step(self, at: int) -> list[Outgoing]:
        """Advance the robots to ``at``; one state per powered vehicle."""
        self.sim.step(at)
        out: list[Outgoing] = []
        for v in self.vehicles.values():
            if self.sim.view(v.robot_id).powered:
                v.tick(at)
                out.append(v.state(at))
        return out

    def power_off(self, robot_id: str, at: int) -> Outgoing:
        """The robot goes silent as if its connection broke: the broker would send its last will."""
        self.sim.power_off(robot_id)
        return self.vehicles[robot_id].connection("CONNECTIONBROKEN", at)
