"""Telemetry history of a robot from InfluxDB, downsampled and paged."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import Influx, Viewer
from gateway.errors import ERROR_RESPONSES, ApiError, cursor_error, problem
from gateway.models import TelemetryPage, TelemetryPoint
from gateway.pagination import CursorError, decode_cursor, encode_cursor
from gateway.params import PathId, Since, Until
from gateway.repo.series import EVERY_PATTERN
from schemas.ids import now_ms

__all__ = ["router"]

router = APIRouter(prefix="/v1/robots", tags=["telemetry"], responses=ERROR_RESPONSES)

_HOUR_MS = 3_600_000
_MAX_RANGE_MS = 366 * 24 * _HOUR_MS


@router.get(
    "/{robot_id}/telemetry",
    response_model=TelemetryPage,
    summary="Telemetry history of a robot",
    description="Points in [from, to) (epoch ms; default the last hour), in time order. `every` is the "
    "bucket width (`30s`, `1m`, `1h`, ...; `raw` for the samples themselves). Ranges older than the raw "
    "retention are read from the 1-minute aggregates. Page on with `cursor`.",
)
async def telemetry(
    robot_id: PathId,
    principal: Viewer,
    influx: Influx,
    since: Since = None,
    until: Until = None,
    every: Annotated[str, Query(pattern=EVERY_PATTERN, description="Bucket width or `raw`.")] = "1m",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    cursor: Annotated[str | None, Query(max_length=128)] = None,
) -> TelemetryPage:
    now = now_ms()
    end = until if until is not None else now
    start = since if since is not None else end - _HOUR_MS
    if start >= end:
        raise ApiError(
            422, "`from` must be before `to`", detail=[problem(["query", "from"], "must be before `to`")]
        )
    if end - start > _MAX_RANGE_MS:
        raise ApiError(
            422, "range too long", detail=[problem(["query", "from"], "range is longer than 366 days")]
        )
    if cursor:
        try:
            (start,) = decode_cursor(cursor, 1)
        except CursorError as exc:
            raise cursor_error(exc) from None
        if not isinstance(start, int):
            raise cursor_error(CursorError("not a cursor issued by this API"))
    page = await influx.history(
        principal.tenant_id, robot_id, start_ms=start, end_ms=end, every=every, limit=limit, now_ms=now
    )
    return TelemetryPage(
        robot_id=robot_id,
        every=every,
        source=page.source,  # type: ignore[arg-type]
        points=[TelemetryPoint.model_validate(p) for p in page.points],
        next_cursor=encode_cursor(page.next_cursor) if page.next_cursor is not None else None,
    )
