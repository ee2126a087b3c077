"""The task state machine: ``step(state, input, config) -> (state, outputs)``, pure.

States: CREATED -> WAITING (dependencies) -> QUEUED -> ASSIGNED -> DISPATCHED -> EXECUTING ->
SUCCEEDED | FAILED | CANCELLED | TIMED_OUT, with RETRYING -> QUEUED after a failed attempt while attempts
remain. Inputs are the normalized records of ``inputs``: ``create``, ``cancel``, ``assign``,
``unassign`` (commands and scheduler decisions: an illegal one is answered with a REJECTED event),
``observe`` (robot telemetry and RMF task states: facts reported again and again, so one that does not
fit is ignored, never answered), ``timer`` (a due timer) and ``dep`` (see ``deps``).

Legal transitions (every one emits a TRANSITION event)::

    (new)                 create         -> CREATED -> QUEUED | WAITING | (see deps)
    WAITING               all deps ok    -> QUEUED
    WAITING               a dep failed   -> CANCELLED | FAILED (on_dependency_failure)
    QUEUED                assign         -> ASSIGNED (a new attempt unless the last one never failed)
    ASSIGNED              observe DISPATCHED -> DISPATCHED
    ASSIGNED, DISPATCHED  observe EXECUTING  -> EXECUTING
    ASSIGNED..EXECUTING   observe SUCCEEDED  -> SUCCEEDED
    ASSIGNED..EXECUTING   observe FAILED     -> RETRYING (attempt < max_attempts) | FAILED
    ASSIGNED..EXECUTING   observe CANCELLED  -> CANCELLED (cancelled in RMF)
    ASSIGNED..EXECUTING   unassign           -> QUEUED (the attempt goes on with another robot)
    ASSIGNED..EXECUTING   timeout timer      -> TIMED_OUT
    RETRYING              retry timer        -> QUEUED
    any non-terminal      cancel             -> CANCELLED

REJECTED (state unchanged): cancel of a finished task, assign of a task that is not QUEUED or to another
robot than its pin, unassign of a task that is not running or held by another robot, any command for an
unknown task, cycles and unknown dependencies at creation. DUPLICATE: a CREATE for an existing task.

Sequence numbers: every event on ``task.events`` takes the next ``seq`` of its task, REJECTED and
DUPLICATE included, so the seq is gapless over exactly the events emitted (a reader detects a lost
event by a gap, whatever its kind). A REJECTED command for a never-created task takes seq 1 of that id.

Tasks RMF dispatched itself (an RMF task state without our label, ``origin`` ``rmf``) are adopted: the
first such state creates an *external* task (tenant and site from the configuration, ``external_id``
RMF's booking id, a spec with RMF's category, ``max_attempts`` 1 and the labels ``origin=rmf`` and
``rmf_booking_id``): CREATED, then straight to the state RMF reports (DISPATCHED, EXECUTING or a terminal
one), robot and reason from RMF. Later states follow the usual ``observe`` rules. Dispatch never assigns
an external task (it is never QUEUED). Without a configured RMF tenant the state is logged and ignored.

Event time: an event's ``occurred_at`` is its input's, never earlier than the task's previous event.
Timers are evaluated in event time: before any input stamped at or after an armed timer's due time is
applied, the timer's transition happens first (at the due time), whether or not the due timer itself has
arrived yet, so the outcome does not depend on how late the timer service delivers.
"""

from __future__ import annotations

import logging
from typing import assert_never

from schemas.records import TaskSpec, task_spec
from topologies.tasks import deps
from topologies.tasks.config import TasksConfig
from topologies.tasks.core import Slot, TaskRun, TaskState, new_task_state
from topologies.tasks.records import (
    DEP,
    RUNNING,
    TERMINAL,
    AssignInput,
    CancelInput,
    CreateInput,
    ObserveInput,
    Output,
    TaskInput,
    TimerInput,
    UnassignInput,
    inbox_message,
    tombstone,
)

