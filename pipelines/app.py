"""The Quix Streams application factory: one way to wire a processor, one dead-letter path, one error rule.

``ProcessorApp`` wraps a ``quixstreams.Application`` with:

- consumer group ``<prefix>fleet-<processor>``, earliest offsets, state under ``state_dir/<processor>``;
  exactly-once for topology processors (their output feeds other topologies), at-least-once for sinks;
- the processor's schema-registry client, codecs and partition counts, made once (:meth:`codec`,
  :meth:`partitions`), its inputs (:meth:`input`, :meth:`avro_input`, :meth:`inbox`) and one produce
  step for topology outputs (:meth:`produce`);
- errors: a record that can never be processed (undecodable bytes, a :class:`~schemas.errors.RecordError`
  from a step) goes to ``dlq.<processor>`` with its original bytes and the reason, and the partition
  moves on. Anything else (a bug, a RocksDB or registry failure, the broker) stops the processor, which
  is restarted from its last checkpoint (Kubernetes, ``fleet up``); nothing is committed past the
  record. A processor that dead-letters more than ``dead_letters_max_ratio`` of its last
  ``dead_letters_window`` records stops too (:class:`~pipelines.dlq.DeadLetterGuard`);
- trace context and metrics per record, through public Quix means: every input dataframe made by
  :meth:`dataframe` starts with a step that makes the record's :class:`schemas.tracing.Trace` current
  (log lines carry its trace id, ``pipelines/logsetup.py``), counts it (``fleet_records_in_total``) and
  observes its lag (``fleet_processing_latency_seconds``); every record produced to a topic made by
  :meth:`topic` carries ``traceparent`` with the same trace id and this processor's span and is counted
  (``fleet_records_out_total``); ``fleet_consumer_lag`` and ``fleet_state_bytes`` are fed here too.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from confluent_kafka.error import SerializationError
from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.kafka.configuration import ConnectionConfig
from quixstreams.models import Deserializer, TopicConfig
from quixstreams.models.serializers import SERIALIZERS
from quixstreams.models.topics import Topic
from quixstreams.models.topics.exceptions import TopicNotFoundError

from pipelines.dlq import DeadLetterGuard, DeadLetterQueue, dlq_topic_name
from pipelines.metrics import PROCESSING_LATENCY, RECORDS_IN, STATE_BYTES, lag_stats_config
from pipelines.serdes import (
    RAW,
    CapturingDeserializer,
    InboxDeserializer,
    OutputSerializer,
    TracingSerializer,
)
from pipelines.settings import CommonSettings
from pipelines.sideoutput import SideOutputs
from pipelines.watchdog import CommitWatchdog
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.errors import RecordError
from schemas.quix import AvroDeserializer
from schemas.registry import RegistryClient
from schemas.rmf import RmfJsonCodec
from schemas.tracing import Trace, activate, set_current
from topologies.kernel import Decode, Envelope, encode_envelope

__all__ = ["ProcessorApp", "create_processor_app", "create_topic", "partitions_of", "topic_config"]

logger = logging.getLogger(__name__)

#: How often a topic the processor has just created is looked up before its absence is an error.
_TOPIC_METADATA_ATTEMPTS = 5

RecordHook = Callable[[Any, Any, int, Any], None]


def _record_hook(processor: str, topic: str) -> RecordHook:
    """The first step of every input dataframe: the record's trace made current, the record counted,
    its lag (event time, else Kafka timestamp, to the start of processing) observed.

    This runs once per record: it keeps references only (the trace is parsed when something asks for it)
    and updates the lock-free metrics inline.
    """
    records_in = RECORDS_IN.labels(processor, topic)
    latency = PROCESSING_LATENCY.labels(processor)
    bounds, counts = latency.bounds, latency.counts
    now = time.time
    debug = logger.isEnabledFor(logging.DEBUG)

    def hook(value: Any, _key: Any, timestamp: int, headers: Any) -> None:
        decoded = type(value) is dict
        set_current(Trace(headers, value if decoded else None, topic))
        records_in.value += 1
        if debug:
            logger.debug("processing a record")
        occurred_at = value.get("occurred_at") if decoded else None
        lag = now() - (occurred_at if type(occurred_at) is int else timestamp) / 1000
        if lag < 0:
            lag = 0.0
        counts[bisect_left(bounds, lag)] += 1
        latency.sum += lag

    return hook


def _key_bytes(key: Any) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    return str(key).encode()


def _raw_value(row: Any) -> bytes | None:
    """The bytes of the record a processing error was raised for: topologies read bytes (or inbox
    envelopes); sinks decode in their deserializer, which captured them."""
    value = row.value
    if value is None or type(value) is bytes:
        return value  # type: ignore[no-any-return]
    if type(value) is Envelope:
        return encode_envelope(value)
    return RAW.value if RAW.topic == row.topic else None


@dataclass
class ProcessorApp:
    """A processor's Application with its settings, dead-letter queue, registry client and codecs."""

    name: str
    settings: CommonSettings
    app: Application
    dlq: DeadLetterQueue
    _registry: RegistryClient | None = None
    _codecs: dict[tuple[str, bool], AvroCodec] = field(default_factory=dict)
    _outputs: dict[str, Topic] = field(default_factory=dict)
    _side: SideOutputs | None = None
    streams: list[str] = field(default_factory=list)
    """Quix stream ids of the dataframes produced. A stateful step's is its store's name (the changelog
    topic ``changelog__<group>--<stream id>--default``): Quix derives it from the step's input topics, so
    renaming or adding a direct input orphans the state (tests/integration/pipelines/test_store_names.py)."""
    commit_stall_s: float | None = None  # exactly once: the watchdog's limit (pipelines/watchdog.py)

    # ------------------------------------------------------------------------------ what is made once
    @property
    def registry(self) -> RegistryClient:
        """The processor's one schema-registry client."""
        if self._registry is None:
            self._registry = RegistryClient(**self.settings.registry_client_config())
        return self._registry

    def codec(self, name: str, *, guard_decoded: bool = False) -> AvroCodec:
        """The Avro codec of catalog topic ``name`` (one per topic and kind). ``guard_decoded``: it refuses
        decoded records with times outside years 1970..9999 (a sink's: it cannot store them)."""
        codec = self._codecs.get((name, guard_decoded))
        if codec is None:
            codec = self._codecs[(name, guard_decoded)] = AvroCodec.for_topic(
                self.registry, name, self.settings.topic_prefix, guard_decoded=guard_decoded
            )
        return codec

    def encoders(self, names: Iterable[str]) -> dict[str, Callable[[Any], bytes]]:
        """Real topic name -> its codec's ``encode``, for catalog topics ``names`` (what a sink's
        ``DeadLetterWriter`` re-encodes refused records with)."""
        return {self.settings.topic(name): self.codec(name).encode for name in names}  # type: ignore[misc]

    def partitions(self, name: str) -> int:
        """Partitions of catalog topic ``name`` when this processor creates it: the processor's
        ``partitions`` setting, else the catalog's."""
        return partitions_of(self.settings, name)

    # ------------------------------------------------------------------------------ topics and inputs
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
        """A topic by its catalog name (the environment prefix is added here). What is produced to it
        carries ``traceparent`` and is counted (:class:`TracingSerializer`)."""
        real = self.settings.topic(name)
        if isinstance(value_deserializer, Deserializer) and not isinstance(
            value_deserializer, InboxDeserializer
        ):
            value_deserializer = CapturingDeserializer(value_deserializer)
        if isinstance(value_serializer, str):
            value_serializer = SERIALIZERS[value_serializer]()
        value_serializer = TracingSerializer(value_serializer, self.name, real)
        if partitions is None and name in _CATALOG_NAMES:
            partitions = self.partitions(name)
        config = topic_config(self.settings, name, partitions) if partitions else None

        def declare() -> Topic:
            return self.app.topic(
                real,
                value_deserializer=value_deserializer,
                value_serializer=value_serializer,
                key_deserializer=key_deserializer,
                key_serializer=key_serializer,
                config=config,
            )

        for attempt in range(1, _TOPIC_METADATA_ATTEMPTS):
            try:
                return declare()
            except TopicNotFoundError:
                # Quix reads a topic it has just created back at once; on a cluster the broker that answers
                # may not have its metadata yet. Asked again, it finds the topic (or creates it).
                logger.info("topic %s not visible yet after creating it; asking again", real)
                time.sleep(0.2 * attempt)
        return declare()

    def dataframe(self, topic: Topic) -> StreamingDataFrame:
        """The dataframe of an input topic, starting with the per-record trace and metrics step."""
        sdf = self.app.dataframe(topic)
        sdf.update(_record_hook(self.name, topic.name), metadata=True)
        return sdf

    def input(self, name: str) -> StreamingDataFrame:
        """Catalog topic ``name`` as a topology input: values are the records' bytes (the step decodes
        them, see :meth:`decoder`), keys strings."""
        return self.dataframe(self.topic(name))

    def avro_input(self, name: str) -> StreamingDataFrame:
        """Catalog topic ``name`` with values decoded by its Avro codec, guarded (a sink's input: a record
        of a foreign producer with a time no target can hold is dead-lettered with its bytes)."""
        codec = self.codec(name, guard_decoded=True)
        return self.dataframe(self.topic(name, value_deserializer=AvroDeserializer(codec)))

    def inbox(self, partitions: int | None = None) -> StreamingDataFrame:
        """This processor's inbox (``<name>.inbox``) as an input of :class:`~topologies.kernel.Envelope`
        (the same topic :meth:`produce` writes inbox outputs to). ``partitions``: those of the inputs it is
        co-partitioned with, when the processor creates it (default: the catalog's)."""
        return self.dataframe(self._output_topic(catalog.inbox(self.name), partitions))

    def decoder(self, name: str) -> Callable[[bytes], Any]:
        """Bytes of catalog topic ``name`` -> its record (raises RecordError for bytes that are not one)."""
        spec = catalog.topic(name)
        if spec.is_avro:
            return self.codec(name).decode
        if spec.value == catalog.JSON:
            return RmfJsonCodec(name).decode
        raise ValueError(f"{name} holds {spec.value}: nothing to decode")

    def sources(self, topics: Mapping[str, str]) -> tuple[dict[str, StreamingDataFrame], dict[str, Decode]]:
        """The inputs ``kind -> catalog topic`` of a topology: their dataframes (bytes) and decoders."""
        return (
            {kind: self.input(name) for kind, name in topics.items()},
            {kind: self.decoder(name) for kind, name in topics.items()},
        )

    # ------------------------------------------------------------------------------ outputs
    def produce(
        self,
        outputs: StreamingDataFrame | Iterable[StreamingDataFrame],
        names: Iterable[str],
        key: Callable[[Any], Any] | None = None,
        side: Iterable[str] = (),
    ) -> None:
        """Produce dataframes of topology ``Output`` values, each to its catalog topic ``out.topic`` (one
        of ``names``) with key ``out.key`` (or ``key(out)``), in one produce step that picks the topic per
        output (cheaper than a filtered branch per topic, which Quix runs and copies each record into).

        Outputs to ``side`` topics (bytes: input records copied as they came, for a sink that writes
        idempotently) are produced at least once beside the transaction, with the headers they came
        with, by :class:`~pipelines.sideoutput.SideOutputs`; the checkpoint commits only after they are
        acknowledged."""
        side_topics = set(side)
        topics = {name: self._output_topic(name) for name in [*names, *side_topics]}  # creates them all
        diverter = None
        if side_topics:
            diverter = self._side = SideOutputs(
                self.name,
                {name: self.settings.topic(name) for name in side_topics},
                self.settings.kafka_producer_config(),
            )
        for sdf in [outputs] if isinstance(outputs, StreamingDataFrame) else outputs:
            self.streams.append(sdf.stream_id)
            if diverter is not None:
                sdf = sdf.filter(diverter.divert, metadata=True)
            sdf = sdf.to_topic(lambda out, _key, _ts, _headers: topics[out.topic], key=key or _output_key)
            if diverter is not None:
                sdf.sink(diverter)  # its flush runs at each checkpoint, before the commit (once per sink)

    def _output_topic(self, name: str, partitions: int | None = None) -> Topic:
        """The one Topic of output ``name`` (an inbox is read and written through the same one)."""
        topic = self._outputs.get(name)
        if topic is not None:
            return topic
        spec = catalog.topic(name)
        encode: Callable[[Any], bytes] | None = None
        if spec.is_avro:
            encode = self.codec(name).encode  # type: ignore[assignment]
        elif spec.value == catalog.JSON and name.startswith("rmf."):
            encode = RmfJsonCodec(name).encode  # type: ignore[assignment]
        elif spec.value == catalog.JSON:
            encode = orjson.dumps
        deserializer = InboxDeserializer() if name == catalog.inbox(self.name) else "bytes"
        topic = self._outputs[name] = self.topic(
            name,
            value_deserializer=deserializer,
            value_serializer=OutputSerializer(encode),
            partitions=partitions,
        )
        return topic

    # ------------------------------------------------------------------------------ running
    def run(self, idle_timeout_s: float = 0.0) -> None:
        """Process until stopped (SIGTERM, Ctrl-C, an error); with ``idle_timeout_s``, also once nothing new
        has been read for that long (a replay that reached the end of its inbox)."""
        watchdog = CommitWatchdog(self.name, self.commit_stall_s) if self.commit_stall_s else None
        if watchdog is not None:
            watchdog.start()
        try:
            if idle_timeout_s > 0:
                self.app.run(timeout=idle_timeout_s, collect=False)
            else:
                self.app.run()
        finally:
            if watchdog is not None:
                watchdog.stop()
            self.close()

    def close(self) -> None:
        self.dlq.close()
        if self._side is not None:
            self._side.close()
        if self._registry is not None:
            self._registry.close()
            self._registry = None


