"""Dependencies between tasks: the creation check (known, acyclic) and the fan-out of outcomes.

State is per task key, so a task cannot read its prerequisites' state. Tasks talk instead through
messages on the processor's inbox topic (keyed by the receiving task id, handled with that task's
state):

- ``probe`` D -> P when D is created with P in ``depends_on``. P answers with a ``reply``:
  ``unknown`` (P was never created, its creation was rejected, or it belongs to another tenant),
  ``refused`` (P has ``max_dependents`` already), ``pending`` (P's own check is in progress: D is kept as a
  *subscriber* and told the result later), ``exists`` (P is active: D becomes a *dependent* of P),
  ``succeeded`` or ``failed`` (P already finished).
- ``outcome`` P -> D when P reaches a terminal state, for every dependent D.
- ``chase`` for cycles among tasks whose checks are all in progress (two CREATEs racing each other):
  edge chasing (Chandy-Misra-Haas). A task blocked on a ``pending`` prerequisite sends ``chase(itself)``
  to it; a pending task forwards every initiator it has not seen to the prerequisites it is blocked on.
  An initiator that receives its own chase is on a cycle and rejects its creation; that rejection reaches
  the other members as ``rejected`` replies, so every member of the cycle is rejected.

A CREATE with prerequisites emits nothing until every prerequisite has answered (one round trip through
the inbox); then CREATED followed by WAITING (some prerequisite still active), QUEUED (all succeeded) or
CANCELLED/FAILED per ``on_dependency_failure`` (one already failed), or REJECTED (unknown dependency or
cycle: the task is not created, and a later CREATE with the same id is evaluated afresh).

Why no cycle can be accepted: a task answers ``exists`` only once it is created, and a dependent is
created only after all its answers, so every accepted edge D -> P has P created before D. Cycles can
therefore only form among tasks still in their check, which the chase detects.

Limits: "known" means P's CREATE was processed before D's probe reached P's key. Producers must create
prerequisites first (the gateway waits for the produce acknowledgement); after a long outage the inbox
partitions catch up independently, so a dependent created within moments of its prerequisite can in rare
cases be rejected as ``unknown`` and must be re-sent. A rejected dependent stays registered at
prerequisites that had answered ``exists``; their later ``outcome`` is ignored.
"""

from __future__ import annotations

from topologies.tasks.core import Pending, TaskRun
from topologies.tasks.records import TERMINAL, CreateInput, DepAnswer, DepInput

__all__ = [
    "dependency_failed",
    "finish_creation",
    "on_dep_message",
    "reject_creation",
    "reply_to_probe_of_unknown",
    "start_check",
    "tell_subscribers",
]

_REFUSING = {"unknown": "is unknown", "rejected": "was rejected", "refused": "refuses more dependents"}


def start_check(run: TaskRun, create: CreateInput, deps: list[str]) -> None:
    """Hold the CREATE and probe every prerequisite."""
    run.s["pending"] = {
        "create": create,
        "unanswered": list(deps),
        "blocked": [],
        "outstanding": [],
        "failed": [],
        "chased": [],
        "cancel": None,
    }
    for dep in deps:
        run.send(dep, "probe")


def reply_to_probe_of_unknown(inp: DepInput) -> DepInput:
    """The reply of a task id that has no state at all (never seen): ``unknown``."""
    return {
        "type": "dep",
        "msg": "reply",
        "status": "unknown",
        "state": None,
        "task_id": inp["from"],
        "from": inp["task_id"],
        "tenant_id": inp.get("tenant_id"),
        "site_id": inp.get("site_id"),
        "occurred_at": inp["occurred_at"],
        "event_id": None,
    }


def on_dep_message(run: TaskRun, inp: DepInput) -> None:
    msg = inp["msg"]
    if msg == "probe":
        _on_probe(run, inp)
    elif msg in ("reply", "outcome"):
        _on_answer(run, inp)
    elif msg == "chase":
        _on_chase(run, inp)


def _on_probe(run: TaskRun, inp: DepInput) -> None:
    prober = inp["from"]
    s = run.s
    if inp.get("tenant_id") != s["tenant_id"] or (s["status"] is None and s["pending"] is None):
        run.send(prober, "reply", status="unknown", state=None)
    elif s["pending"] is not None:
        if prober not in s["subscribers"]:
            if len(s["subscribers"]) + len(s["dependents"]) >= run.cfg.max_dependents:
                run.send(prober, "reply", status="refused", state=None)
                return
            s["subscribers"] = [*s["subscribers"], prober]
        run.send(prober, "reply", status="pending", state=None)
    elif s["status"] in TERMINAL:
        status: DepAnswer = "succeeded" if s["status"] == "SUCCEEDED" else "failed"
        run.send(prober, "reply", status=status, state=s["status"])
    else:
        if prober not in s["dependents"]:
            if len(s["dependents"]) >= run.cfg.max_dependents:
                run.send(prober, "reply", status="refused", state=None)
                return
            s["dependents"] = [*s["dependents"], prober]
        run.send(prober, "reply", status="exists", state=s["status"])