__all__ = ["external_spec", "step"]

logger = logging.getLogger(__name__)

_COMMANDS = ("create", "cancel", "assign", "unassign")


def step(state: TaskState | None, inp: TaskInput, cfg: TasksConfig) -> tuple[TaskState | None, list[Output]]:
    """Apply one normalized input to one task. Returns the new state (the same object if unchanged)."""
    if state is None:
        if inp["type"] == "dep":
            if inp["msg"] == "probe":
                return None, [inbox_message(DEP, inp["from"], deps.reply_to_probe_of_unknown(inp))]
            return None, []
        if inp["type"] == "observe" and inp.get("origin") == "rmf":
            return _adopt(inp, cfg)
        if inp["type"] not in _COMMANDS:
            if inp["type"] == "observe" and inp.get("source") == "rmf":
                logger.warning(
                    "RMF reports %s for task %s, which is not created (yet): ignored",
                    inp["observed"], inp["task_id"], extra={"task_id": inp["task_id"]},
                )  # fmt: skip
            return None, []  # a fact or a timer about a task we never saw: nothing to apply it to
        state = new_task_state(inp)
        fresh = True
    else:
        fresh = False
    run = TaskRun(state, cfg, inp)
    if inp["type"] == "timer":
        _on_timer(run, inp)
    else:
        _fire_overdue_timers(run)
        if inp["type"] == "observe":  # the most frequent first
            _on_observe(run, inp)
        elif inp["type"] == "assign":
            _on_assign(run, inp)
        elif inp["type"] == "create":
            _on_create(run, inp)
        elif inp["type"] == "unassign":
            _on_unassign(run, inp)
        elif inp["type"] == "cancel":
            _on_cancel(run, inp)
        elif inp["type"] == "dep":
            deps.on_dep_message(run, inp)
        else:
            assert_never(inp)
    if not fresh and run.s == state:
        return state, run.out
    return run.s, run.out


# --------------------------------------------------------------------------------------------- adopt
def external_spec(inp: ObserveInput) -> TaskSpec:
    """The spec of a task RMF dispatched itself, from its task state."""
    labels = {"origin": "rmf", "rmf_booking_id": str(inp.get("external_id") or inp["task_id"])}
    return task_spec(category=inp.get("category") or "rmf", fleet_id=inp.get("fleet"), labels=labels)


def _adopt(inp: ObserveInput, cfg: TasksConfig) -> tuple[TaskState | None, list[Output]]:
    """A first RMF state of a task RMF dispatched itself: the external task, CREATED then as reported."""
    if cfg.rmf_tenant_id is None:
        logger.warning(
            "RMF task %s (not created by fleetstream) reports %s: ignored, no RMF tenant is configured "
            "(FLEET_RMF_TENANT_ID of the tasks processor)",
            inp["task_id"], inp["observed"], extra={"task_id": inp["task_id"]},
        )  # fmt: skip
        return None, []
    requester = inp.get("requester")
    create: CreateInput = {
        "type": "create",
        "task_id": inp["task_id"],
        "tenant_id": cfg.rmf_tenant_id,
        "site_id": cfg.rmf_site_of(inp.get("fleet")),
        "occurred_at": inp["occurred_at"],
        "event_id": inp.get("event_id"),
        "spec": external_spec(inp),
        "idempotency_key": None,
        "requested_by": f"rmf:{requester}" if requester else "rmf",
    }
    run = TaskRun(new_task_state(create), cfg, inp)
    run.s["external_id"] = inp.get("external_id")
    run.create(create)
    observed = inp["observed"]
    run.s["attempt"], run.s["attempt_open"] = 1, observed not in TERMINAL
    run.s["robot_id"] = inp.get("robot")
    run.transition(observed, inp.get("reason"))
    logger.info(
        "adopted RMF task %s (%s) as an external task, %s",
        inp["task_id"], create["spec"]["category"], observed,
        extra={"task_id": inp["task_id"], "tenant_id": cfg.rmf_tenant_id},
    )  # fmt: skip
    return run.s, run.out


