"""Names, identifiers and record builders of the tasks topology.

Every record the topology emits has a deterministic ``event_id``: a UUIDv7 whose time is the record's
event time and whose other bits hash what the record is about (task and seq, timer id, ...). Reprocessing
an input therefore yields the same ids, which keeps every sink idempotent even across a replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, NotRequired, TypedDict

from schemas import catalog
from schemas.ids import det_uuid7, task_id_for
from schemas.records import (
    ACTIVE_TASK_STATES,
    RUNNING_TASK_STATES,
    TASK_STATES,
    TERMINAL_TASK_STATES,
    TaskEvent,
    TaskSchedule,
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
    "AssignInput",
    "CancelInput",
    "CreateInput",
    "DepAnswer",
    "DepFields",
    "DepInput",
    "DepMsg",
    "FireInput",
    "InboxInput",
    "ObserveInput",
    "Output",
    "ScheduleInput",
    "ScheduleStepInput",
    "TaskInput",
    "TimerInput",
    "UnassignInput",
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


# --------------------------------------------------------------------------------------------- inputs
# The normalized inputs (``inputs``) the feeds send through the inbox and the step applies, one shape per
# ``type``. They cross Kafka as JSON objects: these describe exactly the keys written there (a
# ``NotRequired`` key is one only some inputs of that type carry), so a misspelt key or a wrong value type
# is a mypy error.


class CreateInput(TypedDict):
    """A CREATE: a TaskCommand, an adopted RMF task (``machine``), a cron fire (``cron``)."""

    type: Literal["create"]
    task_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    event_id: str | None
    spec: TaskSpec
    idempotency_key: str | None
    requested_by: str | None


class CancelInput(TypedDict):
    """A CANCEL TaskCommand."""

    type: Literal["cancel"]
    task_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    event_id: str | None
    reason: str | None
    requested_by: str | None


class AssignInput(TypedDict):
    """An ASSIGN Decision of the scheduler."""

    type: Literal["assign"]
    task_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    event_id: str | None
    robot_id: str
    decision_id: str | None
    reason: str | None


class UnassignInput(TypedDict):
    """An UNASSIGN Decision of the scheduler (``robot_id`` None: whichever robot holds the task)."""

    type: Literal["unassign"]
    task_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    event_id: str | None
    robot_id: str | None
    decision_id: str | None
    reason: str | None


class ObserveInput(TypedDict):
    """A task state a robot (telemetry) or RMF (a task state) reports. RMF's have no tenant or site and
    carry what adopting a task RMF dispatched itself needs (``machine._adopt``)."""

    type: Literal["observe"]
    task_id: str
    tenant_id: str | None  # None from RMF
    site_id: str | None  # None from RMF
    occurred_at: int
    event_id: str | None
    observed: str  # the task state reported
    robot_id: str | None
    source: Literal["telemetry", "rmf"]
    external_id: str | None  # RMF's booking id
    reason: str | None
    # RMF only:
    origin: NotRequired[Literal["fleetstream", "rmf"]]  # who dispatched the task
    category: NotRequired[str | None]
    requester: NotRequired[str | None]
    fleet: NotRequired[str | None]
    robot: NotRequired[str | None]


class TimerInput(TypedDict):
    """A task's timer is due (a TIMER TaskCommand, or its Timer on ``timers.due.tasks``)."""

    type: Literal["timer"]
    task_id: str
    tenant_id: str
    site_id: str | None
    occurred_at: int
    event_id: str | None
    timer_id: str


#: The messages of the dependency protocol (``deps``).
DepMsg = Literal["probe", "reply", "outcome", "chase"]
#: A ``reply``'s answer to a probe (``deps``).
DepAnswer = Literal["unknown", "rejected", "refused", "pending", "exists", "succeeded", "failed"]


class DepFields(TypedDict, total=False):
    """What a dependency message carries besides its addressing: ``reply`` status and state,
    ``outcome`` state, ``chase`` initiator."""

    status: DepAnswer
    state: str | None  # the sender's task state
    initiator: str


#: A dependency-protocol message between two tasks (``deps``); ``from`` is a keyword, hence the form.
DepInput = TypedDict(
    "DepInput",
    {
        "type": Literal["dep"],
        "msg": DepMsg,
        "task_id": str,  # the receiver
        "from": str,  # the sender
        "tenant_id": str | None,
        "site_id": str | None,
        "occurred_at": int,
        "event_id": None,
        "status": NotRequired[DepAnswer],
        "state": NotRequired[str | None],
        "initiator": NotRequired[str],
    },
)


class ScheduleInput(TypedDict):
    """A TaskSchedule to apply (``record`` None: a tombstone, the schedule is deleted)."""

    type: Literal["schedule"]
    schedule_id: str
    record: TaskSchedule | None
    occurred_at: int
    event_id: str | None


class FireInput(TypedDict):
    """A schedule's fire timer is due (its Timer on ``timers.due.tasks``)."""

    type: Literal["fire"]
    schedule_id: str
    tenant_id: str
    site_id: str | None
    occurred_at: int
    event_id: str | None
    timer_id: str
    fire_at: int


#: An input of a task (inbox key: its task id), applied by ``machine.step``.
TaskInput = CreateInput | CancelInput | AssignInput | UnassignInput | ObserveInput | TimerInput | DepInput
#: An input of a schedule (inbox key: its schedule id), applied by ``cron.step_schedule``.
ScheduleStepInput = ScheduleInput | FireInput
#: Every input the inbox carries.
InboxInput = TaskInput | ScheduleStepInput


def inbox_message(kind: str, to: str, message: InboxInput) -> Output:
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
    payload: dict[str, str | int],
) -> Output:
    """Arm timer ``timer_id``: it comes back on ``timers.due.tasks`` at ``due_at`` (``topologies.timers``)."""
    return timers.arm(
        owner=OWNER, timer_id=timer_id, target_key=target_key, due_at=due_at, at=at, tenant_id=tenant_id,
        site_id=site_id, payload=payload,
    )  # fmt: skip


def tombstone(timer_id: str) -> Output:
    """Cancel (or clean up after firing) timer ``timer_id``."""
    return timers.cancel(timer_id)
