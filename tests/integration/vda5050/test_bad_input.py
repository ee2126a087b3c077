"""Bad input at the bridge, over the real broker: each message or decision is dead-lettered with the reason
(``dlq.vda5050``, original bytes, ``fleet-dlq-error``), the others go on, and the bridge keeps running.
And the broker's ACL: a vehicle cannot speak for another."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from confluent_kafka.admin import AdminClient
from paho.mqtt.enums import CallbackAPIVersion

from pipelines.settings import CommonSettings
from schemas import vda
from tests.integration.conftest import service_port
from tests.integration.vda5050.support import PASSWORD, VdaStack, open_vda_stack, site_map

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def vda_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[VdaStack]:
    with open_vda_stack(prefixed_settings, kafka_admin, tmp_path) as stack:
        yield stack


class RawVehicle:
    """A bare MQTT client with a vehicle's account: sends what the test tells it to, valid or not."""

    def __init__(self, s: VdaStack, serial: str) -> None:
        self.serial = serial
        self.positions = {n["id"]: (n["x"], n["y"]) for n in site_map()["nodes"]}
        self.interface = s.interface
        self.header = 0
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"raw-{serial}-{uuid.uuid4().hex[:6]}"
        )
        self.client.username_pw_set(f"dev/{serial}", PASSWORD)
        self.client.connect("127.0.0.1", service_port("mosquitto"))
        self.client.loop_start()

    def topic(self, name: str, serial: str | None = None) -> str:
        return f"{self.interface}/v2/dev/{serial or self.serial}/{name}"

    def send(self, name: str, payload: bytes | dict[str, Any], serial: str | None = None) -> None:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        self.client.publish(self.topic(name, serial), data, qos=1).wait_for_publish(5)

    def state(
        self, node: str = "P05", *, version: str = "2.1.0", serial: str | None = None
    ) -> dict[str, Any]:
        self.header += 1
        return {"headerId": self.header, "timestamp": vda.format_timestamp(int(time.time() * 1000)),
                "version": version, "manufacturer": "dev", "serialNumber": serial or self.serial,
                "orderId": "", "orderUpdateId": 0, "lastNodeId": node, "lastNodeSequenceId": 0,
                "nodeStates": [], "edgeStates": [], "driving": False, "actionStates": [],
                "batteryState": {"batteryCharge": 90.0, "charging": False}, "operatingMode": "AUTOMATIC",
                "errors": [], "safetyState": {"eStop": "NONE", "fieldViolation": False},
                "agvPosition": {"x": self.positions[node][0], "y": self.positions[node][1], "theta": 0.0,
                                "mapId": "w1", "positionInitialized": True}}  # fmt: skip

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _dead(s: VdaStack, count: int) -> list[tuple[bytes, str]]:
    letters = s.read_raw("dlq.vda5050", count, timeout=60)
    return [(m.value(), dict(m.headers())["fleet-dlq-error"].decode()) for m in letters]


def test_bad_messages_and_decisions_are_dead_lettered_with_the_reason_and_the_bridge_goes_on(
    vda_stack: VdaStack,
) -> None:
    s = vda_stack
    s.publish_map()
    s.start("vda5050", **s.bridge_env(commit_interval_s=0.05, vda_vehicles='{"dev/agv-05": {}}',
                                       vda_register_unknown="false"))  # fmt: skip
    s.wait_started("vda5050", timeout=90)
    good, stranger = RawVehicle(s, "agv-05"), RawVehicle(s, "agv-06")
    try:
        good.send("state", good.state())
        s.wait_for("robot.telemetry", lambda rs: any(r["robot_id"] == "dev-agv-05" for r in rs))

        good.send("state", b"{not json")
        old = good.state(version="1.1.0")
        good.send("state", old)
        broken = good.state()
        del broken["batteryState"]
        good.send("state", broken)
        stranger.send("state", stranger.state())  # a vehicle the closed fleet does not know
        letters = _dead(s, 4)
        reasons = [reason for _value, reason in letters]
        assert any("is not JSON" in r for r in reasons)
        assert any("1.1.0 is not supported" in r for r in reasons)
        assert any("does not validate against VDA 5050 2.1.0" in r and "batteryState" in r for r in reasons)
        assert any("unknown vehicle dev/agv-06" in r for r in reasons)
        assert b"{not json" in [value for value, _ in letters]  # the original bytes are kept

        # a decision that cannot apply: a GRANT whose route leaves the released base (stale)
        s.decision("ASSIGN", "dev-agv-05", ["P05", "W00"], task_id="t1")
        time.sleep(1.0)
        s.decision("GRANT", "dev-agv-05", ["P06", "P07"], granted=2, plan_id="p1", plan_seq=0)
        letters = _dead(s, 5)  # the dead-letter topic's partitions interleave: the fifth is not always last
        assert sum("does not continue the released base" in reason for _value, reason in letters) == 1
        assert sum("unknown vehicle dev/agv-06" in reason for _value, reason in letters) == 1

        # still running: a later valid state is telemetry
        good.send("state", good.state("W00"))
        s.wait_for("robot.telemetry", lambda rs: any(r["robot_id"] == "dev-agv-05" and r["pose"]["node_id"] == "W00"
                                                     for r in rs))  # fmt: skip
        assert s.procs["vda5050"].poll() is None
    finally:
        good.close()
        stranger.close()


def test_a_vehicle_cannot_speak_for_another(vda_stack: VdaStack) -> None:
    s = vda_stack
    s.publish_map()
    s.start("vda5050", **s.bridge_env(commit_interval_s=0.05))
    s.wait_started("vda5050", timeout=90)
    vehicle = RawVehicle(s, "agv-07")
    try:
        vehicle.send("state", vehicle.state(serial="agv-08"), serial="agv-08")  # refused by the broker's ACL
        vehicle.send("state", vehicle.state(serial="agv-08"))  # its own topic, another vehicle's header
        vehicle.send("state", vehicle.state())
        s.wait_for("robot.telemetry", lambda rs: any(r["robot_id"] == "dev-agv-07" for r in rs))
        (letter,) = _dead(s, 1)
        assert "names vehicle 'dev'/'agv-08'" in letter[1]
        time.sleep(2.0)
        records = s.read("robot.telemetry", timeout=5, quiet=0.5)
        assert {r["robot_id"] for r in records} == {"dev-agv-07"}
        inbound = s.read("vda5050.inbound", timeout=5, quiet=0.5, raw=True)
        assert all(b"/agv-08/" not in dict(m.headers())["vda5050-topic"] for m in inbound)
    finally:
        vehicle.close()
