"""Reproducible UUIDv7 ids for simulated records.

A simulation run with the same seed and start time produces byte-identical records, event ids
included, so tests and benchmarks can replay it. The ids are well-formed RFC 9562 version-7 UUIDs
whose timestamp is the record's event time; the random bits come from a seeded generator.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable

__all__ = ["IdFactory", "SeededUuid7"]

IdFactory = Callable[[int], str]
"""Makes an event id for a record that occurred at the given epoch millisecond."""


class SeededUuid7:
    """A deterministic UUIDv7 generator: `ids(occurred_at_ms) -> str`."""

    def __init__(self, seed: int | str) -> None:
        self._rng = random.Random(f"uuid7:{seed}")

    def __call__(self, ms: int) -> str:
        rand_a = self._rng.getrandbits(12)
        rand_b = self._rng.getrandbits(62)
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
        return str(uuid.UUID(int=value))