# --------------------------------------------------------------------------------------------- create
def _on_create(run: TaskRun, inp: CreateInput) -> None:
    s = run.s
    if s["status"] is not None or s["pending"] is not None:
        if inp.get("tenant_id") != s["tenant_id"]:
            run.reject("task id already in use")
        elif s["pending"] is not None:
            run.duplicate("creation in progress (dependency check)")
        elif inp.get("spec") != s["spec"]:
            run.duplicate("task already exists; this CREATE has a different spec, the original is kept")
        else:
            run.duplicate("task already exists")
        return
    spec = inp["spec"]
    prerequisites = list(dict.fromkeys(spec.get("depends_on") or []))
    s["tenant_id"], s["site_id"] = inp["tenant_id"], inp["site_id"]
    if run.task_id in prerequisites:
        run.reject(f"dependency cycle: {run.task_id} depends on itself")
    elif len(prerequisites) > run.cfg.max_dependencies:
        run.reject(f"too many dependencies: {len(prerequisites)} > {run.cfg.max_dependencies}")
    elif prerequisites:
        deps.start_check(run, inp, prerequisites)
    else:
        run.create(inp)
        run.transition("QUEUED", "created")
        deps.tell_subscribers(run)


# --------------------------------------------------------------------------------------------- cancel
def _unknown_to(run: TaskRun, inp: CancelInput | AssignInput | UnassignInput) -> bool:
    """True (and REJECTED) when the task does not exist for the input's tenant."""
    s = run.s
    if inp.get("tenant_id") != s["tenant_id"] or (s["status"] is None and s["pending"] is None):
        run.reject("unknown task", None if inp["type"] == "cancel" else inp.get("robot_id"))
        return True
    return False


def _on_cancel(run: TaskRun, inp: CancelInput) -> None:
    if _unknown_to(run, inp):
        return
    s = run.s
    reason = inp.get("reason") or (
        f"cancelled by {inp['requested_by']}" if inp.get("requested_by") else "cancelled"
    )
    if s["pending"] is not None:
        if s["pending"]["cancel"] is None:  # applied right after the creation
            s["pending"] = {**s["pending"], "cancel": reason}
    elif s["status"] in TERMINAL:
        run.reject(f"task is already {s['status']}")
    else:
        run.transition("CANCELLED", reason)


# --------------------------------------------------------------------------------------------- assign
def _on_assign(run: TaskRun, inp: AssignInput) -> None:
    if _unknown_to(run, inp):
        return
    s = run.s
    robot = inp["robot_id"]
    pinned = run.spec.get("robot_id")
    if s["pending"] is not None:
        run.reject("task is not created yet (dependency check in progress)", robot)
    elif s["status"] != "QUEUED":
        held = f" to {s['robot_id']}" if s["status"] in RUNNING else ""
        run.reject(f"cannot assign a {s['status']} task{held}", robot)
    elif pinned and pinned != robot:
        run.reject(f"task is pinned to robot {pinned}", robot)
    else:
        if not s["attempt_open"]:
            s["attempt"] += 1
            s["attempt_open"] = True
        s["robot_id"] = robot
        run.transition("ASSIGNED", inp.get("reason") or f"assigned to {robot}")
        timeout = run.spec.get("timeout_ms") or run.cfg.default_timeout_ms
        if timeout:
            run.arm("timeout", run.at + int(timeout), {"attempt": s["attempt"], "timeout_ms": int(timeout)})


