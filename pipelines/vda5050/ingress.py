"""MQTT -> Kafka: every message vehicles publish goes to ``vda5050.inbound`` as it was received.

Nothing is parsed here beyond the topic (for the key, the robot id): malformed payloads reach Kafka too
and the topology dead-letters them with the reason, so nothing a vehicle sent is lost at the bridge and
every fact enters Kafka first. Value: the payload bytes; key: the robot id (``VdaConfig.robot_id``);
headers ``vda5050-topic`` (the MQTT topic) and ``vda5050-received-at`` (epoch ms); timestamp: when it was
received. The producer is idempotent; a record Kafka finally refuses stops the bridge (``failed``).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from pipelines.metrics import RECORDS_OUT
from pipelines.settings import PRODUCER_DEFAULTS
from topologies.vda5050.config import VdaConfig
from topologies.vda5050.messages import HEADER_RECEIVED_AT, HEADER_TOPIC

__all__ = ["Ingress"]

logger = logging.getLogger(__name__)


class Ingress:
    """The MQTT message handler that produces to ``vda5050.inbound``; ``poll`` serves delivery reports."""

    def __init__(self, kafka_config: dict[str, Any], topic: str, config: VdaConfig, processor: str) -> None:
        self.topic = topic
        self._config = config
        self._producer = Producer(
            {
                **kafka_config,
                **PRODUCER_DEFAULTS,
                "linger.ms": 2,
                "compression.type": "lz4",
                "client.id": f"fleet-{processor}-ingress",
            }
        )
        self._ids: dict[str, str] = {}
        self.received = 0
        self.states = 0
        self.delivered = 0
        self.skipped = 0
        self.error: KafkaError | None = None
        self._out = RECORDS_OUT.labels(processor, topic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="vda5050-ingress", daemon=True)

    def start(self) -> Ingress:
        self._thread.start()
        return self

    def _key(self, mqtt_topic: str) -> bytes | None:
        key = self._ids.get(mqtt_topic)
        if key is None:
            parts = mqtt_topic.split("/")
            if len(parts) != 5:
                return None
            key = self._ids[mqtt_topic] = self._config.robot_id(parts[2], parts[3])
        return key.encode()

    def __call__(self, mqtt_topic: str, payload: bytes, received_at: int) -> None:
        """Produce one MQTT message (called on the MQTT network thread)."""
        self.received += 1
        if mqtt_topic.endswith("/state"):
            self.states += 1
        key = self._key(mqtt_topic)
        if key is None or not payload:
            # not a VDA 5050 topic (the subscriptions deliver none), or a retained message being cleared
            # (an empty payload is how MQTT deletes one; no vehicle sends it as a message)
            self.skipped += 1
            return
        headers = [(HEADER_TOPIC, mqtt_topic.encode()), (HEADER_RECEIVED_AT, str(received_at).encode())]
        while True:
            try:
                self._producer.produce(
                    self.topic, value=payload, key=key, headers=headers, timestamp=received_at,
                    on_delivery=self._delivered,
                )  # fmt: skip
                return
            except BufferError:  # the local queue is full: wait for Kafka (MQTT waits on us meanwhile)
                self._producer.poll(0.05)

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.delivered += 1
            self._out.value += 1
        elif self.error is None:
            self.error = err
            logger.error("a vehicle message could not be written to %s: %s", self.topic, err)

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def close(self, timeout_s: float = 30.0) -> int:
        """Stop and flush; the number of records not delivered."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self._producer.flush(timeout_s)
