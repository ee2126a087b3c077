"""Vehicles in: what is rejected and why, dedupe and order, connection, factsheet, state -> telemetry."""

from __future__ import annotations

import orjson
import pytest

from schemas.errors import RejectedRecord

from .support import MODEL, T0, Harness, Vehicle, config, records


def _known(h: Harness, v: Vehicle) -> None:
    h.inbound(v.topic("factsheet"), v.factsheet(T0), T0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "is not JSON"),
        (b"[1, 2]", "is not a JSON object"),
        (orjson.dumps({"version": "1.1.0"}), "not supported"),
        (orjson.dumps({"version": "two"}), "is not [Major].[Minor].[Patch]"),
    ],
)
def test_malformed_or_unsupported_messages_are_rejected_with_the_reason(payload: bytes, reason: str) -> None:
    h, v = Harness(config()), Vehicle()
    with pytest.raises(
        RejectedRecord, match=reason.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")
    ):
        h.inbound(v.topic("state"), payload, T0)
    assert h.vehicle is None


def test_a_version_of_another_major_than_the_topic_is_rejected() -> None:
    h, v3 = Harness(config()), Vehicle(version="3.0.0")
    message = v3.state(T0, "a0")
    with pytest.raises(RejectedRecord, match=r"version 3\.0\.0 on a v2 topic"):
        h.inbound("uagv/v2/acme/agv-1/state", message, T0)


def test_a_vehicle_cannot_speak_for_another_one() -> None:
    h, v = Harness(config()), Vehicle(serial="agv-2")
    with pytest.raises(RejectedRecord, match="names vehicle 'acme'/'agv-2'"):
        h.inbound("uagv/v2/acme/agv-1/state", v.state(T0, "a0"), T0)


def test_a_message_that_does_not_validate_names_the_fields() -> None:
    h, v = Harness(config()), Vehicle()
    message = v.state(T0, "a0")
    del message["driving"]
    message["batteryState"]["batteryCharge"] = "full"
    with pytest.raises(
        RejectedRecord, match=r"does not validate against VDA 5050 2\.1\.0: .*driving.*"
    ) as err:
        h.inbound(v.topic("state"), message, T0)
    assert "batteryState/batteryCharge" in str(err.value)


def test_a_new_vehicle_is_registered_when_it_speaks_and_asked_for_its_factsheet_until_it_sends_it() -> None:
    h, v = Harness(config()), Vehicle()
    out = h.inbound(v.topic("connection"), v.connection("ONLINE", T0), T0)
    (reg,) = records(out, "robot.registry")
    assert (reg["robot_id"], reg["model"], reg["capabilities"]) == ("acme-agv-1", None, ["vda5050:2.1.0"])
    (request,) = [o.value["message"] for o in out if o.topic == "vda5050.outbound"]
    assert request["actions"][0]["actionType"] == "factsheetRequest"
    out = h.inbound(v.topic("state"), v.state(T0 + 500, "a0"), T0 + 500)
    assert records(out, "robot.telemetry") and not records(out, "vda5050.outbound")  # asked just now
    asked = [T0]
    for at in range(T0 + 1000, T0 + 70_000, 1000):  # the first three again soon (QoS 0), then a minute apart
        if records(h.inbound(v.topic("state"), v.state(at, "a0"), at), "vda5050.outbound"):
            asked.append(at)
    assert asked == [T0, T0 + 1000, T0 + 2000, T0 + 62_000]
    (reg,) = records(h.inbound(v.topic("factsheet"), v.factsheet(T0 + 70_000), T0 + 70_000), "robot.registry")
    assert reg["model"] == "X2" and "pick" in reg["capabilities"]
    out = h.inbound(v.topic("state"), v.state(T0 + 200_000, "a0"), T0 + 200_000)
    assert not records(out, "vda5050.outbound")  # it has its factsheet