def _on_unassign(run: TaskRun, inp: UnassignInput) -> None:
    if _unknown_to(run, inp):
        return
    s = run.s
    robot = inp.get("robot_id")
    if s["status"] not in RUNNING:
        run.reject(f"cannot unassign a {s['status'] or 'not yet created'} task", robot)
    elif robot and robot != s["robot_id"]:
        run.reject(f"task is held by {s['robot_id']}, not {robot}", robot)
    else:
        run.disarm("timeout")
        s["robot_id"] = None
        run.transition("QUEUED", inp.get("reason") or f"unassigned from {robot or 'its robot'}")


# --------------------------------------------------------------------------------------------- observe
def _on_observe(run: TaskRun, inp: ObserveInput) -> None:
    s = run.s
    status = s["status"]
    if status is None or s["pending"] is not None:
        return
    if inp.get("tenant_id") and inp["tenant_id"] != s["tenant_id"]:
        return
    robot = inp.get("robot_id")
    if inp.get("source") == "telemetry" and robot and s["robot_id"] and robot != s["robot_id"]:
        return  # another robot still reports this task (a previous attempt)
    if inp.get("external_id") and not s["external_id"] and status in RUNNING:
        s["external_id"] = inp["external_id"]
    observed = inp["observed"]
    reason = inp.get("reason")
    if observed == "DISPATCHED" and status == "ASSIGNED":
        run.transition("DISPATCHED", reason)
    elif observed == "EXECUTING" and status in ("ASSIGNED", "DISPATCHED"):
        run.transition("EXECUTING", reason)
    elif observed == "SUCCEEDED" and status in RUNNING:
        run.transition("SUCCEEDED", reason)
    elif observed == "FAILED" and status in RUNNING:
        _attempt_failed(run, reason or "the robot reported a failure")
    elif observed == "CANCELLED" and status in RUNNING:
        run.transition("CANCELLED", reason or f"cancelled by {inp.get('source')}")


def _attempt_failed(run: TaskRun, reason: str) -> None:
    s = run.s
    run.disarm("timeout")
    s["attempt_open"] = False
    attempt, most = s["attempt"], int(run.spec.get("max_attempts") or 1)
    if attempt < most:
        s["robot_id"] = None
        delay = run.cfg.backoff_ms(attempt)
        run.transition("RETRYING", f"attempt {attempt} of {most} failed: {reason}; retry in {delay} ms")
        run.arm("retry", run.at + delay, {"attempt": attempt})
    else:
        run.transition("FAILED", f"attempt {attempt} of {most} failed: {reason}")


# --------------------------------------------------------------------------------------------- timers
def _fire(run: TaskRun, slot: Slot) -> None:
    """The armed ``slot`` timer is due: its transition, stamped with its due time."""
    s = run.s
    armed = s[slot]
    assert armed is not None  # the callers fire an armed timer only
    input_at = run.at
    run.at = max(int(armed["due"]), int(s["last_at"] or 0))
    run.out.append(tombstone(armed["id"]))
    s[slot] = None
    if slot == "timeout":
        s["attempt_open"] = False
        run.transition("TIMED_OUT", f"attempt {s['attempt']} timed out")
    else:
        run.transition("QUEUED", f"retry backoff elapsed; attempt {s['attempt'] + 1} next")
    run.at = max(input_at, run.at)


def _fire_overdue_timers(run: TaskRun) -> None:
    s = run.s
    if s["timeout"] and s["status"] in RUNNING and run.at >= s["timeout"]["due"]:
        _fire(run, "timeout")
    if s["retry"] and s["status"] == "RETRYING" and run.at >= s["retry"]["due"]:
        _fire(run, "retry")


def _on_timer(run: TaskRun, inp: TimerInput) -> None:
    s = run.s
    timer_id = inp["timer_id"]
    if s["timeout"] and s["timeout"]["id"] == timer_id and s["status"] in RUNNING:
        _fire(run, "timeout")
    elif s["retry"] and s["retry"]["id"] == timer_id and s["status"] == "RETRYING":
        _fire(run, "retry")
    else:
        run.out.append(tombstone(timer_id))  # stale (disarmed since): just clean the compacted topic
