"""``FlushAllSink``: a Quix batching sink that writes every partition's batch in one go at each flush.

Quix calls ``flush`` once per checkpoint and commits the offsets only if it returns; a sink of ours that
writes to an idempotent target (InfluxDB points, Redis views guarded by seq) gains nothing from one
write per partition, so it writes the batches of all its partitions together (one request, one
pipeline). A subclass implements :meth:`FlushAllSink.write_records` and raises
``SinkBackpressureError`` when its target is unreachable: the batches are dropped, Quix seeks back to
the checkpoint's first offsets and the same records come again after the pause.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from quixstreams.sinks import BatchingSink, SinkBackpressureError, SinkBatch

from schemas.tracing import trace_ids

__all__ = ["FlushAllSink"]


class FlushAllSink(BatchingSink):
    """Writes all partitions' batches with one :meth:`write_records` call per flush, then drops them."""

    def __init__(
        self,
        on_flush: Callable[[int, float], None] | None = None,
        on_backpressure: Callable[[BaseException], None] | None = None,
    ) -> None:
        """:param on_flush: for the subclass to call with (items written, seconds) after a write (metrics).
        :param on_backpressure: called with the cause when a flush fails and will be retried (metrics)."""
        super().__init__()
        self._on_flush = on_flush
        self._on_backpressure = on_backpressure

    def write_records(self, records: Iterable[Any]) -> int:
        """Write these record values now; returns how many items were written."""
        raise NotImplementedError

    def write(self, batch: SinkBatch) -> None:
        self.write_records(item.value for item in batch)

    def flush(self) -> None:
        logger = logging.getLogger(type(self).__module__)
        try:
            if self._batches:
                self.write_records(item.value for batch in self._batches.values() for item in batch)
                if logger.isEnabledFor(logging.DEBUG):
                    items = [item for batch in self._batches.values() for item in batch]
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
            self._batches.clear()
