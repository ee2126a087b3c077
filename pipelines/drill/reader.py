"""Reading whole topics back, as a read_committed consumer sees them, for the verifier.

Each record keeps where it was (partition, offset), its Kafka timestamp, key and headers, and its value
decoded by the topic's codec (Avro from the registry, JSON for internal topics, or the raw bytes).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, TopicPartition

__all__ = ["Record", "TopicReader"]

logger = logging.getLogger(__name__)

Decode = Callable[[bytes], Any]


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: str | None
    value: Any  # decoded; None for a tombstone
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace") if value is not None else None
        return None


class TopicReader:
    """Reads every committed record of a topic from the beginning to its end (last stable offset)."""

    def __init__(self, kafka_config: dict[str, Any]) -> None:
        self._config = kafka_config

    def partitions(self, topic: str) -> list[int]:
        consumer = self._consumer()
        try:
            meta = consumer.list_topics(topic, timeout=20).topics.get(topic)
            if meta is None or meta.error is not None:
                return []
            return sorted(meta.partitions)
        finally:
            consumer.close()

    def read(self, topic: str, decode: Decode, timeout: float = 300.0) -> list[Record]:
        """Every record of ``topic`` in partition order, decoded; an empty list for a missing topic."""
        parts = self.partitions(topic)
        if not parts:
            return []
        consumer = self._consumer()
        out: list[Record] = []
        try:
            consumer.assign([TopicPartition(topic, p, 0) for p in parts])
            open_parts = set(parts)
            deadline = time.monotonic() + timeout
            while open_parts:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{topic}: partitions {sorted(open_parts)} not read to the end in {timeout}s"
                    )
                for msg in consumer.consume(1000, 1.0):
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            open_parts.discard(msg.partition())
                            continue
                        raise RuntimeError(f"{topic}: {err}")
                    data = msg.value()
                    key = msg.key()
                    out.append(
                        Record(
                            topic=topic,
                            partition=msg.partition(),
                            offset=msg.offset(),
                            timestamp=msg.timestamp()[1],
                            key=key.decode(errors="replace") if key is not None else None,
                            value=decode(data) if data is not None else None,
                            headers=tuple(msg.headers() or ()),
                        )
                    )
        finally:
            consumer.close()
        out.sort(key=lambda r: (r.partition, r.offset))
        return out

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                **self._config,
                "group.id": f"drill-verify-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "auto.offset.reset": "earliest",
            }
        )
