"""Deterministic fault injection between the fleet model and the producer.

Given the telemetry records of one tick, `FaultInjector.apply` returns what is actually sent, with
faults applied from a seeded generator, so a run is reproducible and its faults countable:

- drop-outs: a robot goes silent for `dropout_ms` (its records are not sent; seq keeps counting);
- duplicates: a record is sent twice in a row, same seq and event_id (same bytes);
- out-of-order: a record is held back and sent right after the robot's next record;
- malformed: exactly `malformed` payloads that are not valid Avro, spread over the first
  `malformed_window_ms` of the run (any not yet sent when the run stops are sent by `flush`).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["FaultConfig", "FaultInjector", "FaultStats", "MalformedKind", "Outgoing", "malformed_payload"]

_UNKNOWN_SCHEMA_ID = 0x7FFF_FFF0


class MalformedKind(StrEnum):
    """How a malformed payload is broken."""

    JSON = "JSON"  # JSON text where Avro was expected (no magic byte)
    BAD_MAGIC = "BAD_MAGIC"  # a valid frame whose magic byte is not 0
    TRUNCATED = "TRUNCATED"  # a valid header and schema id, the Avro body cut in half
    UNKNOWN_SCHEMA_ID = "UNKNOWN_SCHEMA_ID"  # framing fine, schema id the registry does not know


DEFAULT_MALFORMED_KINDS = tuple(MalformedKind)


@dataclass(frozen=True, slots=True)
class FaultConfig:
    drop_prob: float = 0.0  # per robot and record: chance a drop-out starts
    dropout_ms: int = 10_000
    duplicate_prob: float = 0.0  # per sent record
    reorder_prob: float = 0.0  # per sent record
    malformed: int = 0  # exact number of malformed payloads
    malformed_window_ms: int = 60_000
    malformed_kinds: tuple[MalformedKind, ...] = DEFAULT_MALFORMED_KINDS
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop_prob", "duplicate_prob", "reorder_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {value}")
        if self.malformed < 0:
            raise ValueError("malformed must be >= 0")
        if self.malformed and not self.malformed_kinds:
            raise ValueError("malformed_kinds must not be empty")

    @property
    def any(self) -> bool:
        return bool(self.drop_prob or self.duplicate_prob or self.reorder_prob or self.malformed)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One record to produce: a valid record dict, or (`malformed` set) a payload to break from it."""

    key: str
    record: dict[str, Any]
    fault: str | None = None  # "duplicate", "reordered", "malformed" or None
    malformed: MalformedKind | None = None


@dataclass(slots=True)
class FaultStats:
    dropouts: int = 0  # silences started
    dropped: int = 0  # records not sent because of a silence
    duplicates: int = 0  # extra copies sent
    reordered: int = 0  # records sent after their successor
    malformed: int = 0  # malformed payloads sent
    malformed_by_kind: dict[str, int] = field(default_factory=dict)


class FaultInjector:
    def __init__(self, config: FaultConfig, start_ms: int) -> None:
        self.config = config
        self.stats = FaultStats()
        self._rng = random.Random(f"faults:{config.seed}")
        self._start = start_ms
        self._silent_until: dict[str, int] = {}
        self._held: dict[str, dict[str, Any]] = {}
        window = max(config.malformed_window_ms, 1)
        self._malformed_at = sorted(self._rng.randrange(window) for _ in range(config.malformed))
        self._last: dict[str, Any] | None = None

    @property
    def malformed_pending(self) -> int:
        return len(self._malformed_at)

    def apply(self, records: list[dict[str, Any]], now_ms: int) -> list[Outgoing]:
        """What to send for one tick's records (in order)."""
        cfg = self.config
        out: list[Outgoing] = []
        for rec in records:
            robot = rec["robot_id"]
            if self._silent(robot, now_ms):
                held = self._held.pop(robot, None)
                if held is not None:
                    self._emit(out, held, None)
                continue
            held = self._held.pop(robot, None)
            if held is not None:
                self._emit(out, rec, None)
                self._emit(out, held, "reordered")
                self.stats.reordered += 1
            elif cfg.reorder_prob and self._rng.random() < cfg.reorder_prob:
                self._held[robot] = rec
            else:
                self._emit(out, rec, None)
            self._last = rec
        while self._malformed_at and self._malformed_at[0] <= now_ms - self._start and self._last is not None:
            self._malformed_at.pop(0)
            out.append(self._malformed(self._last))
        return out

    def flush(self) -> list[Outgoing]:
        """Records still held back, then malformed payloads not yet sent: call once when the run stops."""
        out: list[Outgoing] = []
        for robot in sorted(self._held):
            self._emit(out, self._held[robot], None)
        self._held.clear()
        if self._last is not None:
            while self._malformed_at:
                self._malformed_at.pop(0)
                out.append(self._malformed(self._last))
        return out

    def _silent(self, robot: str, now_ms: int) -> bool:
        if self._silent_until.get(robot, -1) > now_ms:
            self.stats.dropped += 1
            return True
        cfg = self.config
        if cfg.drop_prob and self._rng.random() < cfg.drop_prob:
            self._silent_until[robot] = now_ms + cfg.dropout_ms
            self.stats.dropouts += 1
            self.stats.dropped += 1
            return True
        return False

    def _emit(self, out: list[Outgoing], rec: dict[str, Any], fault: str | None) -> None:
        out.append(Outgoing(rec["robot_id"], rec, fault))
        if self.config.duplicate_prob and self._rng.random() < self.config.duplicate_prob:
            out.append(Outgoing(rec["robot_id"], rec, "duplicate"))
            self.stats.duplicates += 1

    def _malformed(self, template: dict[str, Any]) -> Outgoing:
        kinds = self.config.malformed_kinds
        kind = kinds[self.stats.malformed % len(kinds)]
        self.stats.malformed += 1
        self.stats.malformed_by_kind[kind.value] = self.stats.malformed_by_kind.get(kind.value, 0) + 1
        return Outgoing(template["robot_id"], template, "malformed", kind)


def malformed_payload(kind: MalformedKind, valid: bytes, template: dict[str, Any]) -> bytes:
    """Bytes that no Confluent-framed Avro decoder accepts, made from a valid frame of the same record.

    `valid` is magic byte 0, a 4-byte schema id, then the Avro body.
    """
    if kind is MalformedKind.JSON:
        return json.dumps(template, separators=(",", ":"), default=str).encode()
    if kind is MalformedKind.BAD_MAGIC:
        return b"\x01" + valid[1:]
    if kind is MalformedKind.TRUNCATED:
        body = valid[5:]
        return valid[:5] + body[: len(body) // 2]
    if kind is MalformedKind.UNKNOWN_SCHEMA_ID:
        return b"\x00" + _UNKNOWN_SCHEMA_ID.to_bytes(4, "big") + valid[5:]
    raise ValueError(f"unknown malformed kind {kind!r}")  # pragma: no cover
