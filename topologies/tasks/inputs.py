"""Normalization of every input of the tasks topology into the inbox's plain input dicts.

Each ``from_*`` function takes one decoded source record and returns the inputs it means (often none:
a decision about a robot, telemetry without a task). A record that can never be applied (no task id,
a CREATE without a spec, an unknown command) raises :class:`~schemas.errors.RejectedRecord` and goes to
the dead-letter topic; whether a well-formed input is *legal* is the state machine's business.

RMF task states (``rmf.task_states``, rmf_api_msgs ``task_state_update``) map onto our states as follows
(the task's ``status`` wins over ``dispatch.status`` once the task has started):

=====================================================  ==============  =================================
RMF                                                    ours            note
=====================================================  ==============  =================================
dispatch.status queued / selected / dispatched         DISPATCHED      RMF has the task, not started
status uninitialized / queued / standby                DISPATCHED      waiting to begin
status underway / blocked / delayed / error            EXECUTING       ``error`` waits for an operator;
                                                                       the attempt timeout still runs
status completed                                       SUCCEEDED
status failed, dispatch.status failed_to_assign        FAILED          RETRYING while attempts remain
status canceled / killed, dispatch canceled_in_flight  CANCELLED
status skipped                                         (ignored)       a phase was skipped
=====================================================  ==============  =================================

The reason of the resulting event reads ``RMF <status>[ on <fleet>/<robot>][: <RMF's dispatch errors>]``,
so a refusal fails the task with RMF's own words.

Which task: the ``booking.labels`` entry ``fleetstream_task_id=<id>`` (the RMF sink sets it when it
submits), else ``booking.id`` itself; ``booking.id`` is kept as the event's ``external_id``. A state
without our label is of a task RMF dispatched itself (``origin`` ``rmf``): the state machine adopts it
as an external task (see ``machine``).

Limits: a command whose ``occurred_at`` lies more than ``future_skew_ms`` after the time it was produced
(its Kafka timestamp) is refused, as telemetry is; so is one past the size limits of ``schemas.limits``
(per field here, per record in the builder's decoder), naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict, cast

from schemas import limits
from schemas.errors import RejectedRecord
from schemas.records import Decision, RobotTelemetry, TaskCommand, TaskSchedule, TaskSpec, Timer
from topologies import timers
from topologies.tasks import cron
from topologies.tasks.records import (
    AssignInput,
    CancelInput,
    CreateInput,
    FireInput,
    InboxInput,
    ObserveInput,
    ScheduleInput,
    TimerInput,
    UnassignInput,
)

__all__ = [
    "RMF_DISPATCH_STATUS",
    "RMF_STATUS",
    "RMF_TASK_LABEL",
    "TELEMETRY_PHASES",
    "check_command_limits",
    "check_time",
    "from_command",
    "from_decision",
    "from_due_timer",
    "from_rmf",
    "from_schedule",
    "from_telemetry",
    "inbox_key",
    "validate_spec",
]

RMF_TASK_LABEL = "fleetstream_task_id"
RMF_STATUS: dict[str, str | None] = {
    "uninitialized": "DISPATCHED",
    "queued": "DISPATCHED",
    "standby": "DISPATCHED",
    "underway": "EXECUTING",
    "blocked": "EXECUTING",
    "delayed": "EXECUTING",
    "error": "EXECUTING",
    "completed": "SUCCEEDED",
    "failed": "FAILED",
    "canceled": "CANCELLED",
    "killed": "CANCELLED",
    "skipped": None,
}
RMF_DISPATCH_STATUS: dict[str, str | None] = {
    "queued": "DISPATCHED",
    "selected": "DISPATCHED",
    "dispatched": "DISPATCHED",
    "failed_to_assign": "FAILED",
    "canceled_in_flight": "CANCELLED",
}
#: Robot-reported task phases -> the state they report.
TELEMETRY_PHASES = {
    "STARTED": "EXECUTING",
    "IN_PROGRESS": "EXECUTING",
    "COMPLETED": "SUCCEEDED",
    "FAILED": "FAILED",
}
_STARTED = {"EXECUTING", "SUCCEEDED", "FAILED", "CANCELLED"}


class _Base(TypedDict):
    """The fields every input of a command, decision or telemetry record starts with."""

    task_id: str
    tenant_id: str
    site_id: str
    occurred_at: int
    event_id: str | None


def inbox_key(inp: InboxInput) -> str:
    """The inbox key of an input: the schedule id for schedule inputs, else the task id."""
    if inp["type"] == "schedule" or inp["type"] == "fire":
        return str(inp["schedule_id"])
    return str(inp["task_id"])


def _text(record: Mapping[str, object], field: str) -> str:
    value = record.get(field)
    if not isinstance(value, str) or not value:
        raise RejectedRecord(f"{field} is missing or empty")
    return value


def _check_key(key: Any, expected: str, field: str) -> None:
    if key is not None and key != expected:
        raise RejectedRecord(f"record key {key!r} does not match {field} {expected!r}")


def _too_long(field: str, value: Any, most: int) -> None:
    if isinstance(value, str) and len(value) > most:
        raise RejectedRecord(f"{field} is {len(value)} characters long; at most {most}")


def _list_limits(field: str, value: Any) -> None:
    if isinstance(value, list):
        if len(value) > limits.TASK_LIST_MAX:
            raise RejectedRecord(f"{field} has {len(value)} entries; at most {limits.TASK_LIST_MAX}")
        for item in value:
            _too_long(f"{field}[]", item, limits.TASK_LIST_ITEM_MAX)


def check_spec_limits(spec: TaskSpec, field: str = "spec") -> None:
    """RejectedRecord naming the first field of a task spec past ``schemas.limits``."""
    _too_long(f"{field}.category", spec.get("category"), limits.TASK_TEXT_MAX)
    for name in ("pickup_node", "dropoff_node", "fleet_id", "robot_id"):
        _too_long(f"{field}.{name}", spec.get(name), limits.TASK_ID_MAX)
    _list_limits(f"{field}.required_capabilities", spec.get("required_capabilities"))
    _list_limits(f"{field}.depends_on", spec.get("depends_on"))
    labels = spec.get("labels") or {}
    if isinstance(labels, dict):
        if len(labels) > limits.TASK_LABELS_MAX:
            raise RejectedRecord(
                f"{field}.labels has {len(labels)} entries; at most {limits.TASK_LABELS_MAX}"
            )
        for key, value in labels.items():
            _too_long(f"{field}.labels key", key, limits.TASK_LABEL_KEY_MAX)
            _too_long(f"{field}.labels[{key[:64]}]", value, limits.TASK_LABEL_VALUE_MAX)
    payload = spec.get("payload_json")
    if isinstance(payload, str) and len(payload.encode()) > limits.TASK_PAYLOAD_MAX_BYTES:
        raise RejectedRecord(
            f"{field}.payload_json is {len(payload.encode())} bytes; at most {limits.TASK_PAYLOAD_MAX_BYTES}"
        )


def check_command_limits(record: TaskCommand) -> None:
    """RejectedRecord naming the first field of a TaskCommand past ``schemas.limits``."""
    for name in ("task_id", "idempotency_key", "timer"):
        _too_long(name, record.get(name), limits.TASK_ID_MAX)
    for name in ("reason", "requested_by"):
        _too_long(name, record.get(name), limits.TASK_TEXT_MAX)
    spec = record.get("spec")
    if isinstance(spec, dict):
        check_spec_limits(spec)


def check_time(record: TaskCommand, now_ms: int, future_skew_ms: int) -> None:
    """RejectedRecord when ``occurred_at`` lies more than ``future_skew_ms`` after ``now_ms`` (the time the
    record was produced): the same rule as telemetry's."""
    ahead = int(record["occurred_at"]) - now_ms
    if ahead > future_skew_ms:
        raise RejectedRecord(
            f"occurred_at {record['occurred_at']} is {ahead} ms in the future (allowed clock skew {future_skew_ms} ms)"
        )


