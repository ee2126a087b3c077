"""A processor's inbox: the internal topic through which inputs reach its stateful step, tagged with
their kind, keyed by the state's owner and partitioned by our own producer.

An input travels through the inbox when it is not keyed by the state's owner (a decision keyed by task id
for a site-keyed step, a site map for robots), when a step sends itself a message (a task's dependency
protocol), or when a record sits on another partition than the one its key belongs to (a producer with
another partitioner than Kafka's murmur2, see :class:`HomePartition`). The inbox is produced by the
processor itself with the murmur2 partitioner, so every record lands on its owner's partition, and its
name does not change when an input is added: the state store, whose changelog is named after the
topics of the step, stays where it is.

Wire format of an inbox value (:func:`encode_envelope`): ``<kind> NUL <tag> <payload>`` where ``tag`` is
``b`` (payload: the bytes of the source record, unchanged), ``j`` (payload: a JSON document the step
wrote) or ``n`` (no payload: a tombstone of a compacted source).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas.errors import RecordError

__all__ = ["Envelope", "HomePartition", "decode_envelope", "encode_envelope", "murmur2", "murmur2_partition"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """An inbox record: what kind of input it is and its payload (source bytes, a dict, or None)."""

    kind: str
    payload: Any

    def __bytes__(self) -> bytes:
        return encode_envelope(self)


def encode_envelope(envelope: Envelope) -> bytes:
    payload = envelope.payload
    head = envelope.kind.encode()
    if payload is None:
        return head + b"\x00n"
    if isinstance(payload, bytes | bytearray | memoryview):
        return head + b"\x00b" + bytes(payload)
    return head + b"\x00j" + orjson.dumps(payload)


def decode_envelope(data: bytes) -> Envelope:
    """The envelope of inbox bytes; :class:`RecordError` when they are not one."""
    sep = data.find(b"\x00")
    if sep <= 0 or len(data) < sep + 2:
        raise RecordError("inbox record without a kind")
    kind = data[:sep].decode("ascii", "replace")
    tag = data[sep + 1 : sep + 2]
    if tag == b"b":
        return Envelope(kind, data[sep + 2 :])
    if tag == b"n":
        return Envelope(kind, None)
    if tag == b"j":
        try:
            return Envelope(kind, orjson.loads(data[sep + 2 :]))
        except orjson.JSONDecodeError as exc:
            raise RecordError(f"inbox record of kind {kind!r}: payload is not JSON: {exc}") from exc
    raise RecordError(f"inbox record of kind {kind!r}: unknown payload tag {tag!r}")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (``org.apache.kafka.common.utils.Utils.murmur2``), as a signed 32-bit int."""
    length = len(data)
    m = 0x5BD1E995
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length % 4
    if rest:
        tail = length - rest
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java clients, Quix Streams, aiokafka, and our
    librdkafka producers with ``murmur2_random``) gives a non-empty key among ``partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class HomePartition:
    """Which partition each key belongs to among ``partitions`` (murmur2), remembered per key."""

    __slots__ = ("_homes", "partitions")

    def __init__(self, partitions: int) -> None:
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.partitions = partitions
        self._homes: dict[str, int] = {}

    def __call__(self, key: str) -> int:
        home = self._homes.get(key)
        if home is None:
            if len(self._homes) > 1_000_000:  # a bound for keys that come and go
                self._homes.clear()
            home = self._homes[key] = murmur2_partition(key.encode(), self.partitions)
        return home
