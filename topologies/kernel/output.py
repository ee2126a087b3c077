"""``Output``: one record a step emits, the same shape for every topology."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Output"]


@dataclass(frozen=True, slots=True)
class Output:
    """One record to produce.

    :param topic: catalog name of the target topic (``schemas.catalog`` constants; the processor adds
        the environment's prefix).
    :param key: the record's Kafka key.
    :param value: the record: a dict the target topic's codec encodes, ``bytes`` produced as they are
        (an input forwarded unchanged), an :class:`~topologies.kernel.inbox.Envelope` for an inbox, or
        ``None`` for a tombstone (a cancelled timer, a deleted entry of a compacted topic).
    """

    topic: str
    key: str
    value: Any