def validate_spec(spec: Any) -> TaskSpec:
    """A TaskSpec the state machine can work with, or RejectedRecord with what is wrong."""
    if not isinstance(spec, dict):
        raise RejectedRecord("CREATE without a spec")
    if not isinstance(spec.get("category"), str) or not spec["category"]:
        raise RejectedRecord("spec.category is missing")
    priority = spec.get("priority", 5)
    if not isinstance(priority, int) or not 0 <= priority <= 10:
        raise RejectedRecord(f"spec.priority {priority!r} is not within 0..10")
    attempts = spec.get("max_attempts", 3)
    if not isinstance(attempts, int) or attempts < 1:
        raise RejectedRecord(f"spec.max_attempts {attempts!r} must be at least 1")
    timeout = spec.get("timeout_ms")
    if timeout is not None and (not isinstance(timeout, int) or timeout <= 0):
        raise RejectedRecord(f"spec.timeout_ms {timeout!r} must be positive")
    depends = spec.get("depends_on") or []
    if not isinstance(depends, list) or not all(isinstance(d, str) and d for d in depends):
        raise RejectedRecord("spec.depends_on must be a list of task ids")
    if spec.get("on_dependency_failure", "CANCEL") not in ("CANCEL", "FAIL"):
        raise RejectedRecord(f"spec.on_dependency_failure {spec.get('on_dependency_failure')!r} is unknown")
    return cast("TaskSpec", spec)


