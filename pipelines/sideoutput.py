"""Outputs produced at least once beside a topology's transaction, for a sink that writes idempotently.

A topology's outputs go through its Kafka transaction (exactly once): they feed other topologies. An
output that only a sink reads, and that the sink writes idempotently, does not need that: the InfluxDB
sink stores ``robot.telemetry.accepted`` samples as points keyed by robot and ``occurred_at``, so a sample
written twice is one point. ``../shared/DESIGN.md`` §8: exactly once where output feeds other topologies,
sinks at least once with idempotent writes.

Produced through the transaction, such an output costs what Quix Streams' produce step costs per record
(about 12 µs of CPU in process against a few µs for librdkafka's own ``produce``; one accepted sample per
input record in the telemetry processor, where it was the largest single cost the kernel change added).
:class:`SideOutputs` produces them with a plain idempotent producer of its own instead, and is a Quix
Streams sink so that its :meth:`~SideOutputs.flush` runs at every checkpoint *before* the transaction
commits: the input offsets are committed only after every side record up to them is acknowledged. A
record that cannot be delivered raises there and stops the processor (restarted from its last
checkpoint, it produces the uncommitted ones again). So each side record is written at least once: a
processor that stops between its flush and its commit writes the records since the last commit again
(the same bytes, the same order).

Wiring (:meth:`pipelines.app.ProcessorApp.produce`): a filter before the produce step hands each output
to a side topic to :meth:`~SideOutputs.divert` (which produces it and drops it from the stream), and the
sink is attached after the produce step (the outputs that reach it are already produced: it ignores
them). No branch, so no copy of each record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from pipelines.metrics import RECORDS_OUT
from pipelines.writebehind import CheckpointHook

__all__ = ["SideOutputs"]

_POLL_EVERY = 512  # produces between serving delivery reports (a poll costs ~1 µs)


class SideOutputs(CheckpointHook):
    """Produce the outputs to ``topics`` (catalog name -> real topic name) at least once, beside the
    transaction, each with the headers of the record it came from.

    :param processor: the processor's name (metrics label).
    :param producer_config: librdkafka producer configuration (idempotence, acks=all, murmur2: the
        processor's :meth:`~pipelines.settings.CommonSettings.kafka_producer_config`).
    :param flush_timeout_s: how long a checkpoint waits for the side records' acknowledgements before it
        fails (and the processor stops).
    """

    def __init__(
        self,
        processor: str,
        topics: Mapping[str, str],
        producer_config: Mapping[str, Any],
        flush_timeout_s: float = 30.0,
    ) -> None:
        super().__init__()
        self._topics = dict(topics)
        self._counters = {name: RECORDS_OUT.labels(processor, real) for name, real in self._topics.items()}
        # Delivery reports of failures only: success needs no callback (flush waits for every record).
        self._kafka = Producer({**producer_config, "linger.ms": 5, "delivery.report.only.error": True})
        self._flush_timeout_s = flush_timeout_s
        self._failed: KafkaError | None = None
        self._since_poll = 0

    def divert(self, out: Any, _key: Any, _timestamp: int, headers: Any) -> bool:
        """A filter of topology :class:`~topologies.kernel.Output` values (``metadata=True``): an output to a
        side topic is produced here and dropped from the stream (False); any other passes (True)."""
        real = self._topics.get(out.topic)
        if real is None:
            return True
        self._counters[out.topic].value += 1
        try:
            self._kafka.produce(real, out.value, out.key, headers=headers, on_delivery=self._delivered)
        except BufferError:  # the local queue is full: serve delivery reports until there is room
            self._kafka.flush(self._flush_timeout_s)
            self._kafka.produce(real, out.value, out.key, headers=headers, on_delivery=self._delivered)
        self._since_poll += 1
        if self._since_poll >= _POLL_EVERY:
            self._since_poll = 0
            self._kafka.poll(0)
        return False

    def _delivered(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None and self._failed is None:
            self._failed = err

    # ------------------------------------------------------------------------------ the sink's part
    def add(self, *_args: Any, **_kwargs: Any) -> None:
        """The outputs that reach the sink were produced by the transaction's produce step: nothing to do."""

    def flush(self) -> None:
        """Wait until every side record so far is acknowledged (the checkpoint commits only after this);
        raise if one failed or some are still unacknowledged after ``flush_timeout_s``."""
        left = self._kafka.flush(self._flush_timeout_s)
        if self._failed is not None:
            err, self._failed = self._failed, None
            raise KafkaException(err)
        if left:
            raise KafkaException(
                KafkaError(
                    KafkaError._TIMED_OUT,
                    f"{left} side records to {sorted(self._topics.values())} unacknowledged after "
                    f"{self._flush_timeout_s:.0f} s: not committing past them",
                )
            )

    def close(self) -> None:
        """Deliver what is queued (records past the last checkpoint are produced again after a restart)."""
        self._kafka.flush(self._flush_timeout_s)
