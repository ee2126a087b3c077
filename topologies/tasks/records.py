"""Names, identifiers and record builders of the tasks topology.

Every record the topology emits has a deterministic ``event_id``: a UUIDv7 whose time is the record's
event time and whose other bits hash what the record is about (task and seq, timer id, ...). Reprocessing
an input therefore yields the same ids, which keeps every sink idempotent even across a replay.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from schemas.ids import det_uuid7, task_id_for
from topologies.tasks.config import OWNER

__all__ = [
    "ACTIVE",
    "EVENTS",
    "INBOX",
    "RUNNING",
    "STATES",
    "TERMINAL",
    "TIMERS",
    "Output",
    "cron_task_id",
    "det_uuid7",
    "task_event",
    "task_id_for",
    "timer_record",
    "tombstone",
]

# Catalog names of the outputs. INBOX is internal to the tasks processor (see builder).
EVENTS = "task.events"
TIMERS = "timers"
INBOX = "tasks.inbox"

# TaskState symbols (docs/records.md). "UNKNOWN" is the state of a task that was never created.
STATES = (
    "CREATED",
    "WAITING",
    "QUEUED",
    "ASSIGNED",
    "DISPATCHED",
    "EXECUTING",
    "RETRYING",
    "SUCCEEDED",
    "FAILED",
    "CANCELLED",
    "TIMED_OUT",
)
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})
#: A robot holds the task: the attempt timeout runs, UNASSIGN and progress apply.
RUNNING = frozenset({"ASSIGNED", "DISPATCHED", "EXECUTING"})
#: Created and not finished.
ACTIVE = frozenset(STATES) - TERMINAL

#: Namespace of task ids derived from idempotency keys: the gateway's (gateway/routers/tasks.py), so a
#: cron-created task id and an API-created one come from one scheme.


class Output(NamedTuple):
    """One record to emit: catalog topic, Kafka key, value (None is a tombstone)."""

    topic: str
    key: str
    value: dict[str, Any] | None


def cron_task_id(tenant_id: str, schedule_id: str, fire_at: int) -> str:
    """The task a schedule creates at ``fire_at``: derived from schedule and fire time, so never twice."""
    return task_id_for(tenant_id, f"schedule:{schedule_id}:{fire_at}")


def task_event(
    task: dict[str, Any],
    *,
    seq: int,
    kind: str,
    state: str,
    previous_state: str | None,
    at: int,
    reason: str | None = None,
    robot_id: str | None = None,
    spec: dict[str, Any] | None = None,
    causation_id: str | None = None,
) -> dict[str, Any]:
    """A TaskEvent dict (docs/records.md) about ``task`` (its state dict)."""
    return {
        "event_id": det_uuid7(at, "task", task["task_id"], seq),
        "tenant_id": task["tenant_id"],
        "site_id": task["site_id"],
        "occurred_at": at,
        "task_id": task["task_id"],
        "seq": seq,
        "kind": kind,
        "state": state,
        "previous_state": previous_state,
        "reason": reason,
        "robot_id": robot_id,
        "attempt": task.get("attempt", 0),
        "spec": spec,
        "external_id": task.get("external_id"),
        "causation_id": causation_id,
    }


def timer_record(
    *,
    timer_id: str,
    target_key: str,
    due_at: int,
    at: int,
    tenant_id: str,
    site_id: str | None,
    payload: dict[str, Any],
) -> Output:
    """Arm timer ``timer_id``: a Timer on ``timers`` that comes back on ``timers.due.tasks`` at ``due_at``."""
    return Output(
        TIMERS,
        timer_id,
        {
            "event_id": det_uuid7(at, "timer", timer_id),
            "tenant_id": tenant_id,
            "site_id": site_id,
            "occurred_at": at,
            "timer_id": timer_id,
            "owner": OWNER,
            "target_key": target_key,
            "due_at": due_at,
            "payload_json": orjson.dumps(payload).decode(),
        },
    )


def tombstone(timer_id: str) -> Output:
    """Cancel (or clean up after firing) timer ``timer_id``."""
    return Output(TIMERS, timer_id, None)
