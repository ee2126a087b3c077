"""Timers of every topology, through the timer service (``pipelines/timers.py``).

A step arms a timer by emitting :func:`arm` (a Timer record on ``timers``, key ``timer_id``; arming the
same id again replaces it) and cancels it with :func:`cancel` (a tombstone). When it is due, the timer
service produces the Timer record to ``timers.due.<owner>`` keyed by ``target_key``, where the owner's
step receives it as an input of kind ``timer`` with that key's state. Firing is at least once: a step
keeps the due time of the timer it armed and ignores any other (:func:`is_armed`).

Offline detection (telemetry, RMF ingest) arms one timer per subject and re-arms it lazily: a subject
seen since the timer was armed gets a timer for the remainder (:func:`remaining_due`), not one per input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from schemas.catalog import TIMERS
from schemas.errors import RejectedRecord
from schemas.ids import det_uuid7
from schemas.records import Timer
from topologies.kernel.output import Output

__all__ = ["TIMER", "arm", "cancel", "is_armed", "payload_of", "remaining_due"]

#: The kind of a due timer's input (``timers.due.<owner>``).
TIMER = "timer"


def arm(
    *,
    owner: str,
    timer_id: str,
    target_key: str,
    due_at: int,
    at: int,
    tenant_id: str,
    site_id: str | None,
    payload: Mapping[str, Any],
) -> Output:
    """Arm timer ``timer_id`` of ``owner``: back on ``timers.due.<owner>`` with key ``target_key`` at
    ``due_at``. ``at`` is the event time of the input that arms it (the record's ``occurred_at``)."""
    record: Timer = {
        "event_id": det_uuid7(at, "timer", timer_id, due_at),
        "tenant_id": tenant_id,
        "site_id": site_id,
        "occurred_at": at,
        "timer_id": timer_id,
        "owner": owner,
        "target_key": target_key,
        "due_at": due_at,
        "payload_json": orjson.dumps(payload).decode(),
    }
    return Output(TIMERS, timer_id, record)


def cancel(timer_id: str) -> Output:
    """Cancel timer ``timer_id`` (or clean a fired one off the compacted ``timers`` topic)."""
    return Output(TIMERS, timer_id, None)


def payload_of(timer: Timer) -> dict[str, Any]:
    """The payload of a due timer; :class:`RejectedRecord` when it is not a JSON object."""
    try:
        payload = orjson.loads(timer.get("payload_json") or "{}")
    except orjson.JSONDecodeError as exc:
        raise RejectedRecord(f"timer {timer.get('timer_id')!r}: payload is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise RejectedRecord(f"timer {timer.get('timer_id')!r}: payload is not a JSON object")
    return payload


def is_armed(timer: Timer, armed_due: int | None) -> bool:
    """Whether a due ``timer`` is the one armed (its due time is the one the step kept); a re-armed or
    twice-fired timer is not."""
    return armed_due is not None and timer.get("due_at") == armed_due


def remaining_due(last_seen: int, timeout_ms: int, due_at: int) -> int | None:
    """Lazy re-arm of an offline timer due at ``due_at``: the new due time when the subject was seen
    since the timer was armed (``last_seen + timeout_ms`` is later), None when it has been silent for
    the whole timeout."""
    expected = last_seen + timeout_ms
    return expected if expected > due_at else None
