"""VDA 5050 MQTT topics and message envelopes: parsing what vehicles send, addressing what we send.

Topic layout (spec 2.1 §6.3, 3.0 §4.2): ``{interfaceName}/v{major}/{manufacturer}/{serialNumber}/{topic}``;
2.x vehicles use an interface name agreed at integration (``uagv`` by default), 3.0 ones ``vda5050``.

``decode`` turns the raw bytes of one inbound message into a dict, or raises
:class:`~schemas.errors.RejectedRecord` naming what is wrong: not JSON, not an object, a version that is
not 2.x/3.x, a version whose major differs from the topic's, a header naming another vehicle than the
topic, or a message that does not validate against the official schema of its version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, cast

import orjson

from schemas import vda
from schemas.errors import RejectedRecord
from topologies.vda5050.protocol import OutboundMessage, VehicleMessage

__all__ = [
    "HEADER_RECEIVED_AT",
    "HEADER_TOPIC",
    "OutboundRecord",
    "VdaTopic",
    "decode",
    "outbound",
    "parse_topic",
]

#: Kafka headers the ingress puts on every ``vda5050.inbound`` record.
HEADER_TOPIC = "vda5050-topic"
HEADER_RECEIVED_AT = "vda5050-received-at"


@dataclass(frozen=True, slots=True)
class VdaTopic:
    """One parsed MQTT topic."""

    interface: str
    major: str
    manufacturer: str
    serial: str
    topic: str

    @property
    def prefix(self) -> str:
        """``{interfaceName}/v{major}/{manufacturer}/{serialNumber}``: the vehicle's topic root."""
        return f"{self.interface}/v{self.major}/{self.manufacturer}/{self.serial}"

    @property
    def vehicle(self) -> str:
        return f"{self.manufacturer}/{self.serial}"


def parse_topic(mqtt_topic: str) -> VdaTopic:
    """Split a VDA 5050 topic; RejectedRecord when it does not have the five levels with ``v<major>``."""
    parts = mqtt_topic.split("/")
    if len(parts) != 5 or not all(parts):
        raise RejectedRecord(
            f"MQTT topic {mqtt_topic!r} is not interfaceName/v<major>/manufacturer/serialNumber/topic"
        )
    interface, version, manufacturer, serial, topic = parts
    if not (version.startswith("v") and version[1:].isdigit()):
        raise RejectedRecord(f"MQTT topic {mqtt_topic!r}: version level {version!r} is not v<major>")
    return VdaTopic(interface, version[1:], manufacturer, serial, topic)


def decode(raw: bytes | None, where: VdaTopic) -> tuple[VehicleMessage, str]:
    """The message and the schema release it validated against; RejectedRecord with the reason if not."""
    if where.topic not in vda.INBOUND_TOPICS:
        raise RejectedRecord(
            f"{where.topic!r} is not a topic vehicles publish ({', '.join(vda.INBOUND_TOPICS)})"
        )
    if raw is None:
        raise RejectedRecord(f"empty {where.topic} message from {where.vehicle}")
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RejectedRecord(f"{where.topic} from {where.vehicle} is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise RejectedRecord(f"{where.topic} from {where.vehicle} is not a JSON object")
    version = message.get("version")
    try:
        release = vda.schema_release(version)  # type: ignore[arg-type]
    except vda.VdaVersionError as exc:
        raise RejectedRecord(f"{where.topic} from {where.vehicle}: {exc}") from None
    if vda.major_of(version) != where.major:  # type: ignore[arg-type]
        raise RejectedRecord(
            f"{where.topic} from {where.vehicle}: version {version} on a v{where.major} topic"
        )
    if message.get("manufacturer") != where.manufacturer or message.get("serialNumber") != where.serial:
        raise RejectedRecord(
            f"{where.topic} on the topic of {where.vehicle} names vehicle "
            f"{message.get('manufacturer')!r}/{message.get('serialNumber')!r}"
        )
    found = vda.problems(where.topic, message, release)
    if found:
        raise RejectedRecord(
            f"{where.topic} from {where.vehicle} does not validate against VDA 5050 {release}: "
            + "; ".join(found)
        )
    return cast(VehicleMessage, message), release  # valid against the schema of ``where.topic``


class OutboundRecord(TypedDict):
    """A ``vda5050.outbound`` record (key ``robot_id``): what the egress publishes, where and how."""

    robot_id: str
    topic: str  # the MQTT topic
    qos: int
    retain: bool
    message: OutboundMessage


def outbound(
    robot_id: str, prefix: str, topic: str, message: OutboundMessage, *, qos: int = 0, retain: bool = False
) -> OutboundRecord:
    """A ``vda5050.outbound`` record: what the egress publishes, where and how (key ``robot_id``)."""
    return {
        "robot_id": robot_id,
        "topic": f"{prefix}/{topic}",
        "qos": qos,
        "retain": retain,
        "message": message,
    }
