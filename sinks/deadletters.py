"""What every sink does with a record its target can never take: the rule, written once.

A sink's write can fail in three ways, and each has one answer:

- **data**: the target refuses what a record holds (a time outside its range, a value too long for an
  index, a type it will not take, a record that cannot be turned into a row or a point at all).
  Retrying never helps. The target's writer raises :class:`RecordRefused`; :func:`write_isolating`
  then finds the refused records of the batch by halving it, hands each one to the sink's
  :data:`DeadLetter` (``dlq.<processor>`` with the reason) and writes the others. The partition
  moves on.
- **infrastructure**: the target is down, times out, is shutting down, out of disk or memory. The
  writer raises ``SinkBackpressureError``: Quix drops the checkpoint's batches, pauses, seeks back and
  reads them again; no offset is committed past a record that was not written.
- anything else is a **bug**: it propagates and the processor stops (and restarts from its committed
  offsets) rather than drain a stream into the dead-letter topic.

Each target maps its own errors onto these (``sinks.postgres.errors``, ``sinks.influx``,
``sinks.redis``, ``sinks.rmf``). A record that is impossible before any write (a missing id, a time no
target can hold) is refused earlier, when the sink receives it: ``add`` raises ``RejectedRecord`` and
the application dead-letters it with its original bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
from quixstreams.models import HeadersTuples
from quixstreams.sinks import SinkBatch
from quixstreams.sinks.base.item import SinkItem

from schemas.errors import RecordError

__all__ = [
    "DeadLetter",
    "DeadLetterWriter",
    "RecordRefused",
    "SendDeadLetter",
    "SinkRecord",
    "refuse_always",
    "write_isolating",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class RecordRefused(RecordError):
    """The target refused a record (or a batch holding it) for what it holds: it can never be written."""


@dataclass(frozen=True, slots=True)
class SinkRecord:
    """One record a sink holds, with where it was read (what its dead letter says)."""

    value: Any
    key: Any = None
    headers: HeadersTuples | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    @classmethod
    def of(cls, batch: SinkBatch, item: SinkItem, value: Any = None) -> SinkRecord:
        """The record of ``item`` in ``batch`` (``value`` replaces the item's value when given)."""
        return cls(
            item.value if value is None else value,
            item.key,
            item.headers,
            batch.topic,
            batch.partition,
            item.offset,
        )


#: ``dead_letter(record, error)``: write ``record`` to the processor's dead-letter topic with the reason,
#: durably, before returning (it raises if it cannot: then nothing is committed past the record).
DeadLetter = Callable[[SinkRecord, RecordError], None]


def refuse_always(record: SinkRecord, error: RecordError) -> None:
    """The dead letter of a sink that has no dead-letter topic: it stops instead of dropping the record."""
    raise error


def write_isolating(
    records: Sequence[T],
    write: Callable[[Sequence[T]], object],
    refuse: Callable[[T, RecordRefused], None],
) -> int:
    """Write ``records`` with ``write``; if the target refuses them as data (:class:`RecordRefused`),
    halve the batch until each refused record is alone, hand those to ``refuse`` and write the rest.

    Returns how many records were refused. One write when none is; about ``2 k log2(n)`` smaller writes
    for ``k`` refused records among ``n``. ``write`` must be idempotent (a half is written again after
    the batch holding it failed) and must raise ``SinkBackpressureError`` (never :class:`RecordRefused`)
    for infrastructure errors, which propagate from any depth.
    """
    if not records:
        return 0
    try:
        write(records)
        return 0
    except RecordRefused as exc:
        if len(records) == 1:
            refuse(records[0], exc)
            return 1
        logger.info("a batch of %d records was refused (%s); isolating the refused ones", len(records), exc)
    middle = len(records) // 2
    return write_isolating(records[:middle], write, refuse) + write_isolating(records[middle:], write, refuse)


class SendDeadLetter(Protocol):
    """The keyword interface of ``pipelines.dlq.DeadLetterQueue.send``."""

    def __call__(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        headers: Any,
        error: BaseException | str,
        topic: str | None,
        partition: int | None,
        offset: int | None,
    ) -> None: ...


class DeadLetterWriter:
    """A sink's :data:`DeadLetter` over the processor's dead-letter queue.

    The sink holds decoded records, not their bytes: a record refused at write time is re-encoded with
    its topic's codec (``encoders``: real topic name -> ``encode``), the same content in the topic's
    current schema and Confluent framing, so ``fleet dlq replay`` can send it back. A record its codec
    refuses (it reached the sink without the codec's decode guard) is kept as JSON instead, and the
    reason says so. Original headers are kept and the ``fleet-dlq-*`` headers (reason, topic, partition,
    offset) added by ``send``.
    """

    def __init__(
        self, send: SendDeadLetter, encoders: Mapping[str, Callable[[Any], bytes | None]] | None = None
    ):
        self._send = send
        self.encoders: dict[str, Callable[[Any], bytes | None]] = dict(encoders or {})

    def __call__(self, record: SinkRecord, error: RecordError) -> None:
        encode = self.encoders.get(record.topic or "")
        if encode is None:
            raise LookupError(f"no encoder for dead letters of topic {record.topic!r}")
        key = record.key.encode() if isinstance(record.key, str) else record.key
        try:
            value = encode(record.value)
        except RecordError as exc:  # never stuck on a record: keep it as JSON, and say so
            value = orjson.dumps(record.value, default=str)
            error = RecordRefused(f"{error.reason} (kept as JSON: it does not fit its schema: {exc.reason})")
        self._send(
            key=key,
            value=value,
            headers=record.headers,
            error=error,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
