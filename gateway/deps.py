"""Injectable dependencies: the services (producer, readers, hub), the caller and its role.

Routers ask for what they need with the ``Annotated`` aliases below; tests and the bench can swap a
service by replacing ``app.state.services`` fields or with ``app.dependency_overrides``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis

from gateway.auth import AuthError, Principal, TokenVerifier, role_rank
from gateway.errors import ApiError
from gateway.producer import EventProducer
from gateway.ratelimit import RateLimiter
from gateway.repo import CompactedView, HotViews, InfluxReader, PgReader
from gateway.settings import GatewaySettings
from gateway.sse import StreamHub

__all__ = [
    "Admin",
    "Hot",
    "Hub",
    "Influx",
    "Operator",
    "Pg",
    "Producer",
    "Schedules",
    "Services",
    "Settings",
    "StreamViewer",
    "Viewer",
    "get_services",
    "require_role",
]

_bearer = HTTPBearer(auto_error=False, description="JWT with claims tenant_id and roles.")
_REALM = 'Bearer realm="fleetstream"'


@dataclass
class Services:
    """Everything a request may need, built once by the app's lifespan."""

    settings: GatewaySettings
    producer: EventProducer
    pg: PgReader
    hot: HotViews
    influx: InfluxReader
    hub: StreamHub
    schedules: CompactedView
    verifier: TokenVerifier
    limiter: RateLimiter
    redis: Redis


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


# Every dependency here is ``async def`` and the graph of the write path is shallow: FastAPI runs a
# plain ``def`` dependency in its thread pool, and resolves each dependency node anew on every request.
# Both cost CPU on every call (together about a fifth of a POST /v1/tasks; pipelines/bench/gateway.py).


async def _services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(_services)]


def _unauthorized(reason: str, error: str = "invalid_token") -> ApiError:
    safe = reason.replace('"', "'").replace("\\", "/").encode("ascii", "replace").decode()
    value = f'{_REALM}, error="{error}", error_description="{safe}"'
    return ApiError(401, f"not authenticated: {reason}", headers={"WWW-Authenticate": value})


async def _authenticate(request: Request, token: str | None, role: str) -> Principal:
    """The verified caller (401), counted against its tenant's rate limit (429), with ``role`` (403)."""
    if not token:
        raise ApiError(
            401,
            "not authenticated: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": _REALM},
        )
    services = get_services(request)
    try:
        principal = await services.verifier.verify(token)
    except AuthError as exc:
        raise _unauthorized(exc.reason, exc.error) from None
    request.state.principal = principal
    decision = await services.limiter.hit(principal.tenant_id)
    if not decision.allowed:
        raise ApiError(
            429,
            f"rate limit of {decision.limit} requests per {services.limiter.window} s reached for this tenant",
            headers={"Retry-After": str(decision.retry_after)},
        )
    if role_rank(principal.role) < role_rank(role):
        raise ApiError(
            403,
            f"forbidden: this call needs role {role} or higher; the token has {', '.join(principal.roles)}",
            headers={"WWW-Authenticate": f'{_REALM}, error="insufficient_scope", scope="{role}"'},
        )
    return principal


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def require_role(role: str, *, streaming: bool = False):
    """Dependency: the verified caller (401), within its tenant's rate limit (429), who must have
    ``role`` or a higher one (403). ``streaming`` also accepts the token as query ``access_token``."""
    if streaming:

        async def dependency(
            request: Request,
            credentials: Credentials,
            access_token: Annotated[
                str | None,
                Query(
                    description="Token for clients that cannot set headers (EventSource); /v1/stream only."
                ),
            ] = None,
        ) -> Principal:
            token = credentials.credentials if credentials else access_token
            return await _authenticate(request, token, role)

    else:

        async def dependency(request: Request, credentials: Credentials) -> Principal:  # type: ignore[misc]
            return await _authenticate(request, credentials.credentials if credentials else None, role)

    dependency.__name__ = f"require_{role}"
    return dependency


Viewer = Annotated[Principal, Depends(require_role("viewer"))]
Operator = Annotated[Principal, Depends(require_role("operator"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
StreamViewer = Annotated[Principal, Depends(require_role("viewer", streaming=True))]


async def _settings(s: ServicesDep) -> GatewaySettings:
    return s.settings


async def _producer(request: Request) -> EventProducer:
    return get_services(request).producer


async def _pg(s: ServicesDep) -> PgReader:
    return s.pg


async def _hot(s: ServicesDep) -> HotViews:
    return s.hot


async def _influx(s: ServicesDep) -> InfluxReader:
    return s.influx


async def _hub(s: ServicesDep) -> StreamHub:
    return s.hub


async def _schedules(s: ServicesDep) -> CompactedView:
    return s.schedules


Settings = Annotated[GatewaySettings, Depends(_settings)]
Producer = Annotated[EventProducer, Depends(_producer)]
Pg = Annotated[PgReader, Depends(_pg)]
Hot = Annotated[HotViews, Depends(_hot)]
Influx = Annotated[InfluxReader, Depends(_influx)]
Hub = Annotated[StreamHub, Depends(_hub)]
Schedules = Annotated[CompactedView, Depends(_schedules)]
