"""JSON codec for the ``rmf.*`` topics, validating against the vendored Open-RMF rmf_api_msgs schemas.

Messages are the rmf_api_msgs envelopes (``{"type": "fleet_state_update", "data": {...}}``); the
``type`` field selects the schema. Validation is offline: every schema file is loaded into a
``referencing`` registry under its ``$id``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from schemas import catalog
from schemas.errors import SchemaDecodeError, SchemaEncodeError

__all__ = [
    "MESSAGE_TYPES",
    "RMF_SCHEMA_DIR",
    "TOPIC_MESSAGE_TYPES",
    "RmfJsonCodec",
    "errors",
    "schema_names",
    "validate",
    "validator",
]

RMF_SCHEMA_DIR = Path(__file__).parent / "rmf_api_msgs" / "schemas"
_BASE_URL = "https://raw.githubusercontent.com/open-rmf/rmf_api_msgs/main/rmf_api_msgs/schemas/"

#: Envelope types we carry and produce (the ``type`` field), each validated by the schema of that name.
MESSAGE_TYPES = (
    "fleet_state_update",
    "fleet_log_update",
    "task_state_update",
    "task_log_update",
    "dispatch_task_request",
    "cancel_task_request",
)
#: Which envelope types each RMF topic (unprefixed catalog name) may carry.
TOPIC_MESSAGE_TYPES: dict[str, tuple[str, ...]] = {
    catalog.RMF_FLEET_STATES: ("fleet_state_update",),
    catalog.RMF_TASK_STATES: ("task_state_update",),
    catalog.RMF_LOGS: ("task_log_update", "fleet_log_update"),
}


def schema_names() -> list[str]:
    """Names of every vendored schema (file stems), e.g. ``task_state``."""
    return sorted(p.stem for p in RMF_SCHEMA_DIR.glob("*.json"))


@cache
def _registry() -> Registry:
    resources: list[tuple[str, Resource]] = []
    for path in sorted(RMF_SCHEMA_DIR.glob("*.json")):
        contents = json.loads(path.read_text())
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        resources.append((_BASE_URL + path.name, resource))
        declared = contents.get("$id")
        if declared and declared != _BASE_URL + path.name:
            resources.append((declared, resource))
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for vendored schema ``name`` (e.g. ``"fleet_state_update"`` or ``"task_state"``)."""
    path = RMF_SCHEMA_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no rmf_api_msgs schema {name!r}")
    schema = json.loads(path.read_text())
    schema["$id"] = _BASE_URL + path.name  # resolve relative refs against the file's own URL
    return Draft202012Validator(schema, registry=_registry())


def errors(payload: Any, name: str) -> list[str]:
    """Every validation error of ``payload`` against schema ``name``, as ``path: message`` lines."""
    out = []
    for err in validator(name).iter_errors(payload):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        out.append(f"{where}: {err.message}")
    return out


def validate(payload: Any, name: str | None = None) -> str:
    """Validate an RMF message; ``name`` defaults to its ``type`` field. Returns the schema name used.

    :raises ValueError: unknown type, or the first (most relevant) validation error.
    """
    if name is None:
        name = payload.get("type") if isinstance(payload, dict) else None
        if name not in MESSAGE_TYPES:
            raise ValueError(
                f"not an rmf_api_msgs message we carry: type {name!r}, expected one of {MESSAGE_TYPES}"
            )
    error = best_match(validator(name).iter_errors(payload))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise ValueError(f"invalid {name}: at {where}: {error.message}")
    return name


class RmfJsonCodec:
    """``encode(dict) -> bytes`` and ``decode(bytes) -> dict`` for one ``rmf.*`` topic, validating both ways.

    :param topic: unprefixed catalog name (``rmf.fleet_states``, ``rmf.task_states``, ``rmf.logs``), or
        ``None`` to accept every type in :data:`MESSAGE_TYPES`.
    """

    def __init__(self, topic: str | None = None) -> None:
        if topic is not None and topic not in TOPIC_MESSAGE_TYPES:
            raise KeyError(f"{topic} is not an RMF topic; known: {list(TOPIC_MESSAGE_TYPES)}")
        self.topic = topic
        self.allowed = TOPIC_MESSAGE_TYPES[topic] if topic else MESSAGE_TYPES

    def _check(self, payload: Any) -> None:
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind not in self.allowed:
            raise ValueError(
                f"message type {kind!r} does not belong on {self.topic or 'RMF topics'}: {self.allowed}"
            )
        validate(payload, kind)

    def encode(self, payload: dict[str, Any] | None) -> bytes | None:
        if payload is None:
            return None
        try:
            self._check(payload)
        except ValueError as exc:
            raise SchemaEncodeError(str(exc)) from exc
        return orjson.dumps(payload)

    def decode(self, data: bytes | None) -> dict[str, Any] | None:
        if data is None:
            return None
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SchemaDecodeError(f"not JSON: {exc}") from exc
        try:
            self._check(payload)
        except ValueError as exc:
            raise SchemaDecodeError(str(exc)) from exc
        return payload  # type: ignore[no-any-return]
