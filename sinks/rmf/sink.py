"""RMF sink: dispatches our tasks of RMF-managed fleets to an RMF API server and cancels them there.

Input: TaskEvent dicts (``task.events``) enriched with the task's ``spec`` by the processor (the spec is
only on the CREATED event). Per event:

- TRANSITION to ASSIGNED of an RMF task (``spec.fleet_id`` in ``rmf_fleets``, or the assigned robot is
  registered with ``managed_by = RMF``): look the attempt up on RMF by label (``fleetstream_task_id`` and
  ``fleetstream_attempt``); if RMF does not have it, POST a ``dispatch_task_request``. RMF's task state
  (its answer, or the one found) is published to ``rmf.task_states`` with our label, so the tasks topology
  links RMF's task id (``external_id``) and moves the task to DISPATCHED.
- A refusal (400 with ``errors``), or a spec RMF cannot express, publishes a task state with
  ``dispatch.status = failed_to_assign`` and RMF's errors: the tasks topology fails the attempt (RETRYING
  while attempts remain, else FAILED).
- TRANSITION to CANCELLED from a running state, not caused by RMF itself: ``cancel_task_request`` for
  the RMF task id (remembered, the event's ``external_id``, or found by label).

RMF down (connection refused, timeout, 5xx, auth) raises ``SinkBackpressureError``: Quix pauses the
partition and re-delivers the batch; what was already done is remembered, and a dispatch that may have
landed before a timeout is found by the label lookup, so nothing is dispatched twice. A cancel RMF keeps
failing to answer is given up after ``cancel_attempts`` (our task is already CANCELLED).

A spec that cannot make a valid RMF request (an unknown category, a payload the rmf_api_msgs schemas
refuse) fails the task with the reason, like a refusal. An event the sink can never act on (RMF answers
with a task state that is not valid, an id no request can carry) goes to ``dead_letter`` with the reason
(``sinks.deadletters``) and the batch goes on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from quixstreams.sinks import BatchingSink, SinkBackpressureError, SinkBatch

from schemas import tracing
from schemas.ids import now_ms
from sinks.deadletters import DeadLetter, RecordRefused, SinkRecord, refuse_always
from sinks.rmf import requests as rq
from sinks.rmf.client import RmfApiClient, RmfRefused, RmfUnavailable

__all__ = ["Publish", "RmfSink"]

logger = logging.getLogger(__name__)

#: ``publish(key, task_state_update)``: produce to rmf.task_states (and wait for the ack).
Publish = Callable[[str, dict[str, Any]], None]
_RUNNING = ("ASSIGNED", "DISPATCHED", "EXECUTING")
_MEMORY = 100_000


def _rmf_id(state: Mapping[str, Any]) -> Any:
    """RMF's task id in one of its task states (None if it has none)."""
    booking = state.get("booking")
    return booking.get("id") if isinstance(booking, Mapping) else None