_CATALOG_NAMES = frozenset(t.name for t in catalog.CATALOG)


def group_of(topic_prefix: str, processor: str) -> str:
    """The consumer group of ``processor`` under ``topic_prefix`` (its changelog topics are named
    ``changelog__<group>--...``)."""
    return f"{topic_prefix}fleet-{processor}"


def partitions_of(settings: CommonSettings, name: str) -> int:
    """Partitions of catalog topic ``name`` when a processor with ``settings`` creates it: its
    ``partitions`` setting, else the catalog's."""
    override = getattr(settings, "partitions", None)
    return int(override) if override else catalog.topic(name).partitions


def topic_config(settings: CommonSettings, name: str, partitions: int) -> TopicConfig:
    """How a processor creates ``name`` if it is missing: as `fleet topics apply` would (the catalog's
    cleanup policy and retention, the environment's replication settings, else the brokers' defaults: -1),
    never with one replica on a cluster."""
    extra = catalog.topic(name).config() if name in _CATALOG_NAMES else {}
    if settings.topic_min_insync_replicas is not None:
        extra["min.insync.replicas"] = str(settings.topic_min_insync_replicas)
    replication = settings.topic_replication_factor or -1
    return TopicConfig(num_partitions=partitions, replication_factor=replication, extra_config=extra)


