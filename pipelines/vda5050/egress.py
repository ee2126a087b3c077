"""Kafka -> MQTT: the orders and instant actions the topology emits are published to the vehicles as they
are produced to ``vda5050.outbound``.

The topology runs exactly once: its state and ``vda5050.outbound`` are written in one Kafka transaction
per checkpoint, so every decision changes a vehicle's orders exactly once and the topic records what was
sent. The publish itself cannot be part of a Kafka transaction; it happens when the record is produced,
not after the transaction commits (which would add a checkpoint to every decision's way to the vehicle).
When a transaction is aborted (a crash, a rebalance), its inputs are processed again from the last
checkpoint and the same order updates are published again: the same ``orderId`` and ``orderUpdateId``
again is ignored by a vehicle (2.1 §6.6.4.3, 3.0 §6.1.4.5). A message the broker cannot take (it is away)
is not waited for: the vehicle is unreachable then too, and the topology sends again what a vehicle's
states show it did not get (``topologies.vda5050.control``). MQTT QoS 0 for ``order`` and
``instantActions`` (2.1 §6.2, 3.0 §4.1).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import orjson

from pipelines.metrics import RECORDS_OUT
from pipelines.vda5050.mqtt import MqttClient, MqttError
from topologies.vda5050 import OUTBOUND, Output
from topologies.vda5050.messages import OutboundRecord
from topologies.vda5050.protocol import OutboundMessage

__all__ = ["Egress"]

logger = logging.getLogger(__name__)


class Egress:
    """Called with every output of the topology (a Quix ``update``); publishes the outbound ones."""

    def __init__(self, processor: str, *, warn_every_s: float = 10.0) -> None:
        self.mqtt: MqttClient | None = None
        self.published = 0
        self.unsent = 0
        self.on_publish: Callable[[str, OutboundMessage, int], None] | None = None  # for benchmarks
        self._warn_every_s = warn_every_s
        self._warned = 0.0
        self._out = RECORDS_OUT.labels(processor, "mqtt")

    def __call__(self, out: Output) -> None:
        if out.topic != OUTBOUND:
            return
        record: OutboundRecord = out.value
        try:
            if self.mqtt is None:
                raise MqttError("not connected yet")
            self.mqtt.publish(record["topic"], orjson.dumps(record["message"]), qos=int(record.get("qos", 0)),
                              retain=bool(record.get("retain", False)))  # fmt: skip
        except MqttError as exc:
            self.unsent += 1
            now = time.monotonic()
            if now - self._warned >= self._warn_every_s:
                self._warned = now
                logger.warning(
                    "cannot publish to %s (%s); %d messages not sent so far, the vehicles' states will show "
                    "what they miss", record["topic"], exc, self.unsent,
                )  # fmt: skip
            return
        self.published += 1
        self._out.value += 1
        if self.on_publish is not None:
            self.on_publish(record["topic"], record["message"], time.time_ns() // 1_000_000)
