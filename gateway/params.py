"""Reusable path and query parameter annotations."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from gateway.models import ID_PATTERN

__all__ = ["Cursor", "Limit", "OptionalId", "PathId", "Since", "Until"]

PathId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
OptionalId = Annotated[str | None, Query(pattern=ID_PATTERN, max_length=128)]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page.")]
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
Since = Annotated[
    int | None, Query(alias="from", ge=0, le=_MAX_MS, description="Inclusive lower bound, epoch ms UTC.")
]
Until = Annotated[
    int | None, Query(alias="to", ge=0, le=_MAX_MS, description="Exclusive upper bound, epoch ms UTC.")
]
