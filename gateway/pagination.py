"""Opaque keyset cursors: the sort key of the last item of a page, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

__all__ = ["CursorError", "decode_cursor", "encode_cursor"]


class CursorError(ValueError):
    """A cursor that this gateway did not issue (or that was cut)."""


def encode_cursor(*key: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    """The ``size`` values of a cursor; raises :class:`CursorError` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise CursorError("not a cursor issued by this API") from exc
    if not isinstance(values, list) or len(values) != size:
        raise CursorError("not a cursor issued by this API")
    if not all(isinstance(v, str | int | float) for v in values):
        raise CursorError("not a cursor issued by this API")
    return values
