"""The one dead-letter mechanism of every processor: ``dlq.<processor>``.

A record that can never succeed is written to the dead-letter topic with its original key, value
bytes and headers, plus headers that say why and where it came from; the partition then moves on.
The write is flushed before the callback returns, so no offset is committed past a record that was
not written anywhere. A record the same process reads again (a sink's backpressure or an aborted
transaction seeks the partition back to its committed offset) is not dead-lettered twice: the queue
remembers the source positions it wrote. Only a crash between the DLQ write and the next commit can
re-send one; DLQ readers deduplicate on ``fleet-dlq-topic``/``-partition``/``-offset``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from pipelines.metrics import DLQ_RECORDS
from pipelines.settings import PRODUCER_DEFAULTS

__all__ = ["DLQ_HEADERS", "DeadLetterGuard", "DeadLetterQueue", "dlq_topic_name", "replay"]

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


class DeadLetterGuard:
    """Trips when more than ``max_ratio`` of the last ``window`` records went to the dead-letter topic.

    A processor that dead-letters most of what it reads is not meeting bad records but a systematic
    cause (a schema that changed incompatibly, a producer gone wrong, a bug that raises RecordError):
    it stops, with a clear line, rather than drain its input into the DLQ. The window slides in two
    halves' worth of counts (the previous window weighted by how much of it is still in view).
    """

    def __init__(self, max_ratio: float, window: int) -> None:
        if not 0 < max_ratio <= 1 or window < 1:
            raise ValueError("need 0 < max_ratio <= 1 and window >= 1")
        self.max_ratio = max_ratio
        self.window = window
        self._seen = 0
        self._dead = 0
        self._previous_dead = 0

    def record(self) -> None:
        """One record read (processed or dead-lettered)."""
        self._seen += 1
        if self._seen >= self.window:
            self._previous_dead, self._dead, self._seen = self._dead, 0, 0

    def dead_letter(self) -> None:
        self._dead += 1

    @property
    def recent(self) -> float:
        """Dead letters among about the last ``window`` records."""
        return self._dead + self._previous_dead * (1 - self._seen / self.window)

    @property
    def tripped(self) -> bool:
        return self.recent > self.max_ratio * self.window


class DeadLetterQueue:
    """Writes dead letters synchronously with an idempotent producer, each source position once."""

    #: source positions remembered; far more than any partition re-reads after a seek back
    REMEMBERED = 65_536

    def __init__(self, kafka_config: dict[str, Any], processor: str, topic: str, flush_timeout: float = 30.0):
        self.processor = processor
        self.topic = topic
        self._flush_timeout = flush_timeout
        self._sent: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self._producer = Producer(
            {
                **kafka_config,
                **PRODUCER_DEFAULTS,
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
        position: tuple[str, int, int] | None = None
        if topic and partition is not None and offset is not None and offset >= 0:
            position = (topic, partition, offset)
        if position is not None and position in self._sent:
            logger.debug(
                "already dead-lettered %s[%s]@%s; the partition was read again", topic, partition, offset
            )
            return
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
        if position is not None:
            self._sent[position] = None
            if len(self._sent) > self.REMEMBERED:
                self._sent.popitem(last=False)
        logger.warning(
            "dead-lettered record: %s",
            reason,
            extra={"topic": topic, "partition": partition, "offset": offset, "reason": reason},
        )

    def close(self) -> None:
        self._producer.flush(self._flush_timeout)


def replay(
    kafka_config: dict[str, Any],
    *,
    dlq_topic: str,
    group_id: str,
    target_topic: str | None = None,
    max_records: int | None = None,
    idle_timeout_s: float = 5.0,
    dry_run: bool = False,
) -> dict[str, int]:
    """Re-produce dead letters to the topic they came from (or ``target_topic``), once.

    The replay consumer group commits its position only after every re-produced record is acknowledged,
    so a second replay sends nothing twice and a crash re-sends at most the uncommitted batch (the
    original ``fleet-dlq-topic/-partition/-offset`` headers are kept as ``fleet-replayed-from`` so
    consumers can tell). Records are re-produced with their original key, value and headers.
    """
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            **kafka_config,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    producer = Producer({**kafka_config, **PRODUCER_DEFAULTS, "linger.ms": 5})
    stats = {"read": 0, "replayed": 0, "skipped": 0}
    consumer.subscribe([dlq_topic])
    last_data = time.monotonic()
    errors: list[Any] = []
    try:
        while max_records is None or stats["read"] < max_records:
            msgs = consumer.consume(num_messages=500, timeout=0.5)
            data = [m for m in msgs if not m.error()]
            for m in msgs:
                if m.error() and m.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(m.error())
            if not data:
                if time.monotonic() - last_data > idle_timeout_s:
                    break
                continue
            last_data = time.monotonic()
            for m in data:
                stats["read"] += 1
                headers = dict(m.headers() or [])
                origin = headers.get("fleet-dlq-topic", b"").decode()
                target = target_topic or origin
                if not target:
                    stats["skipped"] += 1
                    logger.warning(
                        "dead letter without fleet-dlq-topic at %s[%d]@%d; skipped",
                        m.topic(),
                        m.partition(),
                        m.offset(),
                    )
                    continue
                original = [(k, v) for k, v in (m.headers() or []) if not k.startswith("fleet-dlq-")]
                marker = (
                    f"{origin}[{headers.get('fleet-dlq-partition', b'-1').decode()}]@"
                    + headers.get("fleet-dlq-offset", b"-1").decode()
                )
                if not dry_run:
                    producer.produce(
                        target,
                        key=m.key(),
                        value=m.value(),
                        headers=[*original, ("fleet-replayed-from", marker.encode())],
                        on_delivery=lambda err, _msg: errors.append(err) if err else None,
                    )
                stats["replayed"] += 1
            if not dry_run:
                if producer.flush(30) or errors:
                    raise KafkaException(errors[0] if errors else "replay produce timed out")
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return stats