def _on_answer(run: TaskRun, inp: DepInput) -> None:
    """A reply to our probe, or the outcome of a prerequisite we depend on."""
    dep = inp["from"]
    status = inp.get("status") or ("succeeded" if inp.get("state") == "SUCCEEDED" else "failed")
    pending = run.s["pending"]
    if pending is not None:
        _on_answer_while_pending(run, pending, dep, status, inp.get("state"))
    elif inp["msg"] == "outcome" and run.status == "WAITING" and dep in run.s["waiting_on"]:
        if status == "failed":
            dependency_failed(run, dep, inp.get("state") or "FAILED")
            return
        run.s["waiting_on"] = [d for d in run.s["waiting_on"] if d != dep]
        if not run.s["waiting_on"]:
            run.transition("QUEUED", "all dependencies succeeded")
    # Otherwise: an answer for a task that is not waiting for it (cancelled meanwhile, rejected...).


def _on_answer_while_pending(
    run: TaskRun, pending: Pending, dep: str, status: str, dep_state: str | None
) -> None:
    waiting = dep in pending["unanswered"] or dep in pending["blocked"]
    if not waiting and dep not in pending["outstanding"]:
        return  # not ours (stale)
    pending = pending.copy()
    run.s["pending"] = pending
    if status in _REFUSING:
        reject_creation(run, f"dependency {dep} {_REFUSING[status]}")
        return
    pending["unanswered"] = [d for d in pending["unanswered"] if d != dep]
    if status == "pending":
        if dep not in pending["blocked"]:
            pending["blocked"] = [*pending["blocked"], dep]
            for initiator in [run.task_id, *pending["chased"]]:
                run.send(dep, "chase", initiator=initiator)
        return
    pending["blocked"] = [d for d in pending["blocked"] if d != dep]
    pending["outstanding"] = [d for d in pending["outstanding"] if d != dep]
    if status == "exists":
        pending["outstanding"] = [*pending["outstanding"], dep]
    elif status == "failed":
        pending["failed"] = [*pending["failed"], [dep, dep_state or "FAILED"]]
    if not pending["unanswered"] and not pending["blocked"]:
        finish_creation(run)


def _on_chase(run: TaskRun, inp: DepInput) -> None:
    pending = run.s["pending"]
    if pending is None:
        return
    initiator = inp["initiator"]
    if initiator == run.task_id:
        reject_creation(run, f"dependency cycle: {run.task_id} depends on itself through {inp['from']}")
        return
    if initiator in pending["chased"]:
        return
    run.s["pending"] = {**pending, "chased": [*pending["chased"], initiator]}
    for dep in pending["blocked"]:
        run.send(dep, "chase", initiator=initiator)


def reject_creation(run: TaskRun, reason: str) -> None:
    """The check failed: REJECTED, the task stays uncreated, tasks waiting on its creation are told."""
    run.s["pending"] = None
    run.reject(reason)
    for subscriber in run.s["subscribers"]:
        run.send(subscriber, "reply", status="rejected", state=None)
    run.s["subscribers"] = []


def finish_creation(run: TaskRun) -> None:
    """Every prerequisite answered: create, then WAITING / QUEUED / CANCELLED / FAILED."""
    pending = run.s["pending"]
    assert pending is not None  # called while the check is in progress
    run.s["pending"] = None
    run.create(pending["create"])
    if pending["cancel"] is not None:
        run.transition("CANCELLED", pending["cancel"])
    elif pending["failed"]:
        dep, dep_state = pending["failed"][0]
        dependency_failed(run, dep, dep_state)
    elif pending["outstanding"]:
        run.s["waiting_on"] = list(pending["outstanding"])
        run.transition("WAITING", f"waiting for {len(run.s['waiting_on'])} dependencies")
    else:
        run.transition("QUEUED", "all dependencies succeeded")
    tell_subscribers(run)


def tell_subscribers(run: TaskRun) -> None:
    """Answer the probes that arrived while this task's own check was in progress."""
    for subscriber in run.s["subscribers"]:
        if run.status in TERMINAL:
            status: DepAnswer = "succeeded" if run.status == "SUCCEEDED" else "failed"
            run.send(subscriber, "reply", status=status, state=run.status)
        else:
            if subscriber not in run.s["dependents"]:
                run.s["dependents"] = [*run.s["dependents"], subscriber]
            run.send(subscriber, "reply", status="exists", state=run.status)
    run.s["subscribers"] = []


def dependency_failed(run: TaskRun, dep: str, dep_state: str) -> None:
    """A prerequisite ended without success: CANCELLED or FAILED per ``on_dependency_failure``."""
    policy = run.spec.get("on_dependency_failure") or "CANCEL"
    new = "FAILED" if policy == "FAIL" else "CANCELLED"
    run.transition(new, f"dependency {dep} ended {dep_state}")
