"""The Quix Streams application factory: sane defaults and one dead-letter path for every processor.

``ProcessorApp`` wraps a ``quixstreams.Application`` with:
- consumer group ``<prefix>fleet-<processor>``, earliest offsets, state under ``state_dir/<processor>``;
- exactly-once for topology processors (their output feeds other topologies), at-least-once for sinks;
- dead letters: a record whose bytes cannot be decoded, or that a topology rejects (``RecordError``) or
  fails on, goes to ``dlq.<processor>`` with its original bytes and the reason; the partition moves on.
  Broker errors are never swallowed: the process stops and is restarted from its last checkpoint;
- trace context and metrics per record (:meth:`ProcessorApp.instrument`): while a record is processed its
  :class:`schemas.tracing.Trace` is current, so log lines carry its trace id (``pipelines/logsetup.py``)
  and every record produced to a topic made by :meth:`ProcessorApp.topic` carries ``traceparent`` with
  the same trace id and this processor's span; ``fleet_records_in_total``, ``fleet_records_out_total``,
  ``fleet_processing_latency_seconds``, ``fleet_consumer_lag`` and ``fleet_state_bytes`` are fed here.

Quix Streams passes a record's headers on to what ``to_topic`` produces from it (and to sinks), but
not a new span: this module replaces ``traceparent`` on the way out (the value serializer's
``extra_headers``) and sets the current trace per record by wrapping the composed dataframes.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.error import SerializationError
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import Deserializer, SerializationContext, Serializer, TopicConfig
from quixstreams.models.serializers import SERIALIZERS
from quixstreams.models.topics import Topic

from pipelines.dlq import DeadLetterQueue, dlq_topic_name
from pipelines.metrics import PROCESSING_LATENCY, RECORDS_IN, RECORDS_OUT, STATE_BYTES, lag_stats_config
from pipelines.settings import CommonSettings
from schemas.tracing import TRACEPARENT, Trace, activate, current, set_current

__all__ = [
    "CapturingDeserializer",
    "OutputSerializer",
    "ProcessorApp",
    "TracingSerializer",
    "create_processor_app",
]

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


class TracingSerializer(Serializer):
    """Wraps a value serializer: every record it serializes carries ``traceparent`` (the current trace's
    span, or a new trace's) and is counted in ``fleet_records_out_total``."""

    def __init__(self, inner: Serializer, processor: str, topic: str) -> None:
        super().__init__()
        self._inner = inner
        self._topic = topic
        self._out = RECORDS_OUT.labels(processor, topic)

    @property
    def inner(self) -> Serializer:
        return self._inner

    @property
    def extra_headers(self) -> dict[str, Any]:
        # Quix reads this once per record it serializes, just before serializing the value.
        self._out.value += 1
        trace = current()
        header = trace.header if trace is not None else Trace().header
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("producing a record to %s", self._topic, extra={"output_topic": self._topic})
        extra = self._inner.extra_headers
        return {**extra, TRACEPARENT: header} if extra else {TRACEPARENT: header}

    def __call__(self, value: Any, ctx: SerializationContext) -> str | bytes:
        return self._inner(value, ctx)


class OutputSerializer(Serializer):
    """Serializes the record of a topology output (``out.value``, the ``Output`` of the telemetry and RMF
    topologies: topic + record) with ``inner``."""

    def __init__(self, inner: Serializer) -> None:
        super().__init__()
        self._inner = inner

    @property
    def extra_headers(self) -> Any:
        return self._inner.extra_headers

    def __call__(self, value: Any, ctx: SerializationContext) -> Any:
        return self._inner(value.value, ctx)


Composed = Callable[[Any, Any, int, Any], Any]


def _instrumented(processor: str, topic: str, composed: Composed) -> Composed:
    """``composed`` (what Quix runs per record of ``topic``, inside a fresh context) with the record's
    trace made current, the record counted, and its event time to processed observed.

    This runs once per record: it keeps references only (the trace is parsed when something asks for
    it) and updates the lock-free metrics inline.
    """
    records_in = RECORDS_IN.labels(processor, topic)
    latency = PROCESSING_LATENCY.labels(processor)
    bounds, counts = latency.bounds, latency.counts
    now = time.time
    debug = logger.isEnabledFor(logging.DEBUG)

    def run(value: Any, key: Any, timestamp: int, headers: Any) -> Any:
        set_current(Trace(headers, value, topic))
        records_in.value += 1
        if debug:
            logger.debug("processing a record")
        result = composed(value, key, timestamp, headers)
        occurred_at = value.get("occurred_at") if type(value) is dict else None
        lag = now() - (occurred_at if type(occurred_at) is int else timestamp) / 1000
        if lag < 0:
            lag = 0.0
        counts[bisect_left(bounds, lag)] += 1
        latency.sum += lag
        return result

    return run


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
        """A catalog topic by its catalog name (the environment prefix is added here). What is produced
        to it carries ``traceparent`` and is counted (:class:`TracingSerializer`)."""
        real = self.settings.topic(name)
        if isinstance(value_deserializer, Deserializer):
            value_deserializer = CapturingDeserializer(value_deserializer)
        if isinstance(value_serializer, str):
            value_serializer = SERIALIZERS[value_serializer]()
        value_serializer = TracingSerializer(value_serializer, self.name, real)
        config: TopicConfig | None = None
        if partitions is not None:
            config = TopicConfig(num_partitions=partitions, replication_factor=1)
        return self.app.topic(
            real,
            value_deserializer=value_deserializer,
            value_serializer=value_serializer,
            key_deserializer=key_deserializer,
            key_serializer=key_serializer,
            config=config,
        )

    def produce_outputs(
        self,
        outputs: StreamingDataFrame,
        names: Iterable[str],
        serializer: Callable[[str], Serializer],
        partitions: Callable[[str], int],
        key: Callable[[Any], Any],
    ) -> None:
        """Produce a stream of topology outputs (each with ``.topic``, a catalog name in ``names``, and
        ``.value``, its record) to their topics, in one produce step that chooses the topic per output
        (cheaper than a filtered branch per topic). ``serializer(name)`` serializes a record of ``name``."""
        topics = {
            name: self.topic(
                name, value_serializer=OutputSerializer(serializer(name)), partitions=partitions(name)
            )
            for name in names
        }
        outputs.to_topic(lambda out, _key, _ts, _headers: topics[out.topic], key=key)

    def instrument(self) -> None:
        """Wrap what Quix runs per record with :func:`_instrumented` (called by :meth:`run`; once).

        Quix composes every root dataframe (inputs and ``group_by`` repartition topics) through its
        dataframe registry when the app starts; wrapping ``compose_all`` is the one place that sees
        every record with its headers, inside the per-record context Quix creates.
        """
        registry = getattr(self.app, "_dataframe_registry", None)
        compose_all = getattr(registry, "compose_all", None)
        if compose_all is None or getattr(compose_all, "_fleet_instrumented", False):
            if compose_all is None:
                logger.warning(
                    "this Quix Streams version hides its dataframe registry: no per-record tracing"
                )
            return
        name = self.name

        def instrumented_compose_all(*args: Any, **kwargs: Any) -> dict[str, Composed]:
            composed: dict[str, Composed] = compose_all(*args, **kwargs)
            return {topic: _instrumented(name, topic, run) for topic, run in composed.items()}

        instrumented_compose_all._fleet_instrumented = True  # type: ignore[attr-defined]
        registry.compose_all = instrumented_compose_all  # type: ignore[union-attr]

    def run(self) -> None:
        self.instrument()
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
    consumer_config = dict(consumer_extra_config or {})
    if "stats_cb" not in consumer_config:  # fleet_consumer_lag from the consumer's statistics
        consumer_config = {**lag_stats_config(name), **consumer_config}

    def on_consumer_error(exc: Exception, message: Any, log: logging.Logger) -> bool:
        # Undecodable bytes arrive here with the raw message; broker errors arrive without one. Quix's own
        # deserializers raise a SerializationError, which is a KafkaException but a bad record all the same.
        if message is None or (isinstance(exc, KafkaException) and not isinstance(exc, SerializationError)):
            log.error("consumer error: %s", exc)
            return False
        RECORDS_IN.labels(name, message.topic()).value += 1  # never reaches the wrapped dataframe
        with activate(Trace(message.headers(), topic=message.topic())):
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
        # Quix calls this outside the record's context: make its trace current again for the log lines.
        with activate(Trace(row.headers, row.value, row.topic)):
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
        consumer_extra_config=consumer_config,
        producer_extra_config=producer_extra_config,
        consumer_poll_timeout=consumer_poll_timeout,
        loglevel=None,
        auto_create_topics=True,
    )
    STATE_BYTES.track(name, settings.state_dir / name)
    return ProcessorApp(name=name, settings=settings, app=app, dlq=dlq)
