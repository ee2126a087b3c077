"""Reads that have a second source: a store that is down is an outcome to fall back from, not an error."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

from gateway.errors import Unavailable

__all__ = ["either"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


async def either(call: Awaitable[T]) -> T | Unavailable:
    """The result of ``call``, or the :class:`Unavailable` it raised (another store may answer)."""
    try:
        return await call
    except Unavailable as exc:
        logger.warning("%s; reading the other store", exc)
        return exc
