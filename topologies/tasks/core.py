"""``TaskRun``: a working copy of one task's state and the outputs of one step.

The transition functions in ``machine`` and ``deps`` mutate a ``TaskRun`` only through these helpers, so
that the rules every step keeps live in one place: a gapless ``seq`` over every event emitted (REJECTED
and DUPLICATE included), event time that never goes backwards, timers disarmed when a task leaves the
state that armed them, dependents told when a task finishes.
"""

from __future__ import annotations

from typing import Literal, TypedDict, Unpack

from schemas.records import TaskSpec, task_spec
from topologies.tasks.config import TasksConfig
from topologies.tasks.records import (
    DEP,
    EVENTS,
    TERMINAL,
    CreateInput,
    DepFields,
    DepMsg,
    Output,
    TaskInput,
    inbox_message,
    task_event,
    timer_record,
    tombstone,
)

__all__ = ["Armed", "Pending", "Slot", "TaskRun", "TaskState", "new_task_state"]

#: The timers a task arms: an attempt's timeout, the backoff before a retry.
Slot = Literal["timeout", "retry"]


class Armed(TypedDict):
    """An armed timer of a task."""

    id: str
    due: int


class Pending(TypedDict):
    """The dependency check of a CREATE in progress (see ``deps``)."""

    create: CreateInput  # the ``create`` input held until every prerequisite has answered
    unanswered: list[str]  # prerequisites probed, no answer yet
    blocked: list[str]  # prerequisites whose own check is in progress
    outstanding: list[str]  # prerequisites that exist and have not finished
    failed: list[list[str]]  # [prerequisite, its terminal state] of those that failed
    chased: list[str]  # initiators of the cycle chases forwarded
    cancel: str | None  # the reason of a CANCEL to apply right after the creation


class TaskState(TypedDict):
    """The state of one task (state sub-key ``task``)."""

    task_id: str
    tenant_id: str
    site_id: str
    status: str | None  # None: not created (yet)
    seq: int  # of the last event emitted
    attempt: int
    attempt_open: bool
    robot_id: str | None
    external_id: str | None
    spec: TaskSpec | None
    idempotency_key: str | None
    created_at: int | None
    last_at: int  # occurred_at of the last event emitted
    timeout: Armed | None  # while an attempt's timeout is armed
    retry: Armed | None  # while RETRYING
    waiting_on: list[str]  # prerequisites not yet SUCCEEDED (WAITING)
    dependents: list[str]  # tasks to tell when this one finishes
    pending: Pending | None  # the dependency check of a CREATE in progress (see deps)
    subscribers: list[str]  # tasks waiting to learn whether this one gets created


#: What :attr:`TaskRun.spec` reads of a task without a spec (not created yet).
_NO_SPEC: TaskSpec = task_spec()


def new_task_state(inp: TaskInput) -> TaskState:
    """The state of a task id seen for the first time (not created yet: ``status`` None)."""
    return {
        "task_id": inp["task_id"],
        "tenant_id": inp.get("tenant_id") or "",
        "site_id": inp.get("site_id") or "",
        "status": None,
        "seq": 0,
        "attempt": 0,
        "attempt_open": False,
        "robot_id": None,
        "external_id": None,
        "spec": None,
        "idempotency_key": None,
        "created_at": None,
        "last_at": 0,
        "timeout": None,
        "retry": None,
        "waiting_on": [],
        "dependents": [],
        "pending": None,
        "subscribers": [],
    }


