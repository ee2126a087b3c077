"""A small synchronous client of an RMF API server (rmf-web's api-server REST, JWT bearer).

``POST /tasks/dispatch_task`` (dispatch_task_request -> dispatch_task_response), ``POST
/tasks/cancel_task`` (cancel_task_request -> cancel_task_response) and ``GET /tasks?label=<k=v>`` (task
states whose booking carries that label) to find a task dispatched before a timeout or a restart.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx

from schemas.errors import FleetError

__all__ = ["RmfApiClient", "RmfRefused", "RmfUnavailable"]

logger = logging.getLogger(__name__)


class RmfUnavailable(FleetError):
    """RMF did not answer usefully (down, timeout, 5xx, auth): retry later; the request may have landed."""


class RmfRefused(FleetError):
    """RMF refused the request (400 with ``errors``): retrying will not help."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"RMF refused the request: {errors}")
        self.errors = errors


class RmfApiClient:
    """:param base_url: the RMF API server, e.g. ``http://rmf-web:8000``.
    :param token: bearer JWT (rmf-web checks it against its OIDC provider).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:  # connect errors, timeouts
            raise RmfUnavailable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code in (401, 403, 408, 429):
            raise RmfUnavailable(f"{method} {path}: HTTP {response.status_code} {response.text[:200]}")
        return response

    @staticmethod
    def _refusal(response: httpx.Response) -> RmfRefused:
        try:
            body = response.json()
        except ValueError:
            body = {}
        errors = body.get("errors") if isinstance(body, dict) else None
        if not isinstance(errors, list) or not errors:
            detail = body.get("detail") if isinstance(body, dict) else None
            errors = [
                {"code": response.status_code, "category": "http", "detail": str(detail or response.text)}
            ]
        return RmfRefused(errors)

    def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        """Submit a dispatch_task_request; returns RMF's task_state of the new task."""
        response = self._call("POST", "/tasks/dispatch_task", json=request)
        if response.status_code >= 400:
            raise self._refusal(response)
        body = response.json()
        if not body.get("success") or not isinstance(body.get("state"), dict):
            raise RmfRefused(body.get("errors") or [{"category": "refused", "detail": str(body)[:500]}])
        return body["state"]  # type: ignore[no-any-return]

    def cancel(self, request: dict[str, Any]) -> None:
        response = self._call("POST", "/tasks/cancel_task", json=request)
        if response.status_code >= 400:
            raise self._refusal(response)
        body = response.json()
        if isinstance(body, dict) and body.get("success") is False:
            raise RmfRefused(body.get("errors") or [])

    def find_by_label(self, label: str) -> list[dict[str, Any]]:
        """Task states whose booking carries ``label`` (``key=value``)."""
        response = self._call("GET", "/tasks", params={"label": label})
        if response.status_code >= 400:
            raise RmfUnavailable(f"GET /tasks: HTTP {response.status_code} {response.text[:200]}")
        body = response.json()
        return body if isinstance(body, list) else []
