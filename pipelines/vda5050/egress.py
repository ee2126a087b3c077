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
from confluent_kafka import Consumer, KafkaError, KafkaException

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

    def _publish(self, record: dict[str, Any]) -> None:
        payload = orjson.dumps(record["message"])
        while not self._stop.is_set():
            try:
                self._mqtt.publish(record["topic"], payload, qos=int(record.get("qos", 0)),
                                   retain=bool(record.get("retain", False)))  # fmt: skip
                return
            except MqttError as exc:
                logger.warning("cannot publish to %s yet (%s); waiting for the broker", record["topic"], exc)
                self._mqtt.wait_connected(1.0)

    def _run(self) -> None:
        last_commit = time.monotonic()
        pending = False
        try:
            while not self._stop.is_set():
                messages = self._consumer.consume(num_messages=500, timeout=0.05)
                for msg in messages:
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(error)
                    self._in.value += 1
                    value = msg.value()
                    if value is None:
                        continue
                    try:
                        record = orjson.loads(value)
                    except orjson.JSONDecodeError:
                        logger.error(
                            "skipping an outbound record that is not JSON at offset %s", msg.offset()
                        )
                        continue
                    if self._stale(record):
                        self.skipped += 1
                        continue
                    self._publish(record)
                    self.published += 1
                    pending = True
                    if self.on_publish is not None:
                        self.on_publish(record["topic"], record["message"], time.time_ns() // 1_000_000)
                now = time.monotonic()
                if pending and now - last_commit >= self._commit_every_s:
                    self._consumer.commit(asynchronous=True)
                    pending, last_commit = False, now
            if pending:
                self._consumer.commit(asynchronous=False)
        except BaseException as exc:
            self.error = exc
            logger.exception("the VDA 5050 egress failed")
        finally:
            self._consumer.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
