"""A small, caching client for the Confluent schema-registry REST API (Confluent, Apicurio ccompat,
Karapace, Redpanda).

Ids: the registry returns one id per schema *content*. Apicurio 3.x's ccompat API answers with the
content id (the same text registered under two subjects gets the same id) and ``GET /schemas/ids/{id}``
resolves content ids, so the id from registering is the id we frame records with. Ids are not dense
(content and global ids share one sequence in Apicurio), so never guess them.

Every lookup hits the network once per (subject, schema) or per id; later calls are served from
in-memory caches. The client is thread-safe.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import quote

import httpx

from schemas.errors import RegistryError

__all__ = ["COMPATIBILITY_LEVELS", "RegistryClient", "canonical_schema_text"]

log = logging.getLogger(__name__)

COMPATIBILITY_LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
# Confluent error codes for "not found": subject, version, schema, subject-level config.
_NOT_FOUND_CODES = {40401, 40402, 40403, 40408}


def canonical_schema_text(schema: str | dict[str, Any]) -> str:
    """Compact, deterministic JSON text of a schema: registering it twice yields the same id."""
    parsed = json.loads(schema) if isinstance(schema, str) else schema
    return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)


class RegistryClient:
    """Confluent-compatible schema registry client with caching.

    :param url: base URL, e.g. ``http://127.0.0.1:18081/apis/ccompat/v7``.
    :param username: basic-auth user (optional).
    :param password: basic-auth password (optional).
    :param ca_location: PEM file of the CA that signed the registry's certificate (optional).
    :param timeout: seconds per HTTP request.
    """

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        ca_location: str | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        auth = httpx.BasicAuth(username, password or "") if username else None
        verify: Any = ca_location if ca_location else True
        self._http = httpx.Client(
            base_url=self.url,
            auth=auth,
            verify=verify,
            timeout=timeout,
            headers={"Accept": _CONTENT_TYPE, "Content-Type": _CONTENT_TYPE},
        )
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], int] = {}  # (subject, canonical text) -> id
        self._schemas: dict[int, str] = {}  # id -> schema text
        self.http_calls = 0

    # ---------------------------------------------------------------------------------------- http

    def _request(self, method: str, path: str, body: Any = None, *, allow_404: bool = False) -> Any:
        self.http_calls += 1
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise RegistryError(f"schema registry {self.url} unreachable: {method} {path}: {exc}") from exc
        if response.status_code == 404 and allow_404:
            return None
        if response.status_code >= 400:
            try:
                payload = response.json()
                message = payload.get("message", response.text)
                error_code = payload.get("error_code")
            except ValueError:
                message, error_code = response.text, None
            raise RegistryError(
                f"schema registry refused {method} {path}: HTTP {response.status_code}: {message}",
                status_code=response.status_code,
                error_code=error_code,
            )
        if not response.content:
            return None
        return response.json()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------- schemas

    def register(self, subject: str, schema: str | dict[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (no-op if already there) and return its id."""
        text = canonical_schema_text(schema)
        key = (subject, text)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        payload = self._request(
            "POST", f"/subjects/{_q(subject)}/versions", {"schema": text, "schemaType": "AVRO"}
        )
        schema_id = int(payload["id"])
        with self._lock:
            self._ids[key] = schema_id
            self._schemas.setdefault(schema_id, text)
        log.info("registered schema under %s: id %d", subject, schema_id)
        return schema_id

    def lookup(self, subject: str, schema: str | dict[str, Any]) -> int | None:
        """The id of ``schema`` if it is registered under ``subject``, else None (never registers)."""
        text = canonical_schema_text(schema)
        key = (subject, text)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        payload = self._request(
            "POST", f"/subjects/{_q(subject)}", {"schema": text, "schemaType": "AVRO"}, allow_404=True
        )
        if payload is None:
            return None
        schema_id = int(payload["id"])
        with self._lock:
            self._ids[key] = schema_id
            self._schemas.setdefault(schema_id, text)
        return schema_id

    def schema_by_id(self, schema_id: int) -> str | None:
        """The schema text of ``schema_id``, or None when the registry does not know the id."""
        cached = self._schemas.get(schema_id)
        if cached is not None:
            return cached
        payload = self._request("GET", f"/schemas/ids/{int(schema_id)}", allow_404=True)
        if payload is None:
            return None
        text = str(payload["schema"])
        with self._lock:
            self._schemas[schema_id] = text
        return text

    def subjects(self) -> list[str]:
        return list(self._request("GET", "/subjects") or [])

    def versions(self, subject: str) -> list[int]:
        """Version numbers registered under ``subject`` ([] when the subject does not exist)."""
        return list(self._request("GET", f"/subjects/{_q(subject)}/versions", allow_404=True) or [])

    def latest(self, subject: str) -> dict[str, Any] | None:
        """``{"subject", "version", "id", "schema"}`` of the latest version, or None."""
        payload = self._request("GET", f"/subjects/{_q(subject)}/versions/latest", allow_404=True)
        return dict(payload) if payload else None

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Delete a subject (soft, then hard when ``permanent``); returns the deleted versions."""
        deleted = self._request("DELETE", f"/subjects/{_q(subject)}", allow_404=True) or []
        if permanent:
            self._request("DELETE", f"/subjects/{_q(subject)}?permanent=true", allow_404=True)
        with self._lock:
            for key in [k for k in self._ids if k[0] == subject]:
                del self._ids[key]
        return list(deleted)

    # ------------------------------------------------------------------------------- compatibility

    def get_compatibility(self, subject: str | None = None) -> str | None:
        """The compatibility level of ``subject`` (its own, not the global fallback), or the global one."""
        if subject is None:
            payload = self._request("GET", "/config", allow_404=True)
        else:
            payload = self._request("GET", f"/config/{_q(subject)}", allow_404=True)
        if not payload:
            return None
        return payload.get("compatibilityLevel") or payload.get("compatibility")

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        if level not in COMPATIBILITY_LEVELS:
            raise ValueError(f"unknown compatibility level {level}; one of {COMPATIBILITY_LEVELS}")
        path = "/config" if subject is None else f"/config/{_q(subject)}"
        payload = self._request("PUT", path, {"compatibility": level})
        return str(payload.get("compatibility") or payload.get("compatibilityLevel") or level)

    def check_compatibility(self, subject: str, schema: str | dict[str, Any]) -> tuple[bool, list[str]]:
        """Ask the registry whether ``schema`` may be added to ``subject`` under its rule.

        Returns ``(compatible, messages)``; a subject with no versions is always compatible.
        """
        payload = self._request(
            "POST",
            f"/compatibility/subjects/{_q(subject)}/versions/latest?verbose=true",
            {"schema": canonical_schema_text(schema), "schemaType": "AVRO"},
            allow_404=True,
        )
        if payload is None:
            return True, []
        messages = payload.get("messages") or []
        return bool(payload.get("is_compatible")), [str(m) for m in messages]


def _q(subject: str) -> str:
    return quote(subject, safe="")
