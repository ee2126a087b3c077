"""Traffic conflicts (Postgres), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import Pg, Viewer
from gateway.errors import ERROR_RESPONSES, cursor_error
from gateway.models import ConflictPublic, Page
from gateway.pagination import CursorError
from gateway.params import Cursor, Limit, OptionalId, Since, Until
from gateway.routers._time import as_time
from schemas.models import ConflictKind, Resolution

__all__ = ["router"]

router = APIRouter(prefix="/v1/conflicts", tags=["conflicts"], responses=ERROR_RESPONSES)


@router.get("", response_model=Page[ConflictPublic], summary="List conflicts")
async def list_conflicts(
    principal: Viewer,
    pg: Pg,
    site_id: OptionalId = None,
    resolution: Annotated[list[Resolution] | None, Query()] = None,
    kind: Annotated[list[ConflictKind] | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ConflictPublic]:
    try:
        page = await pg.list(
            "conflicts",
            principal.tenant_id,
            filters={
                "site_id": site_id,
                "resolution": [r.value for r in resolution] if resolution else None,
                "kind": [k.value for k in kind] if kind else None,
            },
            since=as_time(since),
            until=as_time(until),
            cursor=cursor,
            limit=limit,
        )
    except CursorError as exc:
        raise cursor_error(exc) from None
    return Page[ConflictPublic](
        items=[ConflictPublic.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )
