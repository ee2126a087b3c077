"""Alerts (Postgres), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import Pg, Viewer
from gateway.errors import ERROR_RESPONSES
from gateway.models import AlertPublic, Page
from gateway.params import Cursor, Limit, OptionalId, Since, Until
from gateway.routers._listing import list_page, values
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
    return await list_page(
        pg,
        "alerts",
        principal.tenant_id,
        AlertPublic,
        filters={
            "site_id": site_id,
            "subject_id": subject_id,
            "severity": values(severity),
            "kind": values(kind),
        },
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