class TaskRun:
    """One step's working copy. ``s`` is a shallow copy: replace lists, never mutate the caller's."""

    def __init__(self, state: TaskState, cfg: TasksConfig, inp: TaskInput) -> None:
        self.s: TaskState = state.copy()
        self.cfg = cfg
        self.inp = inp
        self.at: int = max(int(inp["occurred_at"]), int(state.get("last_at") or 0))
        self.cause: str | None = inp.get("event_id")
        self.out: list[Output] = []

    # ----------------------------------------------------------------------------- reading
    @property
    def task_id(self) -> str:
        return str(self.s["task_id"])

    @property
    def status(self) -> str | None:
        return self.s["status"]

    @property
    def spec(self) -> TaskSpec:
        """The task's spec; before the task is created, one of defaults."""
        return self.s["spec"] or _NO_SPEC

    # ----------------------------------------------------------------------------- events
    def _event(
        self,
        kind: str,
        state: str,
        previous: str | None,
        reason: str | None,
        robot_id: str | None,
        spec: TaskSpec | None = None,
    ) -> None:
        self.s["seq"] += 1
        self.s["last_at"] = self.at
        event = task_event(
            self.s,
            seq=self.s["seq"],
            kind=kind,
            state=state,
            previous_state=previous,
            at=self.at,
            reason=reason,
            robot_id=robot_id,
            spec=spec,
            causation_id=self.cause,
        )
        self.out.append(Output(EVENTS, self.task_id, event))

    def transition(self, new: str, reason: str | None = None, *, spec: TaskSpec | None = None) -> None:
        """Move to ``new`` and emit the TRANSITION; on a terminal state disarm timers, tell dependents."""
        previous = self.s["status"]
        self.s["status"] = new
        if new in TERMINAL:
            self.disarm("timeout")
            self.disarm("retry")
        self._event("TRANSITION", new, previous, reason, self.s["robot_id"], spec)
        if new in TERMINAL:
            for dependent in self.s["dependents"]:
                self.send(dependent, "outcome", state=new)
            self.s["dependents"] = []
            self.s["waiting_on"] = []

    def reject(self, reason: str, robot_id: str | None = None) -> None:
        """Refuse the input: a REJECTED event, state unchanged. It consumes a seq like every event."""
        self._event("REJECTED", self.s["status"] or "UNKNOWN", None, reason, robot_id)

    def duplicate(self, reason: str) -> None:
        """Answer a repeated CREATE: a DUPLICATE event, nothing re-applied."""
        self._event("DUPLICATE", self.s["status"] or "UNKNOWN", None, reason, self.s["robot_id"])

    def create(self, create: CreateInput) -> None:
        """CREATED with the spec (the caller moves on to QUEUED / WAITING / ...)."""
        s = self.s
        s["spec"] = create["spec"]
        s["idempotency_key"] = create.get("idempotency_key")
        s["created_at"] = self.at
        s["tenant_id"], s["site_id"] = create["tenant_id"], create["site_id"]
        by = create.get("requested_by")
        self.transition("CREATED", f"created by {by}" if by else None, spec=create["spec"])

    # ----------------------------------------------------------------------------- timers
    def arm(self, slot: Slot, due_at: int, payload: dict[str, int]) -> None:
        """Arm the ``timeout`` or ``retry`` timer; its id is unique to this arming (slot + seq)."""
        self.disarm(slot)
        timer_id = f"task:{self.task_id}:{slot}:{self.s['seq']}"
        self.s[slot] = {"id": timer_id, "due": due_at}
        self.out.append(
            timer_record(
                timer_id=timer_id,
                target_key=self.task_id,
                due_at=due_at,
                at=self.at,
                tenant_id=self.s["tenant_id"],
                site_id=self.s["site_id"] or None,
                payload={"kind": f"task.{slot}", "task_id": self.task_id, **payload},
            )
        )

    def disarm(self, slot: Slot) -> None:
        armed = self.s.get(slot)
        if armed:
            self.out.append(tombstone(armed["id"]))
            self.s[slot] = None

    # ----------------------------------------------------------------------------- dependencies
    def send(self, to: str, msg: DepMsg, **fields: Unpack[DepFields]) -> None:
        """A dependency-protocol message to task ``to`` through the inbox (see ``deps``)."""
        self.out.append(
            inbox_message(
                DEP,
                to,
                {
                    "type": "dep",
                    "msg": msg,
                    "task_id": to,
                    "from": self.task_id,
                    "tenant_id": self.s["tenant_id"],
                    "site_id": self.s["site_id"],
                    "occurred_at": self.at,
                    "event_id": None,
                    **fields,
                },
            )
        )
