"""One error shape for every answer: ``{"error", "message", "detail": [{"loc", "msg", "type"}]}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gateway.models import Dependency, ErrorBody, ErrorItem

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "RecordTooLarge",
    "Unavailable",
    "cursor_error",
    "install_error_handlers",
    "problem",
]

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answer with a code, a message, field problems and headers."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        error: str | None = None,
        detail: list[ErrorItem] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.error = error or _CODES.get(status_code, "error")
        self.detail = detail or []
        self.headers = headers


class Unavailable(Exception):
    """A service the request needs is down or does not answer in time (answered 503 with Retry-After).

    Raised by the repositories and the producer in place of the client library's connection errors, so a
    router can fall back to another source, and an outage is never a 500.
    """

    def __init__(self, dependency: Dependency, reason: str) -> None:
        super().__init__(f"{dependency} is unavailable: {reason}")
        self.dependency = dependency
        self.reason = reason


class RecordTooLarge(ValueError):
    """A record that encodes larger than the gateway may produce (answered 413)."""

    def __init__(self, topic: str, size: int, limit: int) -> None:
        super().__init__(f"the {topic} record is {size} bytes encoded; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


def problem(loc: list[str | int] | tuple[str | int, ...], msg: str, kind: str | None = None) -> ErrorItem:
    return ErrorItem(loc=list(loc), msg=msg, type=kind)


def cursor_error(exc: Exception) -> ApiError:
    """The 422 for a cursor this API did not issue."""
    return ApiError(422, f"invalid cursor: {exc}", detail=[problem(["query", "cursor"], str(exc), "cursor")])


def _respond(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    data = body.model_dump(exclude={"dependency"} if body.dependency is None else None)
    return JSONResponse(data, status_code=status, headers=headers)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _respond(
        exc.status_code, ErrorBody(error=exc.error, message=exc.message, detail=exc.detail), exc.headers
    )


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Unavailable)
    retry_after = request.app.state.settings.unavailable_retry_after_seconds
    logger.warning(
        "%s %s: %s is unavailable (%s)", request.method, request.url.path, exc.dependency, exc.reason
    )
    body = ErrorBody(
        error="unavailable",
        message=f"{exc.dependency} is unavailable; retry in {retry_after} s",
        dependency=exc.dependency,
        detail=[problem(["dependency", exc.dependency], exc.reason[:300], "unavailable")],
    )
    return _respond(503, body, {"Retry-After": str(retry_after)})


async def _record_too_large(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RecordTooLarge)
    body = ErrorBody(error="too_large", message=str(exc), detail=[problem(["body"], str(exc), "too_large")])
    return _respond(413, body)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    items = []
    for err in exc.errors():
        loc = [p if isinstance(p, int) else str(p) for p in err.get("loc", ())]
        items.append(ErrorItem(loc=loc, msg=str(err.get("msg", "invalid")), type=err.get("type")))
    fields = ", ".join(".".join(str(p) for p in i.loc) for i in items[:5])
    body = ErrorBody(error="validation_error", message=f"invalid request: {fields}", detail=items)
    return _respond(422, body)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "error"
    body = ErrorBody(error=_CODES.get(exc.status_code, "error"), message=message)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return _respond(exc.status_code, body, headers or None)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of every route on this path (Starlette only names the first matching route's)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE and getattr(route, "methods", None):
            methods |= set(route.methods)
    return sorted(methods)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _respond(500, ErrorBody(error="internal_error", message="internal error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(RecordTooLarge, _record_too_large)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unhandled)


_ERR: dict[str, Any] = {"model": ErrorBody}
#: OpenAPI description of the error answers every /v1 route can give.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {**_ERR, "description": "The body could not be parsed."},
    401: {**_ERR, "description": "No token, or an invalid or expired one (see WWW-Authenticate)."},
    403: {**_ERR, "description": "Authenticated, but the role is insufficient."},
    404: {**_ERR, "description": "No such resource in the caller's tenant."},
    413: {**_ERR, "description": "The request body is too large."},
    422: {**_ERR, "description": "Malformed request: each problem with its field path."},
    429: {**_ERR, "description": "Tenant rate limit reached (see Retry-After)."},
    503: {
        **_ERR,
        "description": "A service this call needs (named in `dependency`: kafka, postgres, redis or influxdb) "
        "is down; retry after `Retry-After` seconds.",
        "headers": {
            "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
        },
    },
}
