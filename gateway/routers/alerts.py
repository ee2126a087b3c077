"""Alerts (Postgres), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import Pg, Viewer
from gateway.errors import ERROR_RESPONSES, cursor_error
from gateway.models import AlertPublic, Page
from gateway.pagination import CursorError
from gateway.params import Cursor, Limit, OptionalId, Since, Until
from gateway.routers._time import as_time
from schemas.models import AlertKind, Severity

__all__ = ["router"]

router = APIRouter(prefix="/v1/alerts", tags=["alerts"], responses=ERROR_RESPONSES)


@router.get("", response_model=Page[AlertPublic], summary="List alerts")
async def list_alerts(
    principal: Viewer,
    pg: Pg,
    site_id: OptionalId = None,
    subject_id: OptionalId = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    kind: Annotated[list[AlertKind] | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[AlertPublic]:
    try:
        page = await pg.list(
            "alerts",
            principal.tenant_id,
            filters={
                "site_id": site_id,
                "subject_id": subject_id,
                "severity": [v.value for v in severity] if severity else None,
                "kind": [k.value for k in kind] if kind else None,
            },
            since=as_time(since),
            until=as_time(until),
            cursor=cursor,
            limit=limit,
        )
    except CursorError as exc:
        raise cursor_error(exc) from None
    return Page[AlertPublic](
        items=[AlertPublic.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )
