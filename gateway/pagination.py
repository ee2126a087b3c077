"""Keyset cursors: the sort key of the last item of a page, as plain text.

A list cursor is ``<sort>.<id>``: the sort column of the page's last row (a timestamp as epoch
microseconds, or an integer) and its id, UTF-8 as lowercase hex. Every string of that form
(:data:`CURSOR_PATTERN`, which the OpenAPI schema publishes) is a position in the list, so any such
cursor is answered with the rows after it; anything else is a 422. Cursors are opaque to clients all
the same: pass ``next_cursor`` back as it came.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "CURSOR_MAX_LENGTH",
    "CURSOR_PATTERN",
    "CursorError",
    "decode_cursor",
    "encode_cursor",
    "micros_of",
    "time_of",
]

_ID_BYTES = 256
#: What a list cursor looks like: the sort key's digits, a dot, the id's UTF-8 bytes in lowercase hex.
CURSOR_PATTERN = rf"^[0-9]{{1,18}}\.(?:[0-9a-f]{{2}}){{0,{_ID_BYTES}}}$"
CURSOR_MAX_LENGTH = 18 + 1 + 2 * _ID_BYTES
_CURSOR = re.compile(CURSOR_PATTERN)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


class CursorError(ValueError):
    """A cursor that this gateway did not issue (or that was cut)."""


def micros_of(value: Any) -> int:
    """Epoch microseconds of a timestamp as Postgres' ``to_jsonb`` writes it (ISO 8601 text)."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (when - _EPOCH) // timedelta(microseconds=1)


def time_of(micros: int) -> datetime:
    """The UTC instant of ``micros`` epoch microseconds (past year 9999: the last representable one)."""
    return _EPOCH + timedelta(microseconds=min(micros, _MAX_MICROS))


def encode_cursor(sort: int, item_id: str) -> str:
    """The cursor after the row with sort key ``sort`` (an integer; records carry no instant before 1970,
    so a negative one is taken as 0) and id ``item_id``."""
    return f"{max(0, sort)}.{item_id.encode()[:_ID_BYTES].hex()}"


def decode_cursor(cursor: str) -> tuple[int, str]:
    """``(sort, id)`` of a cursor; raises :class:`CursorError` if it is not of the published form."""
    if _CURSOR.fullmatch(cursor) is None:
        raise CursorError("not a cursor issued by this API")
    sort, _, hexid = cursor.partition(".")
    # Any bytes are some position; Postgres text holds no NUL.
    return int(sort), bytes.fromhex(hexid).decode("utf-8", errors="replace").replace("\x00", "\ufffd")