def create_topic(settings: CommonSettings, name: str, overrides: Mapping[str, str] | None = None) -> None:
    """Create catalog topic ``name`` now, as a processor with ``settings`` creates it when it starts (with
    ``overrides`` of its configuration), unless it exists."""
    config = topic_config(settings, name, partitions_of(settings, name))
    new = NewTopic(
        settings.topic(name), num_partitions=config.num_partitions,
        replication_factor=config.replication_factor, config={**config.extra_config, **(overrides or {})},
    )  # fmt: skip
    admin = AdminClient(settings.kafka_client_config())  # kept until the futures resolve
    for future in admin.create_topics([new]).values():
        try:
            future.result(30)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def _output_key(out: Any) -> str:
    return out.key  # type: ignore[no-any-return]


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
    """Build the Application for processor ``name`` with fleetstream's defaults and error rules.

    ``consumer_poll_timeout`` is short by default: Quix waits that long for each poll, and with several
    inputs aligned by time a long poll stalls the whole app (5 ms doubled telemetry throughput).
    """
    kafka_cfg = settings.kafka_client_config()
    dlq = DeadLetterQueue(kafka_cfg, name, dlq_topic_name(name, settings.topic_prefix))
    guard = DeadLetterGuard(settings.dead_letters_max_ratio, settings.dead_letters_window)
    consumer_config = dict(consumer_extra_config or {})
    # a crashed (or watchdog-ended) instance's partitions move to another instance after this long
    consumer_config.setdefault("session.timeout.ms", round(settings.kafka_session_timeout_s * 1000))
    if "stats_cb" not in consumer_config:  # fleet_consumer_lag from the consumer's statistics
        consumer_config = {**lag_stats_config(name), **consumer_config}

    def dead_lettered(log: logging.Logger) -> bool:
        """After a dead letter: True (suppress, move on) unless the guard tripped (then stop)."""
        guard.dead_letter()
        if not guard.tripped:
            return True
        log.error(
            "stopping: %.0f of the last %d records went to %s (more than dead_letters_max_ratio %.2f); "
            "something systematic is wrong (a schema, a producer, a bug): fix it, restart, and replay the "
            "dead letters with `fleet dlq replay %s`",
            guard.recent, guard.window, dlq.topic, guard.max_ratio, name,
        )  # fmt: skip
        return False

    def on_consumer_error(exc: Exception, message: Any, log: logging.Logger) -> bool:
        # Undecodable bytes arrive here with the raw message; broker errors arrive without one. Quix's own
        # deserializers raise a SerializationError, which is a KafkaException but a bad record all the same.
        # Anything else a deserializer raises (the registry is down) is not the record's fault: stop.
        bad_record = isinstance(exc, RecordError | SerializationError)
        if message is None or not bad_record:
            log.error("consumer error: %s", exc)
            return False
        RECORDS_IN.labels(name, message.topic()).value += 1  # never reaches the input dataframe
        guard.record()
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
            return dead_lettered(log)

    def on_processing_error(exc: Exception, row: Any, log: logging.Logger) -> bool:
        if row is None or isinstance(exc, KafkaException) or not isinstance(exc, RecordError):
            # Quix calls this outside the record's context: make its trace current again for the line.
            with activate(Trace(row.headers, None, row.topic) if row is not None else Trace()):
                log.error(
                    "unexpected error (a bug or an infrastructure failure): stopping the processor; it "
                    "resumes from its last checkpoint when restarted",
                    exc_info=exc,
                    extra={"topic": getattr(row, "topic", None), "partition": getattr(row, "partition", None),
                           "offset": getattr(row, "offset", None)},
                )  # fmt: skip
            return False
        with activate(Trace(row.headers, row.value if type(row.value) is dict else None, row.topic)):
            dlq.send(
                key=_key_bytes(row.key),
                value=_raw_value(row),
                headers=row.headers,
                error=exc,
                topic=row.topic,
                partition=row.partition,
                offset=row.offset,
            )
            return dead_lettered(log)

    def on_message_processed(_topic: str, _partition: int, _offset: int) -> None:
        guard.record()

    app = Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka_cfg, ignore_extras=True),
        consumer_group=consumer_group or group_of(settings.topic_prefix, name),
        auto_offset_reset=auto_offset_reset,  # type: ignore[arg-type]
        commit_interval=commit_interval,
        state_dir=settings.state_dir / name,
        processing_guarantee="exactly-once" if exactly_once else "at-least-once",
        on_consumer_error=on_consumer_error,
        on_processing_error=on_processing_error,
        on_message_processed=on_message_processed,
        consumer_extra_config=consumer_config,
        producer_extra_config=producer_extra_config,
        consumer_poll_timeout=consumer_poll_timeout,
        loglevel=None,
        auto_create_topics=True,
    )
    STATE_BYTES.track(name, settings.state_dir / name)
    stall = settings.kafka_commit_stall_s if exactly_once else None
    return ProcessorApp(name=name, settings=settings, app=app, dlq=dlq, commit_stall_s=stall)
