"""Server-sent events at /v1/stream (see gateway.sse for positions, resume and back-pressure)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from gateway.deps import Hub, Settings, StreamViewer
from gateway.errors import ERROR_RESPONSES, ApiError, problem
from gateway.sse import EVENT_TYPES, PositionError, TooManyClients, sse_frames

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["stream"], responses=ERROR_RESPONSES)

_TYPES = sorted(EVENT_TYPES.values())


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return out or None


@router.get(
    "/stream",
    summary="Live events (server-sent events)",
    description="Events of the caller's tenant: `robot.status`, `task.event`, `decision`, `conflict`, "
    "`alert`, filtered by site, robot and type. Each event's `id` is a resume position: reconnect with "
    "`Last-Event-ID` (EventSource does it by itself) to get exactly what was missed. Heartbeat comments "
    "every 15 s. EventSource cannot set headers, so the token may be passed as `access_token`.",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "An event stream."}},
)
async def stream(
    principal: StreamViewer,
    hub: Hub,
    settings: Settings,
    site_id: Annotated[list[str] | None, Query(description="Sites (repeat or comma-separate).")] = None,
    robot_id: Annotated[list[str] | None, Query(description="Robots (repeat or comma-separate).")] = None,
    types: Annotated[list[str] | None, Query(description=f"Event types: {', '.join(_TYPES)}.")] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=8192)] = None,
    from_id: Annotated[
        str | None, Query(alias="last_event_id", max_length=8192, description="Resume position, as a query.")
    ] = None,
) -> StreamingResponse:
    wanted_types = _split(types)
    unknown = sorted(set(wanted_types or ()) - set(_TYPES))
    if unknown:
        msg = f"unknown: {', '.join(unknown)}; known: {', '.join(_TYPES)}"
        raise ApiError(422, "unknown event types", detail=[problem(["query", "types"], msg)])
    try:
        sub, first = hub.subscribe(
            principal.tenant_id,
            sites=_split(site_id),
            robots=_split(robot_id),
            types=wanted_types,
            last_event_id=last_event_id or from_id,
        )
    except PositionError as exc:
        raise ApiError(422, str(exc), detail=[problem(["header", "Last-Event-ID"], str(exc))]) from None
    except TooManyClients as exc:
        raise ApiError(429, str(exc), headers={"Retry-After": "5"}) from None
    return StreamingResponse(
        sse_frames(hub, sub, first, settings.sse_heartbeat_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
