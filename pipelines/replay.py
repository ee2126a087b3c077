"""``fleet replay``: re-process a processor's recorded input topics from empty state, in event-time order.

Live, dispatch and traffic feed each input record into their inbox when they happen to read it, so the
order of a site's inputs, and so its decisions, depend on how the processor's reads of its topics and
partitions interleave (docs/records.md, "Inboxes"). A replay takes that choice away. It reads every
source topic of the processor to its end (``read_committed``) and writes the inbox itself in one order
that depends only on the records:

- the next record is the one with the lowest (Kafka timestamp, source rank, key) among the first
  unwritten records of each (source, key);
- a key's records keep their log order (which no partition count changes: a key has one partition), even
  where their timestamps go back.

Each record goes to the inbox as the live feed would send it (the same re-keying, envelope and
timestamp); one that cannot be (it does not decode) goes to ``dlq.<processor>`` with its source position.
Then the processor runs over its inbox alone (``build(settings, feeds=False)``) until it has read it to
the end. So the same recorded topics, replayed under two prefixes with any partition counts, give the
same output records, event ids included (``tests/integration/pipelines/test_determinism.py``).

The replay writes under the settings' topic prefix and starts from empty state: the inbox must be empty
(copy the recorded topics under a new ``FLEET_TOPIC_PREFIX`` first). Records are held in memory while
they are ordered (a recorded day of a site, not a year of a fleet).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipelines.app import ProcessorApp, create_topic, group_of
from pipelines.dlq import DeadLetterGuard
from pipelines.processors import PROCESSORS, processor
from pipelines.settings import CommonSettings, ConfigError
from schemas import catalog
from schemas.errors import RecordError
from schemas.tracing import TRACEPARENT, Trace
from topologies.kernel import Envelope, Forward, encode_envelope, rekey

__all__ = ["Recorded", "ReplayError", "ReplayReport", "event_time_order", "read_to_end", "replay"]

logger = logging.getLogger(__name__)


class ReplayError(Exception):
    """A replay that cannot finish (the reason says what to do)."""


@dataclass(frozen=True, slots=True)
class Recorded:
    """One record of a source topic, as read."""

    kind: str
    rank: int  # the source's place in the processor's SOURCES (ties of timestamp)
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None


@dataclass
class ReplayReport:
    processor: str
    read: dict[str, int]  # source topic -> records read
    dead_lettered: int
    written: int  # inbox records
    seconds: float

    def line(self) -> str:
        sources = ", ".join(f"{topic} {n}" for topic, n in self.read.items())
        return (
            f"{self.processor} replayed: {sum(self.read.values())} source records ({sources}), "
            f"{self.written} inbox records in event-time order, {self.dead_lettered} dead-lettered; "
            f"the inbox processed to its end in {self.seconds:.1f} s"
        )


def event_time_order(records: Iterable[Recorded]) -> list[Recorded]:
    """``records`` (each partition's in offset order) merged by (timestamp, rank, key), each key's records
    in their log order: the same list whatever partition count the key's partitioner spread them over.

    A key whose records sit on several partitions (a random partitioner), and the records without a key,
    have no log order that survives another partition count: they go by (timestamp, value bytes)."""
    groups: dict[tuple[int, bytes | None], list[Recorded]] = {}
    for rec in records:
        groups.setdefault((rec.rank, rec.key), []).append(rec)
    queues: dict[tuple[int, bytes], deque[Recorded]] = {}
    for (rank, key), recs in groups.items():
        if key is None or len({rec.partition for rec in recs}) > 1:
            recs = sorted(recs, key=lambda rec: (rec.timestamp, rec.value or b""))
        # a keyless group sorts before every keyed one of its input at the same timestamp
        queues[(rank, b"" if key is None else b"\x01" + key)] = deque(recs)
    heap = [(q[0].timestamp, queue_id) for queue_id, q in queues.items()]
    heapq.heapify(heap)
    out: list[Recorded] = []
    while heap:
        _ts, queue_id = heapq.heappop(heap)
        queue = queues[queue_id]
        out.append(queue.popleft())
        if queue:
            heapq.heappush(heap, (queue[0].timestamp, queue_id))
    return out


def read_to_end(
    kafka_config: Mapping[str, Any],
    sources: Mapping[str, str],
    *,
    progress: Callable[[str], None] = logger.info,
    stall_s: float = 120.0,
) -> list[Recorded]:
    """Every committed record of the topics ``sources`` (kind -> real topic name) to their ends; a missing
    topic is read as empty (and said so), none at all is an error, and so is reading nothing new for
    ``stall_s``."""
    consumer = Consumer({
        **kafka_config, "group.id": f"fleet-replay-reader-{time.time_ns()}", "enable.auto.commit": False,
        "enable.partition.eof": True, "isolation.level": "read_committed", "auto.offset.reset": "earliest",
    })  # fmt: skip
    try:
        metadata = consumer.list_topics(timeout=30)
        ranks = {topic: rank for rank, topic in enumerate(sources.values())}
        kinds = {topic: kind for kind, topic in sources.items()}
        assignment: list[TopicPartition] = []
        for topic in sources.values():
            found = metadata.topics.get(topic)
            if found is None or _missing(found.error):
                progress(f"source topic {topic} does not exist: read as empty")
                continue
            if found.error is not None:
                raise KafkaException(found.error)
            assignment += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(found.partitions)]
        out: list[Recorded] = []
        if not assignment:
            raise ReplayError(
                f"none of {', '.join(sources.values())} exists: is FLEET_TOPIC_PREFIX the prefix the day was "
                "copied under (with its trailing dot)?"
            )
        consumer.assign(assignment)
        pending = {(tp.topic, tp.partition) for tp in assignment}
        deadline = time.monotonic() + stall_s
        shown = time.monotonic()
        while pending:
            if time.monotonic() > deadline:
                raise ReplayError(
                    f"nothing read for {stall_s:.0f} s; partitions not at their end: {sorted(pending)}"
                )
            batch = consumer.consume(num_messages=1000, timeout=0.5)
            if batch:
                deadline = time.monotonic() + stall_s
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard((msg.topic(), msg.partition()))
                        continue
                    raise KafkaException(err)
                topic = msg.topic()
                out.append(Recorded(
                    kinds[topic], ranks[topic], topic, msg.partition(), msg.offset(), msg.timestamp()[1],
                    msg.key(), msg.value(), msg.headers(),
                ))  # fmt: skip
            if time.monotonic() - shown > 5:
                shown = time.monotonic()
                progress(f"read {len(out)} source records; {len(pending)} partitions to go")
        return out
    finally:
        consumer.close()


def _feed(
    papp: ProcessorApp,
    ordered: list[Recorded],
    forwards: Mapping[str, Forward],
    inbox_topic: str,
    progress: Callable[[str], None],
) -> tuple[int, int]:
    """Write ``ordered`` to the inbox as the live feeds would; returns (written, dead-lettered)."""
    producer = Producer({**papp.settings.kafka_producer_config(), "linger.ms": 20})
    failed: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failed.append(err)

    settings = papp.settings
    guard = DeadLetterGuard(settings.dead_letters_max_ratio, settings.dead_letters_window)
    written = dead = 0
    for n, rec in enumerate(ordered, 1):
        if n % 100_000 == 0:
            progress(f"fed {n} of {len(ordered)} source records to {inbox_topic}")
        guard.record()
        try:
            key = rec.key.decode() if rec.key is not None else None
            pairs = list(forwards[rec.kind](rec.value, key, rec.timestamp))
        except (RecordError, UnicodeDecodeError) as exc:  # live: the key's deserializer or the feed
            papp.dlq.send(
                key=rec.key, value=rec.value, headers=rec.headers, error=exc,
                topic=rec.topic, partition=rec.partition, offset=rec.offset,
            )  # fmt: skip
            dead += 1
            guard.dead_letter()
            if guard.tripped:
                raise ReplayError(
                    f"{guard.recent:.0f} of the last {guard.window} source records could not be fed (more than "
                    f"dead_letters_max_ratio {guard.max_ratio:.2f}; the last: {exc}): a schema the registry does "
                    f"not know, or topics of another kind? They are in {papp.dlq.topic}"
                ) from exc
            continue
        headers = _hop_headers(rec)
        for owner, payload in pairs:
            value = encode_envelope(Envelope(rec.kind, payload))
            while True:
                try:
                    producer.produce(
                        inbox_topic, value=value, key=str(owner).encode(), timestamp=rec.timestamp,
                        headers=headers, on_delivery=delivered,
                    )  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.1)
            written += 1
        producer.poll(0)
    left = producer.flush(60)
    if failed or left:
        raise KafkaException(
            failed[0] if failed else KafkaError(KafkaError._TIMED_OUT, f"{left} inbox records unacknowledged")
        )
    return written, dead


def _hop_headers(rec: Recorded) -> list[tuple[str, bytes]]:
    """The headers of what is fed from ``rec``, as a live feed's: the source record's, with a
    ``traceparent`` of this hop's own span (a child of the source's, or a new trace's)."""
    kept = [(name, value) for name, value in rec.headers or () if name != TRACEPARENT]
    return [*kept, (TRACEPARENT, Trace(rec.headers, None, rec.topic).header)]


def _missing(error: KafkaError | None) -> bool:
    return error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART


def _offsets(
    kafka_config: Mapping[str, Any], topic: str, group: str | None = None
) -> dict[int, tuple[int, int]]:
    """Partition -> (first, end) offset of ``topic`` ({} when it does not exist); with ``group``, (that
    group's committed offset, end) instead."""
    consumer = Consumer({**kafka_config, "group.id": group or f"fleet-replay-ends-{time.time_ns()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})  # fmt: skip
    try:
        found = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if found is None or _missing(found.error):
            return {}
        if found.error is not None:
            raise KafkaException(found.error)
        tps = [TopicPartition(topic, p) for p in sorted(found.partitions)]
        marks = {tp.partition: consumer.get_watermark_offsets(tp, timeout=30) for tp in tps}
        if group is not None:
            return {
                tp.partition: (tp.offset, marks[tp.partition][1])
                for tp in consumer.committed(tps, timeout=30)
            }
        return marks
    finally:
        consumer.close()


def _earlier_state(settings: CommonSettings, name: str) -> list[str]:
    """What an earlier run of processor ``name`` under ``settings``' prefix left: its changelog topics that
    hold records, and its local state directory if it is not empty."""
    kafka = settings.kafka_client_config()
    prefix = f"changelog__{group_of(settings.topic_prefix, name)}--"
    admin = AdminClient(kafka)
    changelogs = sorted(t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix))
    left = []
    for topic in changelogs:
        held = sum(end - low for low, end in _offsets(kafka, topic).values())
        if held:
            left.append(f"{topic} holds {held} records")
    local = settings.state_dir / name
    if local.is_dir() and any(local.iterdir()):
        left.append(f"local state in {local}")
    return left


def _check_kept(topic: str, offsets: dict[int, tuple[int, int]], written: int) -> None:
    """The inbox holds all ``written`` records still (none deleted by retention)."""
    first = {p: low for p, (low, _end) in offsets.items() if low}
    held = sum(end - low for low, end in offsets.values())
    if first or held != written:
        raise ReplayError(
            f"{topic} holds {held} of the {written} records written (first offsets {first}): the broker deleted "
            "some, the day is older than its retention.ms; create it with retention.ms=-1 under a new prefix"
        )


def replay(
    name: str,
    settings: CommonSettings,
    *,
    idle_timeout_s: float = 5.0,
    progress: Callable[[str], None] = logger.info,
) -> ReplayReport:
    """Replay processor ``name`` (one whose :class:`~pipelines.processors.Processor` has ``replay``) over
    its recorded source topics under ``settings``' prefix: its inbox written in event-time order, then
    the processor run over it from empty state until it has read it to the end.

    :raises ConfigError: the processor cannot be replayed, or its state is not empty (records in its inbox,
        its changelog topics or its local state directory).
    :raises ReplayError: no source topic exists, too many records cannot be fed, the broker deleted inbox
        records, or the processor stopped before the end of its inbox.
    """
    proc = processor(name)
    if not proc.replay:
        replayable = ", ".join(p.name for p in PROCESSORS.values() if p.replay)
        raise ConfigError(
            f"{proc.name} cannot be replayed (its step reads inputs directly); replayable: {replayable}"
        )
    kafka = settings.kafka_client_config()
    inbox_name = catalog.inbox(proc.name)
    inbox_topic = settings.topic(inbox_name)
    held = sum(end for _low, end in _offsets(kafka, inbox_topic).values())
    if held:
        raise ConfigError(
            f"{inbox_topic} already holds {held} records: a replay starts from empty state; copy the recorded "
            "topics under a new FLEET_TOPIC_PREFIX and replay there"
        )
    left = _earlier_state(settings, proc.name)
    if left:
        raise ConfigError(
            f"{proc.name} has state from an earlier run under this prefix ({'; '.join(left)}): a replay starts "
            "from empty state; replay under a new FLEET_TOPIC_PREFIX (or delete those)"
        )
    started = time.monotonic()
    if idle_timeout_s <= 0:
        raise ConfigError(f"the idle timeout must be positive, not {idle_timeout_s}")
    sources: dict[str, str] = proc.module.SOURCES
    real = {kind: settings.topic(topic) for kind, topic in sources.items()}
    progress(f"reading {', '.join(real.values())} to their end")
    records = read_to_end(kafka, real, progress=progress)
    read = {topic: 0 for topic in real.values()}
    for rec in records:
        read[rec.topic] += 1
    # written to before the processor starts (which creates its other topics); the inbox keeps the day
    # whatever its age
    create_topic(settings, inbox_name, {"retention.ms": "-1"})
    create_topic(settings, catalog.dlq_topic(proc.name))
    papp: ProcessorApp = proc.module.build(settings, feeds=False)
    try:
        forwards = {kind: rekey(papp.decoder(topic), proc.module.FEED_KEY) for kind, topic in sources.items()}
        written, dead = _feed(papp, event_time_order(records), forwards, inbox_topic, progress)
        del records
        progress(
            f"wrote {written} records to {inbox_topic} in event-time order ({dead} dead-lettered); processing"
        )
        _check_kept(inbox_topic, _offsets(kafka, inbox_topic), written)
    except BaseException:
        papp.close()
        raise
    papp.run(idle_timeout_s=idle_timeout_s)
    done = _offsets(kafka, inbox_topic, group=papp.app.config.consumer_group)
    short = {p: (committed, end) for p, (committed, end) in done.items() if end and committed < end}
    if short:
        raise ReplayError(
            f"{proc.name} stopped before the end of {inbox_topic} (partition: (committed, end)): {short}; see its "
            "log above. If it only paused longer than --idle-timeout, replay again with a longer one under a new "
            "prefix"
        )
    return ReplayReport(proc.name, read, dead, written, time.monotonic() - started)