def test_when_unknown_vehicles_are_refused_their_messages_are_dead_lettered() -> None:
    h, v = Harness(config(register_unknown=False)), Vehicle()
    for topic, message in [("connection", v.connection("ONLINE", T0)), ("state", v.state(T0, "a0")),
                           ("factsheet", v.factsheet(T0))]:  # fmt: skip
        with pytest.raises(RejectedRecord, match="unknown vehicle acme/agv-1"):
            h.inbound(v.topic(topic), message, T0)
    assert h.vehicle is None


def test_a_configured_vehicle_is_registered_without_a_factsheet() -> None:
    from topologies.vda5050 import VehicleEntry

    h, v = Harness(config(vehicles={"acme/agv-1": VehicleEntry(robot_id="r1", fleet_id="f")})), Vehicle()
    out = h.inbound(v.topic("state"), v.state(T0, "a0"), T0)
    (reg,) = records(out, "robot.registry")
    assert (reg["robot_id"], reg["fleet_id"], reg["capabilities"]) == ("r1", "f", ["vda5050:2.1.0"])
    assert records(out, "robot.telemetry")[0]["robot_id"] == "r1"


@pytest.mark.parametrize("version", ["2.1.0", "3.0.0"])
def test_a_factsheet_becomes_a_registration(version: str) -> None:
    h, v = Harness(config()), Vehicle(version=version)
    (reg,) = records(h.inbound(v.topic("factsheet"), v.factsheet(T0), T0), "robot.registry")
    assert reg["robot_id"] == "acme-agv-1" and reg["model"] == ("X3" if version == "3.0.0" else "X2")
    assert reg["capabilities"] == [f"vda5050:{version}", "class:CARRIER", "kinematic:DIFF", "drop", "pick",
                                   "load:EPAL"]  # fmt: skip
    assert reg["max_payload_kg"] == (50.0 if version == "3.0.0" else 100.0)
    # the same factsheet again (its retained copy) registers nothing new
    assert records(h.inbound(v.topic("factsheet"), v.factsheet(T0 + 1), T0 + 1), "robot.registry") == []


def test_duplicates_and_older_messages_are_dropped_and_a_restarted_vehicle_is_followed() -> None:
    h, v = Harness(config()), Vehicle()
    _known(h, v)
    first = v.state(T0 + 10, "a0")
    assert records(h.inbound(v.topic("state"), first, T0 + 10), "robot.telemetry")
    assert h.inbound(v.topic("state"), first, T0 + 11) == []  # the same message again
    older = v.state(T0 + 5, "a0")
    assert h.inbound(v.topic("state"), older, T0 + 12) == []
    v.header.clear()  # the vehicle restarted: headerIds from 0, later timestamps
    (tele,) = records(h.inbound(v.topic("state"), v.state(T0 + 20, "a0"), T0 + 20), "robot.telemetry")
    assert tele["seq"] > T0 + 10


def test_state_becomes_telemetry_field_by_field() -> None:
    h, v = Harness(config()), Vehicle()
    _known(h, v)
    x, y = MODEL.positions["a1"]
    message = v.state(T0 + 10, "a1", position=(x + 0.2, y), battery=55.5, driving=False,
                      nodes=[("a2", 4, True), ("a3", 6, False)])  # fmt: skip
    (tele,) = records(h.inbound(v.topic("state"), message, T0 + 10), "robot.telemetry")
    assert tele["pose"] == {"x": x + 0.2, "y": y, "yaw": 0.0, "node_id": "a1", "map_name": "s1"}
    assert tele["battery"] == pytest.approx(0.555) and tele["mode"] == "IDLE" and tele["error_code"] is None
    assert [w["node_id"] for w in tele["route"]] == ["a2", "a3"]
    # ETAs at the factsheet's 1.5 m/s: 2.8 m to a2, 3 m more to a3
    assert tele["route"][0]["eta"] == pytest.approx(T0 + 10 + 2800 / 1.5, abs=2)
    assert tele["occurred_at"] == T0 + 10 and tele["fleet_id"] == "vda5050" and tele["site_id"] == "s1"
    far = v.state(T0 + 20, "a1", position=(x + 2.0, y), driving=True)
    (tele,) = records(h.inbound(v.topic("state"), far, T0 + 20), "robot.telemetry")
    assert tele["pose"]["node_id"] is None and tele["mode"] == "MOVING"


