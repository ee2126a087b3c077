"""Robots: register (produce RobotRegistration), read one, list (Redis first, Postgres fallback).

Reads use whichever store answers: with Redis down a robot is its Postgres row (``source: postgres``), with
Postgres down its Redis status (``source: redis``); only when neither has it does the call answer 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from gateway.deps import Admin, Hot, Pg, Producer, Viewer
from gateway.errors import ERROR_RESPONSES, ApiError, Unavailable, cursor_error
from gateway.models import Accepted, Page, RobotCreate, RobotPublic
from gateway.pagination import CursorError
from gateway.params import Cursor, Limit, OptionalId, PathId
from gateway.routers._fallback import either
from schemas import catalog
from schemas.models import RobotRegistration

__all__ = ["router"]

router = APIRouter(prefix="/v1/robots", tags=["robots"], responses=ERROR_RESPONSES)


def _merge(status_doc: dict[str, Any] | None, row: dict[str, Any] | None) -> RobotPublic | None:
    if status_doc is None and row is None:
        return None
    merged = {**(row or {}), **(status_doc or {})}
    merged["source"] = "redis" if status_doc is not None else "postgres"
    return RobotPublic.model_validate(merged)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={
        202: {
            "links": {
                "GetRobot": {
                    "operationId": "get_robot_v1_robots__robot_id__get",
                    "parameters": {"robot_id": "$response.body#/id"},
                    "description": "The robot, once the Postgres sink has projected it.",
                }
            }
        }
    },
    summary="Register or update a robot",
    description="Writes a RobotRegistration to robot.registry (admin).",
)
async def register_robot(
    body: RobotCreate, request: Request, principal: Admin, producer: Producer
) -> Accepted:
    request.state.audit_resource_id = body.robot_id
    request.state.audit_site_id = body.site_id
    record = RobotRegistration(tenant_id=principal.tenant_id, **body.model_dump())
    await producer.send(catalog.ROBOT_REGISTRY, body.robot_id, record)
    return Accepted(id=body.robot_id)


@router.get(
    "/{robot_id}",
    response_model=RobotPublic,
    summary="Get a robot",
    description="The registration (Postgres) merged with the latest status (Redis). With one of the two "
    "down, what the other holds (`source` says which); 503 only if neither answers.",
)
async def get_robot(robot_id: PathId, principal: Viewer, hot: Hot, pg: Pg) -> RobotPublic:
    status_doc = await either(hot.robot(principal.tenant_id, robot_id))
    row = await either(pg.get("robots", principal.tenant_id, robot_id))
    if isinstance(status_doc, Unavailable) and isinstance(row, Unavailable):
        raise row
    if isinstance(row, Unavailable) and status_doc is None:
        raise row  # Redis does not have it: only Postgres could say whether it exists
    robot = _merge(
        None if isinstance(status_doc, Unavailable) else status_doc,
        None if isinstance(row, Unavailable) else row,
    )
    if robot is None:
        raise ApiError(404, f"robot {robot_id} not found")
    return robot


@router.get(
    "",
    response_model=Page[RobotPublic],
    summary="List robots",
    description="With site_id and no cursor: the live view of the site from Redis when it has one. "
    "Otherwise (and whenever Redis is down) pages from Postgres, most recently updated first.",
)
async def list_robots(
    principal: Viewer,
    hot: Hot,
    pg: Pg,
    site_id: OptionalId = None,
    fleet_id: OptionalId = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> Page[RobotPublic]:
    if site_id and not cursor:
        live = await either(hot.site_robots(principal.tenant_id, site_id, limit=limit))
        live = [] if isinstance(live, Unavailable) else live
        live = [r for r in live if fleet_id is None or r.get("fleet_id") == fleet_id]
        if live:
            return Page[RobotPublic](
                items=[RobotPublic.model_validate({**r, "source": "redis"}) for r in live]
            )
    try:
        page = await pg.list(
            "robots",
            principal.tenant_id,
            filters={"site_id": site_id, "fleet_id": fleet_id},
            cursor=cursor,
            limit=limit,
        )
    except CursorError as exc:
        raise cursor_error(exc) from None
    return Page[RobotPublic](
        items=[RobotPublic.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )
