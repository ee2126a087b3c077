"""``FlushAllSink``: a Quix batching sink that writes every partition's batch in one go at each flush.

Quix calls ``flush`` once per checkpoint and commits the offsets only if it returns; a sink of ours that
writes to an idempotent target (Postgres rows guarded by event id or seq, InfluxDB points, Redis views
guarded by seq) gains nothing from one write per partition, so it collects the batches Quix hands to
``write(batch)`` during the flush and writes them together (one transaction, one request, one pipeline).
A subclass implements :meth:`FlushAllSink.write_all`:

- it raises ``SinkBackpressureError`` when its target is unreachable: the batches are dropped, Quix seeks
  back to the checkpoint's first offsets and the same records come again after the pause;
- it hands a record its target refuses as data to :meth:`FlushAllSink.refuse` (``sinks.deadletters``),
  which dead-letters it with the reason; the rest is written and the partitions move on.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from quixstreams.sinks import BatchingSink, SinkBackpressureError, SinkBatch

from schemas.tracing import trace_ids
from sinks.deadletters import DeadLetter, RecordRefused, SinkRecord, refuse_always

__all__ = ["FlushAllSink", "Origins"]


class Origins:
    """Where the i-th value of a :meth:`FlushAllSink.write_all` call was read (built only when asked)."""

    def __init__(self, batches: Sequence[SinkBatch] = (), values: Sequence[Any] = ()) -> None:
        self._batches = list(batches)
        self._starts: list[int] = []
        start = 0
        for batch in self._batches:
            self._starts.append(start)
            start += batch.size
        self._values = values

    def __call__(self, index: int) -> SinkRecord:
        if not self._batches:  # plain values (write_records)
            return SinkRecord(self._values[index])
        at = bisect_right(self._starts, index) - 1
        batch = self._batches[at]
        item = list(batch)[index - self._starts[at]]
        return SinkRecord.of(batch, item)


class FlushAllSink(BatchingSink):
    """Writes all partitions' batches with one :meth:`write_all` call per flush, then drops them."""

    def __init__(
        self,
        on_flush: Callable[[int, float], None] | None = None,
        on_backpressure: Callable[[BaseException], None] | None = None,
        dead_letter: DeadLetter = refuse_always,
    ) -> None:
        """:param on_flush: for the subclass to call with (items written, seconds) after a write (metrics).
        :param on_backpressure: called with the cause when a flush fails and will be retried (metrics).
        :param dead_letter: where a record the target refuses goes (the processor's dead-letter topic);
            without one the sink stops on such a record rather than drop it."""
        super().__init__()
        self._on_flush = on_flush
        self._on_backpressure = on_backpressure
        self._dead_letter = dead_letter
        self._collected: list[SinkBatch] = []
        self.refused = 0

    def write_all(self, values: Sequence[Any], origin: Origins) -> int:
        """Write these record values now; returns how many items were written. ``origin(i)`` is the
        :class:`SinkRecord` of ``values[i]``, for :meth:`refuse`."""
        raise NotImplementedError

    def write_records(self, records: Iterable[Any]) -> int:
        """Write these record values now, outside a checkpoint (tools, benchmarks, tests)."""
        values = list(records)
        return self.write_all(values, Origins(values=values))

    def refuse(self, record: SinkRecord, error: RecordRefused) -> None:
        """Dead-letter ``record``, which the target refused for ``error``."""
        self.refused += 1
        logging.getLogger(type(self).__module__).warning(
            "%s refused a record: %s",
            type(self).__name__,
            error.reason,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        self._dead_letter(record, error)

    def write(self, batch: SinkBatch) -> None:
        """Called by :meth:`flush` for each partition's batch: collected, written together."""
        self._collected.append(batch)

    def flush(self) -> None:
        logger = logging.getLogger(type(self).__module__)
        self._collected = []
        try:
            super().flush()  # hands each partition's batch to write(), then drops them
            batches = self._collected
            if batches:
                values = [item.value for batch in batches for item in batch]
                self.write_all(values, Origins(batches))
                if logger.isEnabledFor(logging.DEBUG):
                    items = [item for batch in batches for item in batch]
                    logger.debug(
                        "flushed %d records",
                        len(items),
                        extra={"records": len(items), "trace_ids": trace_ids(i.headers for i in items)},
                    )
        except SinkBackpressureError as exc:
            if self._on_backpressure is not None:
                self._on_backpressure(exc.__cause__ or exc)
            raise
        finally:
            self._collected = []
