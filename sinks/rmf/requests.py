"""Pure builders of the rmf_api_msgs messages the RMF sink sends and publishes.

- :func:`dispatch_request`: a TaskSpec -> ``dispatch_task_request`` with an RMF task description of category
  ``delivery``, ``patrol`` or ``compose`` (the schemas of rmf_fleet_adapter's task descriptions).
- :func:`cancel_request`: ``cancel_task_request`` for an RMF task id.
- :func:`linked_state` / :func:`refusal_state`: ``task_state_update`` messages the sink publishes to
  ``rmf.task_states`` so that the tasks topology links RMF's task id to ours (DISPATCHED, external_id) or
  fails our task with RMF's errors (``dispatch.status = failed_to_assign``).

Every builder returns a message that validates against the vendored schemas (checked by the tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from schemas import rmf
from schemas.errors import FleetError

__all__ = [
    "ATTEMPT_LABEL",
    "CATEGORIES",
    "TASK_LABEL",
    "UnsupportedTask",
    "cancel_request",
    "dispatch_request",
    "error_text",
    "labels_of",
    "linked_state",
    "refusal_state",
    "task_label",
]

#: Label carrying our task id (the tasks topology reads it: topologies.tasks.RMF_TASK_LABEL).
TASK_LABEL = "fleetstream_task_id"
#: Label carrying our attempt number, so a retried task is a new RMF task.
ATTEMPT_LABEL = "fleetstream_attempt"
CATEGORIES = ("delivery", "patrol", "compose")
HIGH_PRIORITY = 8  # our priority (0..10) from which RMF's binary priority is 1


class UnsupportedTask(FleetError):
    """The TaskSpec cannot be expressed as an RMF task request (the task fails with this reason)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def task_label(task_id: str) -> str:
    return f"{TASK_LABEL}={task_id}"


def labels_of(state: Mapping[str, Any]) -> dict[str, str]:
    """``booking.labels`` of an RMF task_state as a dict (``key=value``; a bare ``key`` maps to "")."""
    booking = state.get("booking")
    if not isinstance(booking, Mapping):
        return {}
    out: dict[str, str] = {}
    for label in booking.get("labels") or []:
        name, _, value = str(label).partition("=")
        out[name] = value
    return out


def _payload(spec: Mapping[str, Any]) -> dict[str, Any]:
    raw = spec.get("payload_json")
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise UnsupportedTask(f"payload_json is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UnsupportedTask("payload_json must be a JSON object")
    return value


def _place(spec: Mapping[str, Any], payload: Mapping[str, Any], role: str) -> dict[str, Any]:
    given = payload.get(role)
    if isinstance(given, dict):
        return given
    node = spec.get(f"{role}_node")
    if not node:
        raise UnsupportedTask(f"an RMF delivery needs {role}_node (or payload_json.{role})")
    labels = spec.get("labels") or {}
    return {"place": node, "handler": labels.get(f"rmf_{role}_handler", ""), "payload": []}


def _description(spec: Mapping[str, Any]) -> tuple[str, Any]:
    category = spec.get("category")
    payload = _payload(spec)
    if isinstance(payload.get("rmf"), dict):  # a full RMF request part, passed through
        part = payload["rmf"]
        if "category" not in part or "description" not in part:
            raise UnsupportedTask("payload_json.rmf needs category and description")
        return str(part["category"]), part["description"]
    if category == "delivery":
        return "delivery", {
            "pickup": _place(spec, payload, "pickup"),
            "dropoff": _place(spec, payload, "dropoff"),
        }
    if category == "patrol":
        places = payload.get("places") or [
            n for n in (spec.get("pickup_node"), spec.get("dropoff_node")) if n
        ]
        if not places:
            raise UnsupportedTask("an RMF patrol needs places (payload_json.places or pickup/dropoff nodes)")
        return "patrol", {"places": list(places), "rounds": int(payload.get("rounds", 1))}
    if category == "compose":
        if not isinstance(payload.get("phases"), list) or not payload.get("category"):
            raise UnsupportedTask("an RMF compose task needs payload_json {category, phases: [...]}")
        return "compose", payload
    raise UnsupportedTask(f"category {category!r} has no RMF task description; RMF takes {CATEGORIES}")


def dispatch_request(
    task_id: str,
    spec: Mapping[str, Any],
    fleet_name: str,
    *,
    attempt: int,
    now_ms: int,
    requester: str = "fleetstream",
) -> dict[str, Any]:
    """The ``dispatch_task_request`` of one attempt of our task on RMF fleet ``fleet_name``.

    :raises UnsupportedTask: the spec cannot be expressed for RMF.
    """
    category, description = _description(spec)
    labels = [task_label(task_id), f"{ATTEMPT_LABEL}={attempt}"]
    labels += [f"{k}={v}" for k, v in sorted((spec.get("labels") or {}).items()) if not k.startswith("rmf_")]
    request: dict[str, Any] = {
        "category": category,
        "description": description,
        "fleet_name": fleet_name,
        "labels": labels,
        "requester": requester,
        "unix_millis_request_time": int(now_ms),
        "priority": {"type": "binary", "value": 1 if int(spec.get("priority", 5)) >= HIGH_PRIORITY else 0},
    }
    start = _payload(spec).get("unix_millis_earliest_start_time")
    if isinstance(start, int):
        request["unix_millis_earliest_start_time"] = start
    message = {"type": "dispatch_task_request", "request": request}
    rmf.validate(message, "dispatch_task_request")
    return message


def cancel_request(rmf_task_id: str, task_id: str) -> dict[str, Any]:
    message = {"type": "cancel_task_request", "task_id": rmf_task_id, "labels": [task_label(task_id)]}
    rmf.validate(message, "cancel_task_request")
    return message


def linked_state(state: Mapping[str, Any], task_id: str) -> dict[str, Any]:
    """RMF's task_state (from its dispatch answer or a lookup) as a ``task_state_update`` carrying our label."""
    data = dict(state)
    booking = dict(data.get("booking") or {})
    labels = list(booking.get("labels") or [])
    if task_label(task_id) not in labels:
        labels.insert(0, task_label(task_id))
    booking["labels"] = labels
    data["booking"] = booking
    message = {"type": "task_state_update", "data": data}
    rmf.validate(message, "task_state_update")
    return message


def refusal_state(
    task_id: str, category: str, errors: list[dict[str, Any]], *, attempt: int, now_ms: int
) -> dict[str, Any]:
    """The task_state of a request RMF refused (``dispatch.status = failed_to_assign`` with RMF's errors).

    RMF gave no task id, so ``booking.id`` is our task id.
    """
    clean = [
        {k: v for k, v in e.items() if k in ("code", "category", "detail")}
        for e in errors
        if isinstance(e, dict)
    ] or [{"category": "refused", "detail": "RMF refused the request without errors"}]
    message = {
        "type": "task_state_update",
        "data": {
            "booking": {
                "id": task_id,
                "unix_millis_request_time": int(now_ms),
                "labels": [task_label(task_id), f"{ATTEMPT_LABEL}={attempt}"],
            },
            "category": category,
            "dispatch": {"status": "failed_to_assign", "errors": clean},
        },
    }
    rmf.validate(message, "task_state_update")
    return message


def error_text(errors: list[dict[str, Any]]) -> str:
    """RMF's errors as one line: ``category: detail (code)``; ..."""
    parts = []
    for e in errors:
        text = ": ".join(str(e[k]) for k in ("category", "detail") if e.get(k))
        parts.append(f"{text} ({e['code']})" if "code" in e else text)
    return "; ".join(parts) or "no reason given"
