"""The Quix Streams application factory: sane defaults and one dead-letter path for every processor.

``ProcessorApp`` wraps a ``quixstreams.Application`` with:
- consumer group ``<prefix>fleet-<processor>``, earliest offsets, state under ``state_dir/<processor>``;
- exactly-once for topology processors (their output feeds other topologies), at-least-once for sinks;
- dead letters: a record whose bytes cannot be decoded, or that a topology rejects (``RecordError``) or
  fails on, goes to ``dlq.<processor>`` with its original bytes and the reason; the partition moves on.
  Broker errors are never swallowed: the process stops and is restarted from its last checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from quixstreams import Application
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import Deserializer, SerializationContext, TopicConfig
from quixstreams.models.topics import Topic

from pipelines.dlq import DeadLetterQueue, dlq_topic_name
from pipelines.settings import CommonSettings

__all__ = ["CapturingDeserializer", "ProcessorApp", "create_processor_app"]

logger = logging.getLogger(__name__)


class _RawCapture:
    """The raw bytes of the message being processed, so a processing error can dead-letter the original."""

    value: bytes | None = None
    topic: str | None = None


_RAW = _RawCapture()


class CapturingDeserializer(Deserializer):
    """Wraps a value deserializer and remembers the raw bytes of the message it decodes."""

    def __init__(self, inner: Deserializer) -> None:
        super().__init__()
        self._inner = inner

    @property
    def split_values(self) -> bool:
        return self._inner.split_values

    def __call__(self, value: bytes, ctx: SerializationContext) -> Any:
        _RAW.value = value
        _RAW.topic = ctx.topic
        return self._inner(value, ctx)


def _key_bytes(key: Any) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return str(key).encode()


@dataclass
class ProcessorApp:
    """A processor's Application with its settings and dead-letter queue."""

    name: str
    settings: CommonSettings
    app: Application
    dlq: DeadLetterQueue
    partitions: dict[str, int] = field(default_factory=dict)

    def topic(
        self,
        name: str,
        *,
        value_deserializer: Any = "bytes",
        value_serializer: Any = "bytes",
        key_deserializer: Any = "str",
        key_serializer: Any = "str",
        partitions: int | None = None,
    ) -> Topic:
        """A catalog topic by its catalog name (the environment prefix is added here)."""
        if isinstance(value_deserializer, Deserializer):
            value_deserializer = CapturingDeserializer(value_deserializer)
        config: TopicConfig | None = None
        if partitions is not None:
            config = TopicConfig(num_partitions=partitions, replication_factor=1)
        return self.app.topic(
            self.settings.topic(name),
            value_deserializer=value_deserializer,
            value_serializer=value_serializer,
            key_deserializer=key_deserializer,
            key_serializer=key_serializer,
            config=config,
        )

    def run(self) -> None:
        try:
            self.app.run()
        finally:
            self.dlq.close()


def create_processor_app(
    settings: CommonSettings,
    name: str,
    *,
    exactly_once: bool = True,
    commit_interval: float = 0.5,
    consumer_group: str | None = None,
    auto_offset_reset: str = "earliest",
    consumer_extra_config: dict[str, Any] | None = None,
    producer_extra_config: dict[str, Any] | None = None,
    consumer_poll_timeout: float = 0.005,
) -> ProcessorApp:
    """Build the Application for processor ``name`` with fleetstream's defaults and dead-letter routing.

    ``consumer_poll_timeout`` is short by default: Quix waits that long for each poll, and with several
    inputs aligned by time a long poll stalls the whole app (5 ms doubled telemetry throughput).
    """
    kafka_cfg = settings.kafka_client_config()
    dlq = DeadLetterQueue(kafka_cfg, name, dlq_topic_name(name, settings.topic_prefix))

    def on_consumer_error(exc: Exception, message: Any, log: logging.Logger) -> bool:
        # Undecodable bytes arrive here with the raw message; broker errors arrive without one.
        if message is None or isinstance(exc, KafkaException):
            log.error("consumer error: %s", exc)
            return False
        dlq.send(
            key=message.key(),
            value=message.value(),
            headers=message.headers(),
            error=exc,
            topic=message.topic(),
            partition=message.partition(),
            offset=message.offset(),
        )
        return True

    def on_processing_error(exc: Exception, row: Any, log: logging.Logger) -> bool:
        if row is None or isinstance(exc, KafkaException):
            log.error("processing error without a record or from the broker: %s", exc)
            return False
        raw = _RAW.value if _RAW.topic == row.topic else None
        if not hasattr(exc, "reason"):
            log.exception(
                "unexpected error processing a record; dead-lettering it",
                extra={"topic": row.topic, "partition": row.partition, "offset": row.offset},
            )
        dlq.send(
            key=_key_bytes(row.key),
            value=raw,
            headers=row.headers,
            error=exc,
            topic=row.topic,
            partition=row.partition,
            offset=row.offset,
        )
        return True

    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka_cfg, ignore_extras=True),
        consumer_group=consumer_group or f"{settings.topic_prefix}fleet-{name}",
        auto_offset_reset=auto_offset_reset,  # type: ignore[arg-type]
        commit_interval=commit_interval,
        state_dir=settings.state_dir / name,
        processing_guarantee="exactly-once" if exactly_once else "at-least-once",
        on_consumer_error=on_consumer_error,
        on_processing_error=on_processing_error,
        consumer_extra_config=consumer_extra_config,
        producer_extra_config=producer_extra_config,
        consumer_poll_timeout=consumer_poll_timeout,
        loglevel=None,
        auto_create_topics=True,
    )
    return ProcessorApp(name=name, settings=settings, app=app, dlq=dlq)
