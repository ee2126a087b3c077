"""``scheduler.decisions`` -> ``vda5050.decisions``: the decisions of the bridge's tenant, keyed by robot.

Dispatch keys a decision by its task, traffic by its task or robot; the bridge's state is per vehicle, so
each decision must first reach the partition of its robot. Re-keying inside the bridge's own Kafka
transaction (a Quix ``group_by``) made a decision readable only when that transaction committed, one
checkpoint later, and left the bridge's other inputs waiting on the open transaction meanwhile
(docs/vda5050.md, "Benchmark"). This forwarder re-keys outside any transaction: it reads committed
decisions, produces each one's bytes and headers unchanged (same value, schema id, timestamp and trace),
keyed by ``robot_id`` with the murmur2 partitioner, so that it lands in the partition of the vehicle's
messages on ``vda5050.inbound``; the topology reads it a few milliseconds later.

At least once: a batch's offsets are stored only after every record of it was acknowledged by Kafka
(auto-commit then commits the stored ones); a restart or a rebalance may forward a decision again, and
the topology applies each decision id once (``topologies.vda5050.control``). A record it cannot decode
goes to ``dlq.vda5050`` with the reason; a decision it cannot write stops the bridge (``error``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from pipelines.dlq import DeadLetterQueue
from pipelines.metrics import RECORDS_IN, RECORDS_OUT
from pipelines.settings import PRODUCER_DEFAULTS
from schemas.errors import RecordError

__all__ = ["DecisionForwarder"]

logger = logging.getLogger(__name__)

Decode = Callable[[bytes], dict[str, Any] | None]


class DecisionForwarder:
    """A thread that forwards one tenant's decisions to the bridge's robot-keyed topic."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        *,
        source: str,
        target: str,
        tenant_id: str,
        decode: Decode,
        group_id: str,
        processor: str,
        dlq: DeadLetterQueue,
        batch: int = 500,
    ) -> None:
        self.source, self.target, self.tenant_id = source, target, tenant_id
        self._decode = decode
        self._dlq = dlq
        self._batch = batch
        self._consumer = Consumer(
            {
                **kafka_config,
                "group.id": group_id,
                "client.id": f"fleet-{processor}-decisions",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.auto.commit": True,
                "enable.auto.offset.store": False,
                "auto.commit.interval.ms": 1_000,
                # a decision is read as soon as it is committed, not after the broker's 500 ms fetch wait
                "fetch.wait.max.ms": 10,
                "fetch.queue.backoff.ms": 10,
            }
        )
        self._producer = Producer(
            {**kafka_config, **PRODUCER_DEFAULTS, "linger.ms": 1, "client.id": f"fleet-{processor}-rekey"}
        )
        self.forwarded = 0
        self.skipped = 0  # decisions of other tenants
        self.error: KafkaError | BaseException | None = None
        self._in = RECORDS_IN.labels(processor, source)
        self._out = RECORDS_OUT.labels(processor, target)
        self._failed: list[KafkaError] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="vda5050-decisions", daemon=True)

    def start(self) -> DecisionForwarder:
        self._consumer.subscribe([self.source])
        self._thread.start()
        return self

    def _delivered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self._failed.append(err)

    def _forward(self, msg: Message) -> None:
        value = msg.value()
        try:
            decision = self._decode(value) if value is not None else None
        except RecordError as exc:  # bytes no schema reads: nothing later can read them either
            self._dlq.send(key=msg.key(), value=value, headers=msg.headers(), error=exc,
                           topic=msg.topic(), partition=msg.partition(), offset=msg.offset())  # fmt: skip
            return
        if decision is None or decision.get("tenant_id") != self.tenant_id or not decision.get("robot_id"):
            self.skipped += 1
            return
        self._producer.produce(
            self.target, value=value, key=str(decision["robot_id"]).encode(), headers=msg.headers(),
            timestamp=msg.timestamp()[1], on_delivery=self._delivered,
        )  # fmt: skip
        self.forwarded += 1
        self._out.value += 1

    def _step(self) -> None:
        # poll waits for the first record only; consume(n, timeout) would wait for n records or the timeout
        first = self._consumer.poll(0.1)
        if first is None:
            self._producer.poll(0)
            return
        msgs = [first, *self._consumer.consume(self._batch - 1, timeout=0)]
        last: dict[tuple[str, int], int] = {}
        for msg in msgs:
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise RuntimeError(f"reading {self.source}: {msg.error()}")
            self._in.value += 1
            self._forward(msg)
            last[(msg.topic(), msg.partition())] = msg.offset()
        # Every record of the batch acknowledged before its offsets are stored: nothing is committed past a
        # decision that was not written.
        if self._producer.flush(30.0):
            raise RuntimeError(f"decisions not acknowledged by Kafka within 30 s (writing {self.target})")
        if self._failed:
            raise RuntimeError(f"a decision could not be written to {self.target}: {self._failed[0]}")
        if last:
            self._consumer.store_offsets(offsets=[TopicPartition(t, p, o + 1) for (t, p), o in last.items()])

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        except BaseException as exc:  # the bridge's watch stops the process; it restarts from the commits
            self.error = exc
            logger.error("the decision forwarder stopped: %s", exc)

    def close(self) -> None:
        """Stop, commit what was forwarded, leave the group."""
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self._producer.flush(10.0)
            self._consumer.close()
        except Exception as exc:  # closing after a broker failure: the next start reads again
            logger.warning("closing the decision forwarder: %s", exc)
