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

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

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

    def ends(self, topic: str, parts: list[int], attempts: int = 10) -> dict[int, int]:
        """The last stable offset of each partition now (asked again while leaders move)."""
        admin = AdminClient(self._config)
        request = {TopicPartition(topic, p): OffsetSpec.latest() for p in parts}
        for attempt in range(attempts):
            try:
                futures = admin.list_offsets(
                    request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=10
                )
                return {tp.partition: f.result().offset for tp, f in futures.items()}
            except KafkaException:
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def read(self, topic: str, decode: Decode, timeout: float = 300.0) -> list[Record]:
        """Every record of ``topic`` in partition order, decoded, up to the end each partition had when
        the read began (a topic that still grows is read to that point); [] for a missing topic."""
        parts = self.partitions(topic)
        if not parts:
            return []
        ends = self.ends(topic, parts)
        consumer = self._consumer()
        out: list[Record] = []
        try:
            open_parts = {p for p in parts if ends[p] > 0}
            consumer.assign([TopicPartition(topic, p, 0) for p in open_parts])
            deadline = time.monotonic() + timeout
            while open_parts:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{topic}: partitions {sorted(open_parts)} not read to their ends "
                        f"{ {p: ends[p] for p in sorted(open_parts)} } in {timeout}s"
                    )
                for msg in consumer.consume(1000, 1.0):
                    err = msg.error()
                    part = msg.partition()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            open_parts.discard(part)
                            continue
                        raise RuntimeError(f"{topic}: {err}")
                    if part not in open_parts or msg.offset() >= ends[part]:
                        open_parts.discard(part)  # written after the read began
                        continue
                    if msg.offset() == ends[part] - 1:
                        open_parts.discard(part)
                    data = msg.value()
                    key = msg.key()
                    out.append(
                        Record(
                            topic=topic,
                            partition=part,
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
