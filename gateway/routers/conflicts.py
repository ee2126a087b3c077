"""Traffic conflicts (Postgres), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import Pg, Viewer
from gateway.errors import ERROR_RESPONSES
from gateway.models import ConflictPublic, Page
from gateway.params import Cursor, Limit, OptionalId, Since, Until
from gateway.routers._listing import list_page, values
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
    return await list_page(
        pg,
        "conflicts",
        principal.tenant_id,
        ConflictPublic,
        filters={
            "site_id": site_id,
            "resolution": values(resolution),
            "kind": values(kind),
        },
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
