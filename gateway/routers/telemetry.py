"""Telemetry history of a robot from InfluxDB, downsampled and paged."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Query

from gateway.deps import Influx, Viewer
from gateway.errors import ERROR_RESPONSES
from gateway.models import TelemetryPage, TelemetryPoint
from gateway.params import MAX_MS, PathId, Since, Until
from gateway.repo.series import EVERY_PATTERN, every_ms
from schemas.ids import now_ms

__all__ = ["MAX_WINDOW_MS", "router"]

router = APIRouter(prefix="/v1/robots", tags=["telemetry"], responses=ERROR_RESPONSES)

_HOUR_MS = 3_600_000
#: The most of a range one page covers (one InfluxDB query's span).
MAX_WINDOW_MS = 366 * 24 * _HOUR_MS


def _window_end(start: int, width: int | None) -> int:
    """Where the page that starts at ``start`` ends: 366 days on, cut back to a bucket boundary (buckets are
    aligned on the epoch) so that no bucket is split between two pages; a bucket longer than that is one."""
    end = start + MAX_WINDOW_MS
    if width is None:
        return end
    unit = math.lcm(width, 60_000)  # the 1-minute aggregates' buckets are at least a minute wide
    if unit > MAX_WINDOW_MS:
        return MAX_MS + 1
    aligned = end // unit * unit
    return aligned if aligned > start else end


@router.get(
    "/{robot_id}/telemetry",
    response_model=TelemetryPage,
    summary="Telemetry history of a robot",
    description="Points in [from, to) (epoch ms; default the last hour), in time order. `every` is the "
    "bucket width (`30s`, `1m`, `1h`, ...; `raw` for the samples themselves). Ranges older than the raw "
    "retention are read from the 1-minute aggregates. One page covers at most 366 days of the range and "
    "at most `limit` points; `next_cursor` (set while the range goes on) continues it: pass it with the "
    "same parameters. An empty range (`from` at or after `to`) has no points.",
)
async def telemetry(
    robot_id: PathId,
    principal: Viewer,
    influx: Influx,
    since: Since = None,
    until: Until = None,
    every: Annotated[str, Query(pattern=EVERY_PATTERN, description="Bucket width or `raw`.")] = "1m",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 500,
    cursor: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]{1,13}$",
            description="`next_cursor` of the previous page: where the next one starts (epoch ms).",
        ),
    ] = None,
) -> TelemetryPage:
    now = now_ms()
    end = until if until is not None else now
    start = since if since is not None else max(0, end - _HOUR_MS)
    if cursor:
        start = min(int(cursor), MAX_MS)
    if start >= end:
        return TelemetryPage(robot_id=robot_id, every=every, source="raw", points=[])
    window_end = min(end, _window_end(start, every_ms(every)))
    page = await influx.history(
        principal.tenant_id, robot_id, start_ms=start, end_ms=window_end, every=every, limit=limit, now_ms=now
    )
    resume = page.next_cursor if page.next_cursor is not None else window_end if window_end < end else None
    return TelemetryPage(
        robot_id=robot_id,
        every=every,
        source=page.source,  # type: ignore[arg-type]
        points=[TelemetryPoint.model_validate(p) for p in page.points],
        next_cursor=str(resume) if resume is not None else None,
    )
