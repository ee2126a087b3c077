"""The timer service: Kafka-native event timers for topologies that have no punctuation.

Owners arm a timer by producing a ``Timer`` record to ``timers`` keyed by ``timer_id`` (re-arm: produce
again; cancel: tombstone). This service consumes ``timers`` from the beginning of each partition it
owns, keeps the pending timers in a heap, and when one is due produces the Timer record to
``timers.due.<owner>`` keyed by ``target_key``. It never writes to ``timers`` itself; firing is at least
once (see docs/records.md, "Timers"): a fired timer whose produce fails goes back in its table and fires
again.

A partition's timers fire only once the partition has been read up to the high watermark seen at
assignment, so a timer that a later record cancels is never fired while the table is being rebuilt.

A fired timer carries the trace of the record that armed it: the ``traceparent`` of the ``timers``
record, with a span of this service's own (a new trace when the timer had none).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from pipelines.metrics import RECORDS_IN, RECORDS_OUT, lag_stats_config
from pipelines.settings import PRODUCER_DEFAULTS
from schemas.tracing import TRACEPARENT, Trace, activate

__all__ = ["TimerService", "TimerTable", "due_topic"]

logger = logging.getLogger(__name__)

Clock = Callable[[], int]


def due_topic(owner: str, prefix: str = "") -> str:
    return f"{prefix}timers.due.{owner}"


@dataclass
class TimerTable:
    """Pending timers of one partition: upsert, cancel, and pop the due ones in due order."""

    _timers: dict[str, dict[str, Any]] = field(default_factory=dict)
    _heap: list[tuple[int, str]] = field(default_factory=list)
    _traces: dict[str, bytes] = field(default_factory=dict)  # timer_id -> traceparent of its record

    def __len__(self) -> int:
        return len(self._timers)

    def __contains__(self, timer_id: object) -> bool:
        return timer_id in self._timers

    def upsert(self, timer: dict[str, Any], traceparent: bytes | None = None) -> None:
        timer_id = timer["timer_id"]
        self._timers[timer_id] = timer
        if traceparent is not None:
            self._traces[timer_id] = traceparent
        else:
            self._traces.pop(timer_id, None)
        heapq.heappush(self._heap, (int(timer["due_at"]), timer_id))

    def cancel(self, timer_id: str) -> None:
        self._timers.pop(timer_id, None)
        self._traces.pop(timer_id, None)

    def next_due(self) -> int | None:
        while self._heap:
            due_at, timer_id = self._heap[0]
            current = self._timers.get(timer_id)
            if current is not None and int(current["due_at"]) == due_at:
                return due_at
            heapq.heappop(self._heap)  # stale entry: re-armed or cancelled since
        return None

    def pop_due(self, now_ms: int) -> list[dict[str, Any]]:
        return [timer for timer, _ in self.pop_due_traced(now_ms)]

    def pop_due_traced(self, now_ms: int) -> list[tuple[dict[str, Any], bytes | None]]:
        """The due timers in due order, each with the ``traceparent`` its record carried (or None)."""
        fired = []
        while (due := self.next_due()) is not None and due <= now_ms:
            _, timer_id = heapq.heappop(self._heap)
            fired.append((self._timers.pop(timer_id), self._traces.pop(timer_id, None)))
        return fired


Decode = Callable[[bytes, str], dict[str, Any]]
Encode = Callable[[dict[str, Any], str], bytes]


class TimerService:
    """Consumes ``timers``, fires due timers to ``timers.due.<owner>``."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        *,
        timers_topic: str,
        due_topic_for: Callable[[str], str],
        decode: Decode,
        encode: Encode,
        group_id: str,
        clock: Clock = lambda: int(time.time() * 1000),
        tick_s: float = 0.1,
    ) -> None:
        self._timers_topic = timers_topic
        self._due_topic_for = due_topic_for
        self._decode = decode
        self._encode = encode
        self._clock = clock
        self._tick_s = tick_s
        self._tables: dict[int, TimerTable] = {}
        self._catch_up: dict[int, int] = {}  # partition -> high watermark to reach before firing
        self._consumer = Consumer(
            {
                **kafka_config,
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "partition.assignment.strategy": "cooperative-sticky",
                "enable.partition.eof": True,  # the end of a partition means its table is rebuilt
                **lag_stats_config("timers"),  # fleet_consumer_lag
            }
        )
        self._producer = Producer({**kafka_config, **PRODUCER_DEFAULTS, "linger.ms": 1})
        self.fired = 0
        self.undelivered = 0  # fired timers whose produce failed (each put back to fire again)
        self.ready = threading.Event()  # set once partitions are assigned and every table is rebuilt

    # -- partition ownership ------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            self._tables[tp.partition] = TimerTable()
            self._catch_up[tp.partition] = high
            tp.offset = OFFSET_BEGINNING
        consumer.incremental_assign(partitions)
        logger.info("timers: assigned partitions %s", [tp.partition for tp in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._tables.pop(tp.partition, None)
            self._catch_up.pop(tp.partition, None)
        consumer.incremental_unassign(partitions)

    # -- main loop ----------------------------------------------------------------------------
    def _apply(self, msg: Any) -> None:
        table = self._tables.get(msg.partition())
        if table is None:
            return
        key = msg.key().decode() if msg.key() else None
        if msg.value() is None:
            if key:
                table.cancel(key)
        else:
            try:
                timer = self._decode(msg.value(), msg.topic())
            except Exception as exc:
                logger.error(
                    "timers: undecodable timer at %s[%d]@%d: %s",
                    msg.topic(),
                    msg.partition(),
                    msg.offset(),
                    exc,
                )
                return
            traceparent = None
            for name, value in msg.headers() or ():
                if name == TRACEPARENT:
                    traceparent = value
            table.upsert(timer, traceparent)
        RECORDS_IN.labels("timers", self._timers_topic).inc()
        pending = self._catch_up.get(msg.partition())
        if pending is not None and msg.offset() + 1 >= pending:
            self._rebuilt(msg.partition())

    def _rebuilt(self, partition: int) -> None:
        if self._catch_up.pop(partition, None) is not None:
            table = self._tables.get(partition)
            logger.info("timers: partition %d rebuilt, %d pending", partition, len(table) if table else 0)
        if self._tables and not self._catch_up:
            self.ready.set()

    def _fire_due(self) -> None:
        now = self._clock()
        debug = logger.isEnabledFor(logging.DEBUG)
        for partition, table in self._tables.items():
            if partition in self._catch_up:
                continue
            for timer, traceparent in table.pop_due_traced(now):
                topic = self._due_topic_for(timer["owner"])
                trace = Trace(traceparent=traceparent, value=timer)
                self._producer.produce(
                    topic,
                    key=timer["target_key"].encode(),
                    value=self._encode(timer, topic),
                    headers=[(TRACEPARENT, trace.header)],
                    on_delivery=self._delivered(partition, timer, traceparent),
                )
                RECORDS_OUT.labels("timers", topic).inc()
                self.fired += 1
                if debug:
                    with activate(trace):
                        logger.debug("fired timer %s to %s", timer["timer_id"], topic)
        self._producer.poll(0)

    def _delivered(
        self, partition: int, timer: dict[str, Any], traceparent: bytes | None
    ) -> Callable[[Any, Any], None]:
        """Delivery report of one fired timer: one that never reached its due topic is put back in its
        partition's table (unless re-armed since, or the partition moved away) and fires again on the
        next pass, so that no timer is lost to a produce error (one cancelled meanwhile may fire: owners
        take a fire as a hint)."""

        def report(err: Any, _msg: Any) -> None:
            if err is None:
                return
            self.undelivered += 1
            table = self._tables.get(partition)
            if table is None or timer["timer_id"] in table:
                logger.warning("timers: timer %s not delivered (%s); not re-fired", timer["timer_id"], err)
                return
            logger.warning("timers: timer %s not delivered (%s); firing it again", timer["timer_id"], err)
            table.upsert(timer, traceparent)

        return report

    def _next_wait(self) -> float:
        nexts = [
            d for p, t in self._tables.items() if p not in self._catch_up and (d := t.next_due()) is not None
        ]
        if not nexts:
            return self._tick_s
        return max(0.0, min(self._tick_s, (min(nexts) - self._clock()) / 1000))

    def run(self, stop: threading.Event) -> None:
        self._consumer.subscribe([self._timers_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        try:
            while not stop.is_set():
                msgs = self._consumer.consume(num_messages=1000, timeout=self._next_wait())
                for msg in msgs:
                    if msg.error():
                        if msg.error().code() == KafkaError._PARTITION_EOF:
                            self._rebuilt(msg.partition())
                            continue
                        raise KafkaException(msg.error())
                    self._apply(msg)
                self._fire_due()
        finally:
            self._producer.flush(30)
            self._consumer.close()
