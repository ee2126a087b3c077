"""The edge of every request (pure ASGI, one layer): request id, trace context, Prometheus metrics, audit.

Trace context: a request's ``traceparent`` header (W3C) is joined, or a new trace starts; the request's
:class:`schemas.tracing.Trace` is current while it is handled, so every record it produces carries its
``traceparent`` and its log lines its ``trace_id``. Answers of requests that produced or logged with it
carry ``traceresponse: 00-<trace id>-<the gateway's span id>-<flags>``.

Audit: every mutating call (POST/PUT/PATCH/DELETE under /v1) by an authenticated caller produces an
AuditEvent to ``audit.log`` once its answer is sent, successful or not: actor, role, action,
resource, status code. Routers name the resource id (``request.state.audit_resource_id``) when it is
not in the path (a new task's id); calls refused before authentication (401) have no tenant and are
not audited.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schemas import catalog
from schemas.ids import uuid7
from schemas.models import AuditEvent
from schemas.tracing import Trace, reset_current, set_current

__all__ = ["AUDITED", "EdgeMiddleware", "GatewayMetrics"]

logger = logging.getLogger(__name__)

#: (method, route template) -> (action, resource type, path parameter holding the resource id).
AUDITED: dict[tuple[str, str], tuple[str, str, str | None]] = {
    ("POST", "/v1/tasks"): ("task.create", "task", None),
    ("POST", "/v1/tasks/{task_id}/cancel"): ("task.cancel", "task", "task_id"),
    ("POST", "/v1/robots"): ("robot.register", "robot", None),
    ("PUT", "/v1/sites/{site_id}/map"): ("site.map.put", "site", "site_id"),
    ("POST", "/v1/schedules"): ("schedule.create", "schedule", None),
    ("POST", "/v1/schedules/{schedule_id}/disable"): ("schedule.disable", "schedule", "schedule_id"),
}
_MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


class GatewayMetrics:
    """The gateway's Prometheus metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "fleet_gateway_request_seconds",
            "HTTP request duration by route template, method and status",
            ["route", "method", "status"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=self.registry,
        )
        self.sse_clients = Gauge("fleet_gateway_sse_clients", "Connected SSE clients", registry=self.registry)
        self.sse_dropped = Gauge(
            "fleet_gateway_sse_dropped_clients",
            "SSE clients dropped for being slow (since start)",
            registry=self.registry,
        )
        self.sse_events = Gauge(
            "fleet_gateway_sse_events",
            "Records the SSE hub has ingested (since start)",
            registry=self.registry,
        )
        self.audit_failures = Counter(
            "fleet_gateway_audit_failures_total",
            "Audit events that could not be produced",
            registry=self.registry,
        )


class BodyTooLarge(Exception):
    """A request body over the limit (answered 413)."""


class EdgeMiddleware:
    """:param max_body_bytes: the largest request body (413 past it, before the body is read when it is
    declared); ``body_limits``: smaller limits for the paths starting with a prefix (first match wins)."""

    def __init__(
        self,
        app: ASGIApp,
        metrics: GatewayMetrics,
        max_body_bytes: int = 4 * 1024 * 1024,
        body_limits: tuple[tuple[str, int], ...] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.body_limits = body_limits

    def _body_limit(self, path: str) -> int:
        for prefix, limit in self.body_limits:
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = None
        traceparent = None
        declared = 0
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:128]
            elif name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"traceparent":
                traceparent = value
        request_id = request_id or uuid7()
        scope.setdefault("state", {})["request_id"] = request_id
        # The request's trace: what it produces carries it (gateway.producer), its log lines its id.
        trace = Trace(traceparent=traceparent)
        token = set_current(trace)
        try:
            await self._handle(scope, receive, send, start, request_id, declared, trace)
        finally:
            reset_current(token)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        start: float,
        request_id: str,
        declared: int,
        trace: Trace,
    ) -> None:
        status = 500
        limit = self._body_limit(scope["path"])
        if declared > limit:
            await self._too_large(send, request_id, limit)
            self.metrics.requests.labels("<too-large>", scope["method"], "413").observe(
                time.perf_counter() - start
            )
            return
        received = 0
        too_large = started = False

        async def receive_limited() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if too_large:  # the app caught BodyTooLarge (a body parsing error, 400): answer 413 instead
                if message["type"] == "http.response.start" and not started:
                    status, started = 413, True
                    await self._too_large(send, request_id, limit)
                return
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode("latin-1")))
                if trace.started:  # W3C trace-context level 2: the trace this request joined or started
                    headers.append((b"traceresponse", trace.header))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive_limited, send_wrapper)
        except BodyTooLarge:
            status = 413
            if not started:
                await self._too_large(send, request_id, limit)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            method = scope["method"]
            self.metrics.requests.labels(template, method, str(status)).observe(time.perf_counter() - start)
        if method in _MUTATING:
            await self._audit(scope, template, method, status, request_id)

    async def _too_large(self, send: Send, request_id: str, limit: int) -> None:
        msg = f"request body over the limit of {limit} bytes"
        body = orjson.dumps(
            {
                "error": "too_large",
                "message": msg,
                "detail": [{"loc": ["body"], "msg": msg, "type": "too_large"}],
            }
        )
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode("latin-1")),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _audit(self, scope: Scope, template: str, method: str, status: int, request_id: str) -> None:
        state: dict[str, Any] = scope.get("state", {})
        principal = state.get("principal")
        if principal is None:
            return
        action, resource_type, param = AUDITED.get(
            (method, template), (f"{method} {template}", "unknown", None)
        )
        path_params = scope.get("path_params", {})
        resource_id = state.get("audit_resource_id") or (path_params.get(param) if param else None) or ""
        details = {"path": scope.get("path")}
        event = AuditEvent(
            tenant_id=principal.tenant_id,
            site_id=state.get("audit_site_id") or path_params.get("site_id"),
            actor=principal.subject,
            role=principal.role,
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id),
            request_id=request_id,
            status_code=status,
            details_json=orjson.dumps(details).decode(),
        )
        services = scope["app"].state.services
        try:
            await services.producer.send(catalog.AUDIT_LOG, principal.tenant_id, event)
        except Exception:
            self.metrics.audit_failures.inc()
            logger.exception("audit event not produced", extra={"tenant_id": principal.tenant_id})
