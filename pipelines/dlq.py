"""The one dead-letter mechanism of every processor: ``dlq.<processor>``.

A record that can never succeed is written to the dead-letter topic with its original key, value
bytes and headers, plus headers that say why and where it came from; the partition then moves on.
The write is flushed before the callback returns, so no offset is committed past a record that was
not written anywhere. (A crash between the DLQ write and the next commit re-sends it: DLQ readers
deduplicate on ``fleet-dlq-topic``/``-partition``/``-offset``.)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaException, Producer

from pipelines.metrics import DLQ_RECORDS

__all__ = ["DLQ_HEADERS", "DeadLetterQueue", "dlq_topic_name"]

logger = logging.getLogger(__name__)

DLQ_HEADERS = (
    "fleet-dlq-error",
    "fleet-dlq-error-type",
    "fleet-dlq-topic",
    "fleet-dlq-partition",
    "fleet-dlq-offset",
    "fleet-dlq-processor",
    "fleet-dlq-at",
)

Headers = Sequence[tuple[str, bytes | str | None]] | None


def dlq_topic_name(processor: str, prefix: str = "") -> str:
    return f"{prefix}dlq.{processor}"


class DeadLetterQueue:
    """Writes dead letters synchronously with an idempotent producer."""

    def __init__(self, kafka_config: dict[str, Any], processor: str, topic: str, flush_timeout: float = 30.0):
        self.processor = processor
        self.topic = topic
        self._flush_timeout = flush_timeout
        self._producer = Producer(
            {
                **kafka_config,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 0,
                "client.id": f"fleet-{processor}-dlq",
            }
        )

    def send(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        error: BaseException | str,
        topic: str | None,
        partition: int | None,
        offset: int | None,
    ) -> None:
        reason = getattr(error, "reason", None) or str(error) or type(error).__name__
        error_type = type(error).__name__ if isinstance(error, BaseException) else "Rejected"
        out_headers: list[tuple[str, bytes]] = [
            (k, v if isinstance(v, bytes) else (v or "").encode())
            for k, v in (headers or [])
            if not k.startswith("fleet-dlq-")
        ]
        out_headers += [
            ("fleet-dlq-error", reason.encode()[:4000]),
            ("fleet-dlq-error-type", error_type.encode()),
            ("fleet-dlq-topic", (topic or "").encode()),
            ("fleet-dlq-partition", str(partition if partition is not None else -1).encode()),
            ("fleet-dlq-offset", str(offset if offset is not None else -1).encode()),
            ("fleet-dlq-processor", self.processor.encode()),
            ("fleet-dlq-at", str(int(time.time() * 1000)).encode()),
        ]
        delivery: list[Any] = []
        self._producer.produce(
            self.topic,
            value=value,
            key=key,
            headers=out_headers,
            on_delivery=lambda err, _msg: delivery.append(err),
        )
        remaining = self._producer.flush(self._flush_timeout)
        if remaining or (delivery and delivery[0] is not None):
            # The record is not safe anywhere: stop rather than commit past it.
            raise KafkaException(delivery[0] if delivery else "dead-letter write timed out")
        DLQ_RECORDS.labels(self.processor, error_type).inc()
        logger.warning(
            "dead-lettered record: %s",
            reason,
            extra={"topic": topic, "partition": partition, "offset": offset, "reason": reason},
        )

    def close(self) -> None:
        self._producer.flush(self._flush_timeout)
