"""The shared tail of the read-only list endpoints: a filtered, cursor-paged Postgres query as a Page."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

from gateway.errors import cursor_error
from gateway.models import Page
from gateway.pagination import CursorError
from gateway.routers._time import as_time

__all__ = ["list_page", "values"]

M = TypeVar("M", bound=BaseModel)


def values(items: list[Any] | None) -> list[str] | None:
    """Enum query values as their strings (``None`` when the filter is absent)."""
    return [i.value for i in items] if items else None


async def list_page(
    pg: Any,
    table: str,
    tenant_id: str,
    model: type[M],
    *,
    filters: dict[str, Any],
    since: Any,
    until: Any,
    cursor: str | None,
    limit: int,
) -> Page[M]:
    try:
        page = await pg.list(
            table,
            tenant_id,
            filters=filters,
            since=as_time(since),
            until=as_time(until),
            cursor=cursor,
            limit=limit,
        )
    except CursorError as exc:
        raise cursor_error(exc) from None
    return Page[model](items=[model.model_validate(r) for r in page.items], next_cursor=page.next_cursor)  # type: ignore[valid-type]
