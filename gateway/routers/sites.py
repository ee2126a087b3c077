"""Sites and their maps: PUT a map (validated, then produced to site.maps), GET it, list sites."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from gateway.deps import Admin, Pg, Producer, Viewer
from gateway.errors import ERROR_RESPONSES, ApiError, cursor_error, problem
from gateway.mapcheck import check_site_map
from gateway.models import MapAccepted, Page, SiteMapIn, SiteMapPublic, SitePublic
from gateway.pagination import CursorError
from gateway.params import Cursor, Limit, PathId
from schemas import catalog
from schemas.models import SiteMap

__all__ = ["router"]

router = APIRouter(prefix="/v1/sites", tags=["sites"], responses=ERROR_RESPONSES)


@router.put(
    "/{site_id}/map",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MapAccepted,
    responses={
        202: {
            "links": {
                "GetMap": {
                    "operationId": "get_map_v1_sites__site_id__map_get",
                    "parameters": {"site_id": "$request.path.site_id"},
                    "description": "The map, once the Postgres sink has projected it.",
                }
            }
        }
    },
    summary="Publish a new version of a site's map",
    description="The map is checked first: unique ids, every lane joins known nodes, every station and "
    "charger reachable from every other, zones well-formed polygons. A bad map is a 422 listing every "
    "problem with its field path; a good one is written to site.maps (admin).",
)
async def put_map(
    site_id: PathId, body: SiteMapIn, request: Request, principal: Admin, producer: Producer
) -> MapAccepted:
    problems = await asyncio.to_thread(check_site_map, body)  # CPU work off the event loop
    if problems:
        raise ApiError(
            422,
            f"the map has {len(problems)} problem(s)",
            error="invalid_map",
            detail=[problem(loc, msg, "map") for loc, msg in problems],
        )
    request.state.audit_resource_id = site_id
    record = SiteMap(tenant_id=principal.tenant_id, site_id=site_id, **body.model_dump())
    await producer.send(catalog.SITE_MAPS, site_id, record)
    return MapAccepted(site_id=site_id, version=body.version)


@router.get(
    "/{site_id}/map", response_model=SiteMapPublic, summary="Get a site's map (latest or one version)"
)
async def get_map(
    site_id: PathId,
    principal: Viewer,
    pg: Pg,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> SiteMapPublic:
    row = await pg.latest_map(principal.tenant_id, site_id, version)
    if row is None:
        raise ApiError(404, f"no map for site {site_id}" + (f" version {version}" if version else ""))
    stored = row.get("map")
    doc: dict[str, Any] = stored if isinstance(stored, dict) else row
    return SiteMapPublic.model_validate(
        {**doc, "site_id": site_id, "version": row.get("version", doc.get("version"))}
    )


@router.get("", response_model=Page[SitePublic], summary="List sites")
async def list_sites(
    principal: Viewer, pg: Pg, limit: Limit = 100, cursor: Cursor = None
) -> Page[SitePublic]:
    try:
        page = await pg.list("sites", principal.tenant_id, cursor=cursor, limit=limit)
    except CursorError as exc:
        raise cursor_error(exc) from None
    return Page[SitePublic](
        items=[SitePublic.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )
