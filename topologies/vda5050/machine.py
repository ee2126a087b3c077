"""The per-vehicle step of the VDA 5050 bridge: one inbound message or one decision -> new state + outputs.

Both functions take the vehicle's state (``vehicle``: :mod:`topologies.vda5050.vehicle`) and its orders
(:mod:`topologies.vda5050.control`) as loaded, and return ``(vehicle, orders, outputs)``; a returned
``None`` state means "unchanged, do not store". RejectedRecord is raised before anything is changed.

Inbound messages are the raw bytes the ingress took from MQTT (``vda5050.inbound``), with the MQTT topic
they came on. What is rejected (dead-lettered with the reason): a topic that is not VDA 5050, bytes that
are not JSON, a version that is not 2.x/3.x or not the topic's major, a header naming another vehicle, a
message that does not validate against the official schema of its version, and any message of a vehicle
that is not configured when unknown vehicles are not accepted (``register_unknown`` off). A known vehicle
is registered on robot.registry from its first message and asked for its factsheet until it sent one
(which completes the registration). Duplicates and older messages (by ``timestamp`` and ``headerId``)
are dropped without output.
"""

from __future__ import annotations

from typing import cast

import orjson

from schemas.errors import RejectedRecord
from schemas.records import Decision
from topologies.kernel import Output
from topologies.vda5050 import control, inbound
from topologies.vda5050 import vehicle as veh
from topologies.vda5050.config import VdaConfig
from topologies.vda5050.control import Orders
from topologies.vda5050.messages import decode, parse_topic
from topologies.vda5050.protocol import Connection, Factsheet, State, Visualization
from topologies.vda5050.sitemodel import MapLookup
from topologies.vda5050.vehicle import VehicleState

__all__ = ["Step", "on_decision", "on_inbound"]

Step = tuple[VehicleState | None, Orders | None, list[Output]]


def _empty_orders() -> Orders:
    return {"current": None, "pending": None}


def _copy(orders: Orders | None) -> Orders:
    """A deep copy of the orders (JSON data: a round trip is the cheapest deep copy)."""
    return orjson.loads(orjson.dumps(orders)) if orders is not None else _empty_orders()


def on_inbound(
    vehicle: VehicleState | None,
    orders: Orders | None,
    raw: bytes | None,
    mqtt_topic: str | None,
    at: int,
    maps: MapLookup,
    config: VdaConfig,
) -> Step:
    """Apply one message a vehicle sent."""
    if not mqtt_topic:
        raise RejectedRecord("inbound record without its MQTT topic (header vda5050-topic)")
    where = parse_topic(mqtt_topic)
    message, release = decode(raw, where)
    v = veh.identity(vehicle, where, message, release, config)
    if not veh.accept(v, where.topic, message, at):
        return None, None, []  # a duplicate or an older message
    out: list[Output] = []
    topic = where.topic
    if not v["known"]:
        raise RejectedRecord(
            f"{topic} of unknown vehicle {where.vehicle} (robot {v['robot_id']}): not in FLEET_VDA_VEHICLES "
            "and FLEET_VDA_REGISTER_UNKNOWN is off"
        )
    # ``message`` validated against the schema of ``topic``
    if topic == "factsheet":
        out += veh.on_factsheet(v, cast(Factsheet, message), at)
        return v, None, out
    out += veh.ensure_registered(v, at)
    if topic == "connection":
        out += veh.on_connection(v, cast(Connection, message), at)
    elif not v.get("online"):
        v["online"] = True  # it speaks: it is connected (its ONLINE may have been lost or not retained)
    asked, asks = v.get("factsheet_asked"), int(v.get("factsheet_asks") or 0)
    # QoS 0 loses requests (a vehicle may not have subscribed yet when it says ONLINE): the first three
    # are repeated after resend_after_ms, later ones every factsheet_request_every_ms
    every = config.resend_after_ms if asks < 3 else config.factsheet_request_every_ms
    if v["online"] and v.get("limits") is None and (asked is None or at - int(asked) >= every):
        v["factsheet_asked"], v["factsheet_asks"] = at, asks + 1  # its factsheet completes its registration
        out.append(control.send(v, "instantActions", {"actions": [
            {"actionType": "factsheetRequest", "actionId": f"factsheetRequest:{at}",
             "blockingType": "NONE" if v["major"] == "3" else "HARD"}]}, at))  # fmt: skip
    if topic == "connection":
        return v, None, out
    if topic == "visualization":
        out += veh.visualization(v, cast(Visualization, message), at, maps, config)
        return v, None, out
    state = cast(State, message)
    rep = inbound.report(state)
    v["report"] = rep
    o = _copy(orders)
    task, sent = control.on_state(v, o, rep, at, maps, config)
    out += veh.telemetry(v, state, rep, task, at, maps, config)
    out += sent
    return v, o, out


def on_decision(
    vehicle: VehicleState | None,
    orders: Orders | None,
    decision: Decision,
    at: int,
    maps: MapLookup,
    config: VdaConfig,
) -> Step:
    """Apply one scheduler decision about the robot; a robot that is not a known VDA 5050 vehicle is not
    ours (most decisions are about other robots) and nothing happens."""
    if vehicle is None or not vehicle.get("known") or not vehicle.get("prefix"):
        return None, None, []
    if vehicle.get("tenant_id") != decision.get("tenant_id"):
        return None, None, []
    v = vehicle.copy()
    o = _copy(orders)
    out = control.on_decision(v, o, decision, at, maps, config)
    return v, o, out