@pytest.mark.parametrize(
    ("kwargs", "mode", "code"),
    [
        ({"mode": "MANUAL"}, "ERROR", "operatingMode MANUAL"),
        ({"errors": [{"errorType": "laserBlocked", "errorLevel": "FATAL"}]}, "ERROR", "laserBlocked"),
        ({"errors": [{"errorType": "lowTyre", "errorLevel": "WARNING"}]}, "IDLE", None),
        ({"charging": True}, "CHARGING", None),
    ],
)
def test_operating_mode_errors_and_charging_map_to_the_mode(
    kwargs: dict, mode: str, code: str | None
) -> None:
    h, v = Harness(config()), Vehicle()
    _known(h, v)
    (tele,) = records(
        h.inbound(v.topic("state"), v.state(T0 + 10, "a0", **kwargs), T0 + 10), "robot.telemetry"
    )
    assert (tele["mode"], tele["error_code"]) == (mode, code)


def test_a_vehicle_clock_far_off_is_replaced_by_the_receive_time() -> None:
    h, v = Harness(config()), Vehicle()
    _known(h, v)
    (tele,) = records(h.inbound(v.topic("state"), v.state(T0 + 60_000, "a0"), T0 + 10), "robot.telemetry")
    assert tele["occurred_at"] == T0 + 10


@pytest.mark.parametrize("version", ["2.1.0", "3.0.0"])
def test_a_broken_connection_makes_the_robot_offline_and_its_next_state_online(version: str) -> None:
    h, v = Harness(config()), Vehicle(version=version)
    _known(h, v)
    h.inbound(v.topic("connection"), v.connection("ONLINE", T0 + 1), T0 + 1)
    will = v.connection("CONNECTION_BROKEN" if version == "3.0.0" else "CONNECTIONBROKEN", T0 + 1)
    h.inbound(v.topic("state"), v.state(T0 + 10, "a0", battery=42.0), T0 + 10)
    (status,) = records(h.inbound(v.topic("connection"), will, T0 + 5000), "robot.status")
    assert (status["status"], status["reason"], status["previous_status"]) == ("OFFLINE", "OFFLINE", "IDLE")
    assert status["occurred_at"] == T0 + 5000 and status["battery"] == pytest.approx(0.42)
    assert h.inbound(v.topic("connection"), will, T0 + 5001) == []  # the same will again: nothing
    out = h.inbound(v.topic("state"), v.state(T0 + 9000, "a0"), T0 + 9000)
    (back,) = records(out, "robot.status")
    assert (back["status"], back["previous_status"], back["reason"]) == ("IDLE", "OFFLINE", "CHANGE")


def test_visualization_updates_the_pose_between_states() -> None:
    h, v = Harness(config()), Vehicle()
    _known(h, v)
    h.inbound(v.topic("state"), v.state(T0 + 10, "a0"), T0 + 10)
    header = {"headerId": 0, "version": "2.1.0", "manufacturer": "acme", "serialNumber": "agv-1"}
    from schemas import vda

    vis = {**header, "timestamp": vda.format_timestamp(T0 + 700),
           "agvPosition": {"x": 1.5, "y": 0.0, "theta": 0.0, "mapId": "s1", "positionInitialized": True}}  # fmt: skip
    (tele,) = records(h.inbound(v.topic("visualization"), vis, T0 + 700), "robot.telemetry")
    assert (tele["pose"]["x"], tele["pose"]["node_id"], tele["occurred_at"]) == (1.5, None, T0 + 700)
    soon = {**vis, "headerId": 1, "timestamp": vda.format_timestamp(T0 + 800)}
    assert h.inbound(v.topic("visualization"), soon, T0 + 800) == []  # within the interval
