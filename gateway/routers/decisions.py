"""Scheduler decisions (Postgres), newest first."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import Pg, Viewer
from gateway.errors import ERROR_RESPONSES
from gateway.models import DecisionPublic, Page
from gateway.params import Cursor, Limit, OptionalId, Since, Until
from gateway.routers._listing import list_page, values
from schemas.models import DecisionKind

__all__ = ["router"]

router = APIRouter(prefix="/v1/decisions", tags=["decisions"], responses=ERROR_RESPONSES)


@router.get("", response_model=Page[DecisionPublic], summary="List decisions")
async def list_decisions(
    principal: Viewer,
    pg: Pg,
    site_id: OptionalId = None,
    robot_id: OptionalId = None,
    task_id: OptionalId = None,
    kind: Annotated[list[DecisionKind] | None, Query()] = None,
    since: Since = None,
    until: Until = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DecisionPublic]:
    return await list_page(
        pg,
        "decisions",
        principal.tenant_id,
        DecisionPublic,
        filters={
            "site_id": site_id,
            "robot_id": robot_id,
            "task_id": task_id,
            "kind": values(kind),
        },
        since=since,
        until=until,
        cursor=cursor,
        limit=limit,
    )
