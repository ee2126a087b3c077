"""Reusable path and query parameter annotations."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from gateway.models import ID_PATTERN
from gateway.pagination import CURSOR_MAX_LENGTH, CURSOR_PATTERN

__all__ = ["MAX_MS", "Cursor", "Limit", "OptionalId", "PathId", "Since", "Until"]

PathId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
OptionalId = Annotated[str | None, Query(pattern=ID_PATTERN, max_length=128)]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=CURSOR_MAX_LENGTH,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the previous page (the position after its last item).",
    ),
]
# The latest instant every store can represent: InfluxDB keeps int64 nanoseconds (2262-04-11T23:47:16.854Z);
# a later bound is a 422 here, not a 500 from the store.
MAX_MS = 9_223_372_036_854
Since = Annotated[
    int | None, Query(alias="from", ge=0, le=MAX_MS, description="Inclusive lower bound, epoch ms UTC.")
]
Until = Annotated[
    int | None, Query(alias="to", ge=0, le=MAX_MS, description="Exclusive upper bound, epoch ms UTC.")
]
