"""Probes and metrics: /healthz (the process is alive), /readyz (its dependencies answer), /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.deps import get_services

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check(probe: Callable[[], Awaitable[object]], timeout: float) -> dict[str, object]:
    start = time.perf_counter()
    try:
        await asyncio.wait_for(probe(), timeout)
    except Exception as exc:  # every failure is a report, not an error of /readyz
        reason = "timeout" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}"[:200]
        return {"ok": False, "error": reason}
    return {"ok": True, "ms": round((time.perf_counter() - start) * 1000, 1)}


@router.get(
    "/readyz",
    summary="Readiness: Kafka, Postgres, Redis answer and the stream hub is live",
    responses={503: {"description": "At least one dependency is down; the body says which."}},
)
async def readyz(request: Request) -> JSONResponse:
    services = get_services(request)
    timeout = services.settings.readiness_timeout_seconds

    async def redis_ping() -> None:
        await services.redis.ping()

    async def hub_live() -> None:
        if not services.hub.running:
            raise RuntimeError("stream hub stopped")
        if not services.hub.live.is_set():
            raise RuntimeError("stream hub still catching up")

    names = ("kafka", "postgres", "redis", "stream")
    results = await asyncio.gather(
        _check(services.producer.ping, timeout),
        _check(services.pg.ping, timeout),
        _check(redis_ping, timeout),
        _check(hub_live, timeout),
    )
    checks = dict(zip(names, results, strict=True))
    ready = all(c["ok"] for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, status_code=200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    metrics = request.app.state.metrics
    hub = get_services(request).hub
    metrics.sse_clients.set(hub.client_count)
    metrics.sse_dropped.set(hub.dropped_clients)
    metrics.sse_events.set(hub.events_in)
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
