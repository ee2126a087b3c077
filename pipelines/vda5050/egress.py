"""Kafka -> MQTT: publishes the orders and instant actions the topology wrote to ``vda5050.outbound``.

Reads committed records only (the topology writes them exactly once), publishes each to its MQTT topic
(QoS 0 for ``order`` and ``instantActions``, spec 2.1 §6.2 / 3.0 §4.1) and commits its offsets after the
messages were handed to the broker; while the broker is away it waits and publishes nothing further, so
nothing is committed past an unpublished message. A restart may publish the last messages again: the same
``orderId`` and ``orderUpdateId`` again is ignored by a vehicle (spec 2.1 §6.6.4.3, 3.0 §6.1.4.5), and an
update older than one already published in this run is not published again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipelines.metrics import RECORDS_IN
from pipelines.vda5050.mqtt import MqttClient, MqttError

__all__ = ["Egress"]

logger = logging.getLogger(__name__)


class Egress:
    """A consumer thread relaying ``vda5050.outbound`` to the broker; ``error`` is set if it failed."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        group_id: str,
        mqtt: MqttClient,
        processor: str,
        *,
        commit_every_s: float = 0.2,
    ) -> None:
        self.topic = topic
        self._mqtt = mqtt
        self._commit_every_s = commit_every_s
        self._consumer = Consumer(
            {
                **kafka_config,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
                "client.id": f"fleet-{processor}-egress",
            }
        )
        self._in = RECORDS_IN.labels(processor, topic)
        self._latest: dict[str, tuple[str, int]] = {}
        self.published = 0
        self.skipped = 0
        self.error: BaseException | None = None
        self.on_publish: Any = None  # optional hook (topic, message, published_at_ms), for benchmarks
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vda5050-egress", daemon=True)

    def start(self) -> Egress:
        self._consumer.subscribe([self.topic])
        self._thread.start()
        return self

    def _stale(self, record: dict[str, Any]) -> bool:
        message = record.get("message") or {}
        if not record.get("topic", "").endswith("/order") or "orderId" not in message:
            return False
        key = str(record.get("robot_id"))
        order = (str(message["orderId"]), int(message.get("orderUpdateId", 0)))
        last = self._latest.get(key)
        if last is not None and last[0] == order[0] and order[1] < last[1]:
            return True
        self._latest[key] = order
        return False

    def _publish(self, record: dict[str, Any]) -> bool:
        """Publish, waiting for the broker while it is away; False when stopped before it could."""
        payload = orjson.dumps(record["message"])
        while not self._stop.is_set():
            try:
                self._mqtt.publish(record["topic"], payload, qos=int(record.get("qos", 0)),
                                   retain=bool(record.get("retain", False)))  # fmt: skip
                return True
            except MqttError as exc:
                logger.warning("cannot publish to %s yet (%s); waiting for the broker", record["topic"], exc)
                self._mqtt.wait_connected(1.0)
        return False

    def _run(self) -> None:
        last_commit = time.monotonic()
        done: dict[tuple[str, int], int] = {}  # next offset to commit per partition: all before it published
        committed: dict[tuple[str, int], int] = {}
        try:
            while not self._stop.is_set():
                for msg in self._consumer.consume(num_messages=500, timeout=0.05):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(error)
                    self._in.value += 1
                    if not self._relay(msg.value(), msg.offset()):
                        break  # stopped before it was published: it is not committed
                    done[(msg.topic(), msg.partition())] = msg.offset() + 1
                now = time.monotonic()
                if done != committed and now - last_commit >= self._commit_every_s:
                    self._commit(done, asynchronous=True)
                    committed, last_commit = dict(done), now
        except BaseException as exc:  # reported to the processor, which stops
            self.error = exc
            logger.exception("the VDA 5050 egress failed")
        finally:
            if done != committed and self.error is None:
                self._commit(done, asynchronous=False)
            self._consumer.close()

    def _commit(self, done: dict[tuple[str, int], int], *, asynchronous: bool) -> None:
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in done.items()]
        self._consumer.commit(offsets=offsets, asynchronous=asynchronous)

    def _relay(self, value: bytes | None, offset: int) -> bool:
        """Publish one outbound record; False when stopped before it could be published."""
        if value is None:
            return True
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            logger.error("skipping an outbound record that is not JSON at offset %s", offset)
            return True
        if self._stale(record):
            self.skipped += 1
            return True
        if not self._publish(record):
            return False
        self.published += 1
        if self.on_publish is not None:
            self.on_publish(record["topic"], record["message"], time.time_ns() // 1_000_000)
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