class RmfSink(BatchingSink):
    """:param rmf_fleets: fleet ids whose tasks RMF runs.
    :param rmf_robots: robot id -> fleet name of robots registered with ``managed_by = RMF`` (kept up to
        date by :meth:`register`).
    """

    def __init__(
        self,
        client: RmfApiClient,
        publish: Publish,
        *,
        rmf_fleets: Iterable[str] = (),
        rmf_robots: Mapping[str, str] | None = None,
        retry_after_s: float = 2.0,
        cancel_attempts: int = 5,
        clock: Callable[[], int] = now_ms,
        dead_letter: DeadLetter = refuse_always,
    ) -> None:
        super().__init__()
        self._dead_letter = dead_letter
        self.client = client
        self._publish = publish
        self.rmf_fleets = frozenset(rmf_fleets)
        self.rmf_robots: dict[str, str] = dict(rmf_robots or {})
        self._retry_after = retry_after_s
        self._cancel_attempts = cancel_attempts
        self._clock = clock
        #: (task id, attempt) -> RMF task id, or "" when RMF refused it.
        self.dispatched: OrderedDict[tuple[str, int], str] = OrderedDict()
        self._cancel_failures: dict[str, int] = {}
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self.stats = {
            "dispatched": 0,
            "found": 0,
            "refused": 0,
            "cancelled": 0,
            "cancel_failed": 0,
            "dead_lettered": 0,
        }

    # ------------------------------------------------------------------------------------------ routing
    def register(self, registration: Mapping[str, Any]) -> None:
        """A RobotRegistration: remember (or forget) the robots RMF manages."""
        robot = registration.get("robot_id")
        if not robot:
            return
        if registration.get("managed_by") == "RMF" and registration.get("active", True):
            self.rmf_robots[robot] = registration.get("fleet_id") or ""
        else:
            self.rmf_robots.pop(robot, None)

    def fleet_of(self, event: Mapping[str, Any]) -> str | None:
        """The RMF fleet that should run the task of ``event``, or None if RMF does not manage it."""
        spec = event.get("spec") or {}
        if spec.get("fleet_id") in self.rmf_fleets:
            return str(spec["fleet_id"])
        robot = event.get("robot_id")
        if robot in self.rmf_robots:
            return self.rmf_robots[robot] or spec.get("fleet_id")
        return None

    # ------------------------------------------------------------------------------------------- writes
    def write(self, batch: SinkBatch) -> None:
        try:
            for item in batch:
                # RMF's answers published meanwhile (rmf.task_states) continue the task's trace.
                with tracing.activate(tracing.Trace(item.headers, item.value)):
                    try:
                        self.apply(item.value)
                    except RecordRefused as exc:
                        self.stats["dead_lettered"] += 1
                        logger.warning("RMF sink cannot act on a task event: %s", exc.reason)
                        self._dead_letter(SinkRecord.of(batch, item), exc)
        except RmfUnavailable as exc:
            logger.warning("RMF API server unavailable (%s); retrying in %.1f s", exc, self._retry_after)
            raise SinkBackpressureError(retry_after=self._retry_after) from exc

    def apply(self, event: Mapping[str, Any] | None) -> None:
        """Act on one enriched TaskEvent.

        :raises RmfUnavailable: try again later.
        :raises RecordRefused: the event can never be acted on (dead-lettered by :meth:`write`).
        """
        if not event or event.get("kind", "TRANSITION") != "TRANSITION":
            return
        if "robot_id" in event and "managed_by" in event:  # a RobotRegistration on the same sink
            self.register(event)
            return
        state = event.get("state")
        if state == "ASSIGNED":
            fleet = self.fleet_of(event)
            if fleet is not None:
                self._dispatch(event, fleet)
        elif (
            state == "CANCELLED"
            and event.get("previous_state") in _RUNNING
            and self.fleet_of(event) is not None
            and not str(event.get("reason") or "").startswith("RMF ")  # RMF cancelled it itself
        ):
            self._cancel(event)

    def _remember(self, key: tuple[str, int], rmf_id: str) -> None:
        self.dispatched[key] = rmf_id
        while len(self.dispatched) > _MEMORY:
            self.dispatched.popitem(last=False)

    def _find(self, task_id: str, attempt: int | None) -> dict[str, Any] | None:
        for state in self.client.find_by_label(rq.task_label(task_id)):
            if not isinstance(state, Mapping):
                continue
            labels = rq.labels_of(state)
            if labels.get(rq.TASK_LABEL) != task_id:
                continue
            if attempt is None or labels.get(rq.ATTEMPT_LABEL) == str(attempt):
                return state
        return None

    def _dispatch(self, event: Mapping[str, Any], fleet: str) -> None:
        task_id = str(event["task_id"])
        attempt = int(event.get("attempt") or 1)
        key = (task_id, attempt)
        if key in self.dispatched:
            return
        spec = event.get("spec") or {}
        extra = {"task_id": task_id, "tenant_id": event.get("tenant_id")}
        try:
            request = rq.dispatch_request(task_id, spec, fleet, attempt=attempt, now_ms=self._clock())
        except (rq.UnsupportedTask, ValueError, TypeError) as exc:  # ValueError: rmf_api_msgs refuse it
            reason = exc.reason if isinstance(exc, rq.UnsupportedTask) else str(exc)
            self._refused(key, str(spec.get("category")), [{"category": "unsupported", "detail": reason}])
            return
        found = self._find(task_id, attempt)  # dispatched before a timeout or a restart?
        if found is not None:
            self.stats["found"] += 1
            state = found
            logger.info("RMF already has %s attempt %d as %s", task_id, attempt, _rmf_id(found), extra=extra)
        else:
            try:
                state = self.client.dispatch(request)
            except RmfRefused as exc:
                self._refused(key, request["request"]["category"], exc.errors)
                return
            self.stats["dispatched"] += 1
            logger.info("dispatched %s to RMF fleet %s as %s", task_id, fleet, _rmf_id(state), extra=extra)
        try:
            rmf_id = str(state["booking"]["id"])
            linked = rq.linked_state(state, task_id)
        except (KeyError, TypeError, ValueError) as exc:
            self._remember(key, "")  # RMF has it: never dispatched again
            raise RecordRefused(
                f"RMF answered the dispatch of {task_id} with an invalid task state: {exc}"
            ) from exc
        self._publish(rmf_id, linked)
        self._remember(key, rmf_id)

    def _refused(self, key: tuple[str, int], category: str, errors: list[dict[str, Any]]) -> None:
        task_id, attempt = key
        logger.warning("RMF refused %s: %s", task_id, rq.error_text(errors), extra={"task_id": task_id})
        message = rq.refusal_state(
            task_id, category or "unknown", errors, attempt=attempt, now_ms=self._clock()
        )
        self._publish(task_id, message)
        self.stats["refused"] += 1
        self._remember(key, "")

    def _cancel(self, event: Mapping[str, Any]) -> None:
        task_id = str(event["task_id"])
        if task_id in self._cancelled:
            return
        attempt = int(event.get("attempt") or 1)
        rmf_id = self.dispatched.get((task_id, attempt)) or event.get("external_id")
        if not rmf_id and (task_id, attempt) not in self.dispatched:
            found = self._find(task_id, attempt)
            rmf_id = _rmf_id(found) if found else None
        if not rmf_id:
            self._done_cancel(task_id)  # never reached RMF (or it refused it): nothing to cancel
            return
        try:
            request = rq.cancel_request(str(rmf_id), task_id)
        except ValueError as exc:
            self._done_cancel(task_id)
            raise RecordRefused(f"no valid cancel_task_request for {rmf_id} ({task_id}): {exc}") from exc
        try:
            self.client.cancel(request)
        except RmfRefused as exc:
            logger.warning("RMF refused to cancel %s (%s): %s", rmf_id, task_id, rq.error_text(exc.errors))
            self.stats["cancel_failed"] += 1
        except RmfUnavailable:
            failures = self._cancel_failures.get(task_id, 0) + 1
            self._cancel_failures[task_id] = failures
            if failures < self._cancel_attempts:
                raise
            logger.error("RMF never answered the cancel of %s (%s); giving up", rmf_id, task_id)
            self.stats["cancel_failed"] += 1
        else:
            self.stats["cancelled"] += 1
            logger.info("cancelled RMF task %s (%s)", rmf_id, task_id, extra={"task_id": task_id})
        self._done_cancel(task_id)

    def _done_cancel(self, task_id: str) -> None:
        self._cancel_failures.pop(task_id, None)
        self._cancelled[task_id] = None
        while len(self._cancelled) > _MEMORY:
            self._cancelled.popitem(last=False)
