"""Epoch-ms query bounds as the timestamps the Postgres projections store."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["as_time"]


def as_time(epoch_ms: int | None) -> datetime | None:
    return None if epoch_ms is None else datetime.fromtimestamp(epoch_ms / 1000, UTC)