def _base(record: TaskCommand | Decision | RobotTelemetry, task_id: str) -> _Base:
    return {
        "task_id": task_id,
        "tenant_id": _text(record, "tenant_id"),
        "site_id": record.get("site_id") or "",
        "occurred_at": int(record["occurred_at"]),
        "event_id": record.get("event_id"),
    }


def from_command(record: TaskCommand, key: Any = None) -> list[CreateInput | CancelInput | TimerInput]:
    """TaskCommand (``task.commands``) -> ``create`` / ``cancel`` / ``timer``."""
    task_id = _text(record, "task_id")
    _check_key(key, task_id, "task_id")
    check_command_limits(record)
    command = record.get("command")
    base = _base(record, task_id)
    if command == "CREATE":
        spec = validate_spec(record.get("spec"))
        return [
            {
                **base,
                "type": "create",
                "spec": spec,
                "idempotency_key": record.get("idempotency_key"),
                "requested_by": record.get("requested_by"),
            }
        ]
    if command == "CANCEL":
        return [
            {
                **base,
                "type": "cancel",
                "reason": record.get("reason"),
                "requested_by": record.get("requested_by"),
            }
        ]
    if command == "TIMER":
        return [{**base, "type": "timer", "timer_id": _text(record, "timer")}]
    raise RejectedRecord(f"unknown command {command!r}")


def from_decision(record: Decision) -> list[AssignInput | UnassignInput]:
    """Decision (``scheduler.decisions``): ASSIGN / UNASSIGN of a task; other decisions are not ours."""
    kind, task_id = record.get("kind"), record.get("task_id")
    if kind not in ("ASSIGN", "UNASSIGN") or not task_id:
        return []
    base = _base(record, task_id)
    if kind == "ASSIGN":
        return [
            {
                **base,
                "type": "assign",
                "robot_id": _text(record, "robot_id"),
                "decision_id": record.get("decision_id"),
                "reason": record.get("reason"),
            }
        ]
    return [
        {
            **base,
            "type": "unassign",
            "robot_id": record.get("robot_id"),
            "decision_id": record.get("decision_id"),
            "reason": record.get("reason"),
        }
    ]


def from_telemetry(record: RobotTelemetry) -> list[ObserveInput]:
    """RobotTelemetry with a task and a phase -> ``observe``; everything else is not ours."""
    observed, task_id = TELEMETRY_PHASES.get(record.get("task_phase") or "NONE"), record.get("task_id")
    if observed is None or not task_id:
        return []
    reason = None
    if observed == "FAILED":
        reason = f"robot reported FAILED ({record['error_code']})" if record.get("error_code") else None
    return [
        {
            **_base(record, task_id),
            "type": "observe",
            "observed": observed,
            "robot_id": record.get("robot_id"),
            "source": "telemetry",
            "external_id": None,
            "reason": reason,
        }
    ]


def rmf_task_id(state: Mapping[str, Any]) -> tuple[str, str]:
    """``(our task id, RMF booking id)`` of an RMF task_state (the booking id for a task RMF dispatched
    itself)."""
    task_id, booking_id, _ours = _rmf_ids(state)
    return task_id, booking_id


def _rmf_ids(state: Mapping[str, Any]) -> tuple[str, str, bool]:
    booking = state.get("booking")
    if not isinstance(booking, dict) or not isinstance(booking.get("id"), str) or not booking["id"]:
        raise RejectedRecord("RMF task state without booking.id")
    for label in booking.get("labels") or []:
        name, _, value = str(label).partition("=")
        if name == RMF_TASK_LABEL and value:
            return value, booking["id"], True
    return booking["id"], booking["id"], False


