"""Names, identifiers and record builders of the tasks topology.

Every record the topology emits has a deterministic ``event_id``: a UUIDv7 whose time is the record's
event time and whose other bits hash what the record is about (task and seq, timer id, ...). Reprocessing
an input therefore yields the same ids, which keeps every sink idempotent even across a replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from schemas import catalog
from schemas.ids import det_uuid7, task_id_for
from schemas.records import (
    ACTIVE_TASK_STATES,
    RUNNING_TASK_STATES,
    TASK_STATES,
    TERMINAL_TASK_STATES,
    TaskEvent,
    TaskSpec,
)
from topologies import timers
from topologies.kernel import Envelope, Output
from topologies.tasks.config import OWNER

if TYPE_CHECKING:
    from topologies.tasks.core import TaskState

__all__ = [
    "ACTIVE",
    "CRON",
    "DEP",
    "EVENTS",
    "INBOX",
    "RUNNING",
    "STATES",
    "TERMINAL",
    "TIMERS",
    "Output",
    "cron_task_id",
    "det_uuid7",
    "inbox_message",
    "task_event",
    "task_id_for",
    "timer_record",
    "tombstone",
]

# Catalog names of the outputs. INBOX is internal to the tasks processor (see builder).
EVENTS = catalog.TASK_EVENTS
TIMERS = catalog.TIMERS
INBOX = catalog.inbox(OWNER)

#: Kinds of the messages the step sends itself through the inbox: the dependency protocol (``deps``) and
#: the creations of cron schedules (``cron``).
DEP = "dep"
CRON = "cron"

# The task states (schemas.records, the one definition).
STATES = TASK_STATES
TERMINAL = TERMINAL_TASK_STATES
#: A robot holds the task: the attempt timeout runs, UNASSIGN and progress apply.
RUNNING = RUNNING_TASK_STATES
#: Created and not finished.
ACTIVE = ACTIVE_TASK_STATES


def inbox_message(kind: str, to: str, message: dict[str, Any]) -> Output:
    """A message of ``kind`` (:data:`DEP`, :data:`CRON`) to the key ``to`` through the inbox."""
    return Output(INBOX, to, Envelope(kind, message))


def cron_task_id(tenant_id: str, schedule_id: str, fire_at: int) -> str:
    """The task a schedule creates at ``fire_at``: derived from schedule and fire time, so never twice."""
    return task_id_for(tenant_id, f"schedule:{schedule_id}:{fire_at}")


def task_event(
    task: TaskState,
    *,
    seq: int,
    kind: str,
    state: str,
    previous_state: str | None,
    at: int,
    reason: str | None = None,
    robot_id: str | None = None,
    spec: TaskSpec | None = None,
    causation_id: str | None = None,
) -> TaskEvent:
    """A TaskEvent (docs/records.md) about ``task`` (its state dict)."""
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
    """Arm timer ``timer_id``: it comes back on ``timers.due.tasks`` at ``due_at`` (``topologies.timers``)."""
    return timers.arm(
        owner=OWNER, timer_id=timer_id, target_key=target_key, due_at=due_at, at=at, tenant_id=tenant_id,
        site_id=site_id, payload=payload,
    )  # fmt: skip


def tombstone(timer_id: str) -> Output:
    """Cancel (or clean up after firing) timer ``timer_id``."""
    return timers.cancel(timer_id)
