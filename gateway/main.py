"""The gateway's app factory: assembles settings, services, middleware, error handlers and routers."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from redis.asyncio import Redis

from gateway.auth import JwksKeySet, TokenVerifier
from gateway.deps import Services
from gateway.errors import install_error_handlers
from gateway.middleware import EdgeMiddleware, GatewayMetrics
from gateway.producer import EventProducer
from gateway.ratelimit import RateLimiter
from gateway.repo import CompactedView, HotViews, InfluxReader, PgReader
from gateway.rmf_ws import router as rmf_router
from gateway.routers import (
    alerts,
    conflicts,
    dashboard,
    decisions,
    docs,
    health,
    robots,
    schedules,
    sites,
    stream,
    tasks,
    telemetry,
)
from gateway.routers.schedules import schedule_view_key
from gateway.settings import GatewaySettings
from gateway.sse import STREAM_TOPICS, StreamHub
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient

__all__ = ["build_services", "create_app"]

logger = logging.getLogger(__name__)

DESCRIPTION = """\
REST and server-sent events for fleetstream. Every write is a produce to Kafka (answers are
**202 Accepted**); reads come from the projections (Redis, Postgres, InfluxDB).

**Auth**: `Authorization: Bearer <JWT>` with claims `tenant_id` and `roles` (viewer < operator < admin).
Reads need viewer; tasks and schedules operator; robots and site maps admin. 401 means no, invalid or
expired token (see `WWW-Authenticate`); 403 an authenticated caller whose role is insufficient.

**Errors** have one shape, `{error, message, detail: [{loc, msg, type}]}`: 413 a body over its limit, 422 a
malformed request (each problem with its field path), 429 the tenant's rate limit, 503 a service the call
needs is down (`dependency` names it; retry after `Retry-After` seconds). Reads with a second store use
it when one is down (see `source`). Every request this document calls valid is accepted, except a site
map whose parts name nodes it does not have.
"""


def _verifier(settings: GatewaySettings) -> TokenVerifier:
    if settings.auth_mode == "jwks":
        assert settings.jwks_url is not None
        keys = JwksKeySet(
            settings.jwks_url,
            cache_seconds=settings.jwks_cache_seconds,
            min_refresh_seconds=settings.jwks_min_refresh_seconds,
        )
        return TokenVerifier(
            audience=settings.audience, issuer=settings.issuer, keys=keys, leeway=settings.leeway_seconds
        )
    return TokenVerifier(
        audience=settings.audience,
        issuer=settings.issuer,
        secret=settings.jwt_secret.get_secret_value(),
        leeway=settings.leeway_seconds,
    )


def build_services(settings: GatewaySettings) -> Services:
    """Every service of one gateway process (not started)."""
    registry = RegistryClient(**settings.registry_client_config())
    kafka = settings.aiokafka_config()
    prefix = settings.topic_prefix
    redis = Redis.from_url(
        settings.redis_url.get_secret_value(), socket_timeout=2.0, socket_connect_timeout=2.0
    )
    decoders = {
        t: AvroCodec.for_topic(registry, t, prefix, auto_register=settings.schema_auto_register).decode
        for t in (*STREAM_TOPICS, catalog.TASK_SCHEDULES)
    }
    return Services(
        settings=settings,
        producer=EventProducer(
            kafka,
            registry,
            prefix,
            auto_register=settings.schema_auto_register,
            linger_ms=settings.producer_linger_ms,
            request_timeout_ms=settings.producer_request_timeout_ms,
        ),
        pg=PgReader(
            settings.postgres_dsn.get_secret_value(),
            pool_size=settings.postgres_pool_size,
            timeout=settings.postgres_timeout_seconds,
        ),
        hot=HotViews(redis),
        influx=InfluxReader(
            settings.influx_url,
            settings.influx_database,
            raw_measurement=settings.influx_raw_measurement,
            raw_rp=settings.influx_raw_retention_policy,
            rollup_measurement=settings.influx_rollup_measurement,
            rollup_rp=settings.influx_rollup_retention_policy,
            raw_retention_ms=settings.influx_raw_retention_days * 86_400_000,
            username=settings.influx_username,
            password=settings.influx_password.get_secret_value() if settings.influx_password else None,
        ),
        hub=StreamHub(
            kafka,
            prefix,
            {t: decoders[t] for t in STREAM_TOPICS},
            ring_size=settings.sse_ring_size,
            client_queue=settings.sse_client_queue,
            max_clients_per_tenant=settings.sse_max_clients_per_tenant,
            max_replay=settings.sse_max_replay,
        ),
        schedules=CompactedView(
            kafka, settings.topic(catalog.TASK_SCHEDULES), decoders[catalog.TASK_SCHEDULES], schedule_view_key
        ),
        verifier=_verifier(settings),
        limiter=RateLimiter(redis, settings.rate_limit_requests, settings.rate_limit_window_seconds),
        redis=redis,
    )


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Services are built per lifespan, so an app can be started, stopped and started again.
    services: Services = app.state.services_factory(app.state.settings)
    app.state.services = services
    async with contextlib.AsyncExitStack() as stack:
        await services.producer.start()
        stack.push_async_callback(services.producer.stop)
        await services.pg.start()
        stack.push_async_callback(services.pg.stop)
        stack.push_async_callback(services.influx.aclose)
        stack.push_async_callback(services.redis.aclose)  # type: ignore[attr-defined]  # stubs lag redis 5+
        if services.verifier.keys is not None:
            stack.push_async_callback(services.verifier.keys.aclose)
        await services.hub.start()
        stack.push_async_callback(services.hub.stop)
        await services.schedules.start()
        stack.push_async_callback(services.schedules.stop)
        # What start-up built (schemas, models, routes, codecs: ~100k objects) lives as long as the
        # process: move it out of the collector's reach. Full collections then scan only what requests
        # allocate, not all of it: they took up to 170 ms, stalling every request in flight.
        gc.collect()
        gc.freeze()
        logger.info("gateway ready")
        yield
    logger.info("gateway stopped")


def create_app(
    settings: GatewaySettings, services_factory: Callable[[GatewaySettings], Services] = build_services
) -> FastAPI:
    """The gateway ASGI app. Its lifespan builds, starts and stops the services (``services_factory``)."""
    app = FastAPI(
        title="fleetstream gateway",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=_lifespan,
        docs_url=None,  # gateway.routers.docs serves them with local assets
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.services_factory = services_factory
    app.state.metrics = metrics = GatewayMetrics()
    install_error_handlers(app)
    for module in (tasks, robots, telemetry, sites, schedules, decisions, conflicts, alerts, stream, health):
        app.include_router(module.router)
    docs.install_docs(app)
    if settings.rmf_ws_enabled and not settings.rmf_ws_port:
        app.include_router(rmf_router)
    if settings.dashboard_enabled:
        app.include_router(dashboard.router)
        app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    task_limit = settings.task_max_record_bytes
    app.add_middleware(
        EdgeMiddleware,
        metrics=metrics,
        max_body_bytes=settings.max_body_bytes,
        body_limits=(("/v1/tasks", task_limit), ("/v1/schedules", task_limit)),
    )
    return app