def _object(parent: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = parent.get(field)
    return value if isinstance(value, dict) else {}


def rmf_observed(state: Mapping[str, Any]) -> str | None:
    """Our state for an RMF task_state (see the table in the module docstring), None to ignore."""
    status = state.get("status")
    if status is not None and status not in RMF_STATUS:
        raise RejectedRecord(f"unknown RMF task status {status!r}")
    mapped = RMF_STATUS.get(status) if status else None
    dispatch = _object(state, "dispatch")
    from_dispatch = RMF_DISPATCH_STATUS.get(dispatch.get("status") or "")
    if mapped in _STARTED or (status == "skipped"):
        return mapped
    return from_dispatch or mapped


def rmf_errors(state: Mapping[str, Any]) -> str:
    """RMF's ``dispatch.errors`` of a task_state as one line, ``category: detail (code); ...`` ("" if none)."""
    errors = _object(state, "dispatch").get("errors")
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            text = ": ".join(str(error[k]) for k in ("category", "detail") if error.get(k))
            parts.append(f"{text} ({error['code']})" if "code" in error else text)
    return "; ".join(p for p in parts if p)[:1000]


def from_rmf(message: Mapping[str, Any], timestamp_ms: int) -> list[ObserveInput]:
    """An RMF ``task_state_update`` (or a bare task_state) -> ``observe``. RMF has no event time: the
    Kafka timestamp stands in."""
    if not isinstance(message, dict):
        raise RejectedRecord("RMF message is not a JSON object")
    state = message.get("data") if message.get("type") == "task_state_update" else message
    if not isinstance(state, dict):
        raise RejectedRecord("task_state_update without data")
    task_id, booking_id, ours = _rmf_ids(state)
    observed = rmf_observed(state)
    if observed is None:
        return []
    assigned = _object(state, "assigned_to")
    booking = _object(state, "booking")
    detail = f"RMF {state.get('status') or _object(state, 'dispatch').get('status')}"
    if assigned.get("name"):
        detail += f" on {assigned.get('group')}/{assigned['name']}"
    errors = rmf_errors(state)
    if errors:
        detail += f": {errors}"
    return [
        {
            "task_id": task_id,
            "tenant_id": None,
            "site_id": None,
            "occurred_at": int(timestamp_ms),
            "event_id": None,
            "type": "observe",
            "observed": observed,
            "robot_id": None,
            "source": "rmf",
            "external_id": booking_id,
            "reason": detail,
            # what adopting a task RMF dispatched itself needs (machine._adopt)
            "origin": "fleetstream" if ours else "rmf",
            "category": state.get("category") if isinstance(state.get("category"), str) else None,
            "requester": booking.get("requester") if isinstance(booking.get("requester"), str) else None,
            "fleet": assigned.get("group") if isinstance(assigned.get("group"), str) else None,
            "robot": assigned.get("name") if isinstance(assigned.get("name"), str) else None,
        }
    ]


class _TimerBase(TypedDict):
    tenant_id: str
    site_id: str | None
    occurred_at: int
    event_id: str | None
    timer_id: str


def from_due_timer(record: Timer) -> list[TimerInput | FireInput]:
    """Timer (``timers.due.tasks``) -> ``timer`` (a task's timeout or retry) or ``fire`` (a cron fire)."""
    target = _text(record, "target_key")
    timer_id = _text(record, "timer_id")
    payload = timers.payload_of(record)
    due = int(record["due_at"])
    base: _TimerBase = {
        "tenant_id": record.get("tenant_id"),
        "site_id": record.get("site_id"),
        "occurred_at": due,
        "event_id": record.get("event_id"),
        "timer_id": timer_id,
    }
    if payload.get("kind") == "schedule.fire":
        return [{**base, "type": "fire", "schedule_id": target, "fire_at": int(payload.get("fire_at", due))}]
    return [{**base, "type": "timer", "task_id": target}]


def from_schedule(record: TaskSchedule | None, key: Any, timestamp_ms: int) -> list[ScheduleInput]:
    """TaskSchedule (``task.schedules``, compacted) -> ``schedule``; a tombstone deletes the schedule."""
    if record is None:
        if not key:
            raise RejectedRecord("schedule tombstone without a key")
        return [
            {
                "type": "schedule",
                "schedule_id": str(key),
                "record": None,
                "occurred_at": int(timestamp_ms),
                "event_id": None,
            }
        ]
    schedule_id = _text(record, "schedule_id")
    _check_key(key, schedule_id, "schedule_id")
    _text(record, "tenant_id")
    cron.validate_schedule(record)
    validate_spec(record.get("template"))
    check_spec_limits(record["template"], "template")
    return [
        {
            "type": "schedule",
            "schedule_id": schedule_id,
            "record": record,
            "occurred_at": int(record["occurred_at"]),
            "event_id": record.get("event_id"),
        }
    ]
