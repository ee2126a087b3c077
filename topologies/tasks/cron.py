"""Cron schedules (``task.schedules``, key schedule_id): ``step_schedule(state, input, config, now)``, pure.

A schedule holds one armed timer, ``schedule:<id>:<fire ms>``, due at its next fire time (five-field cron
read in the schedule's IANA time zone). When the timer comes back, the schedule creates one task and arms
the next fire. The task id is derived from schedule id and fire time (``records.cron_task_id``), so a
fire handled twice (a re-delivered timer, a replay) can only ever produce a DUPLICATE, never a second
task; the schedule also remembers its last fire and ignores any timer that is not the one it armed.

Misfires: a fire handled more than ``misfire_grace_ms`` after its time (the processor or the timer
service was down) is *missed*. ``SKIP`` drops it; ``FIRE_ONCE`` creates one task for it, stamped with its
original fire time, standing for every fire missed during the outage. Either way the next fire is the
first one after *now*, so an outage never causes a burst.

Time zones: fires happen once per local wall-clock time. A wall time that does not exist (spring-forward
gap) fires at the first instant after the gap; a wall time that happens twice (fall-back) fires only the
first time, so a daily 02:30 job runs once and an every-30-minutes job pauses for the repeated hour.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter

from schemas.errors import RejectedRecord
from schemas.records import TaskSchedule, TaskSpec
from topologies.tasks.config import TasksConfig
from topologies.tasks.records import (
    CRON,
    FireInput,
    Output,
    ScheduleInput,
    ScheduleStepInput,
    cron_task_id,
    det_uuid7,
    inbox_message,
    timer_record,
    tombstone,
)

__all__ = ["ScheduleState", "next_fire", "step_schedule", "validate_schedule"]


class ScheduleState(TypedDict):
    """The state of one schedule (state sub-key ``schedule``): its TaskSchedule and its fires."""

    schedule_id: str
    tenant_id: str
    site_id: str
    version: str | None  # event_id of the TaskSchedule applied
    cron: str
    timezone: str
    template: TaskSpec
    enabled: bool
    misfire_policy: str
    timer_id: str | None  # the armed fire timer
    next_fire: int | None  # its due time
    last_fire: int | None
    fires: int  # tasks created
    skipped: int  # fires missed and skipped (SKIP)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise RejectedRecord(f"unknown time zone {name!r}") from exc


def validate_schedule(record: TaskSchedule) -> None:
    """RejectedRecord unless cron (five fields), time zone and misfire policy are usable."""
    expr = record.get("cron")
    if not isinstance(expr, str) or len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise RejectedRecord(f"cron {expr!r} is not a valid five-field cron expression")
    _zone(record.get("timezone") or "UTC")
    if record.get("misfire_policy", "FIRE_ONCE") not in ("SKIP", "FIRE_ONCE"):
        raise RejectedRecord(f"unknown misfire_policy {record.get('misfire_policy')!r}")
    next_fire(expr, record.get("timezone") or "UTC", int(record.get("occurred_at") or 0))


def next_fire(expr: str, timezone: str, after_ms: int) -> int:
    """The first fire time strictly after ``after_ms`` (epoch ms), read in ``timezone``."""
    zone = _zone(timezone)
    start = datetime.fromtimestamp(after_ms / 1000, UTC).astimezone(zone)
    it = croniter(expr, start)
    for _ in range(1000):
        try:
            candidate: datetime = it.get_next(datetime)
        except CroniterBadDateError as exc:  # a date that never comes, e.g. "0 0 31 2 *" (31 February)
            raise RejectedRecord(f"cron {expr!r} has no fire time after {after_ms}: {exc}") from exc
        at = round(candidate.timestamp() * 1000)
        if at <= after_ms:
            continue
        if candidate.replace(fold=0).timestamp() < candidate.timestamp():
            continue  # the second pass of a repeated (fall-back) wall time already fired in the first
        return at
    raise RejectedRecord(f"cron {expr!r} has no fire time after {after_ms}")  # pragma: no cover


def _arm(state: ScheduleState, fire_at: int, at: int, out: list[Output]) -> None:
    armed = state.get("timer_id")
    if armed:
        out.append(tombstone(armed))
    timer_id = f"schedule:{state['schedule_id']}:{fire_at}"
    state["timer_id"], state["next_fire"] = timer_id, fire_at
    out.append(
        timer_record(
            timer_id=timer_id,
            target_key=state["schedule_id"],
            due_at=fire_at,
            at=at,
            tenant_id=state["tenant_id"],
            site_id=state["site_id"] or None,
            payload={"kind": "schedule.fire", "schedule_id": state["schedule_id"], "fire_at": fire_at},
        )
    )


def _disarm(state: ScheduleState, out: list[Output]) -> None:
    armed = state.get("timer_id")
    if armed:
        out.append(tombstone(armed))
    state["timer_id"], state["next_fire"] = None, None


def _on_schedule(
    state: ScheduleState | None, inp: ScheduleInput
) -> tuple[ScheduleState | None, list[Output]]:
    out: list[Output] = []
    record = inp["record"]
    if record is None:  # deleted
        if state is not None:
            _disarm(state.copy(), out)
        return None, out
    new: ScheduleState = {
        "schedule_id": record["schedule_id"],
        "tenant_id": record["tenant_id"],
        "site_id": record.get("site_id") or "",
        "version": record.get("event_id"),
        "cron": record["cron"],
        "timezone": record.get("timezone") or "UTC",
        "template": record["template"],
        "enabled": record.get("enabled", True),
        "misfire_policy": record.get("misfire_policy") or "FIRE_ONCE",
        "timer_id": state.get("timer_id") if state else None,
        "next_fire": state.get("next_fire") if state else None,
        "last_fire": state.get("last_fire") if state else None,
        "fires": state.get("fires", 0) if state else 0,
        "skipped": state.get("skipped", 0) if state else 0,
    }
    at = int(inp["occurred_at"])
    if not new["enabled"]:
        _disarm(new, out)
        return new, out
    upcoming = next_fire(new["cron"], new["timezone"], max(at, new["last_fire"] or 0))
    if upcoming != new["next_fire"] or not new["timer_id"]:
        _arm(new, upcoming, at, out)
    return new, out


def _create_input(state: ScheduleState, fire_at: int, at: int, late: bool) -> Output:
    task_id = cron_task_id(state["tenant_id"], state["schedule_id"], fire_at)
    template = state["template"]
    labels = {**(template.get("labels") or {}), "schedule_id": state["schedule_id"], "fire_at": str(fire_at)}
    if late:
        labels["misfire"] = "FIRE_ONCE"
    return inbox_message(
        CRON,
        task_id,
        {
            "type": "create",
            "task_id": task_id,
            "tenant_id": state["tenant_id"],
            "site_id": state["site_id"],
            "occurred_at": at,
            "event_id": det_uuid7(fire_at, "cron", state["schedule_id"], fire_at),
            "spec": {**template, "labels": labels},
            "idempotency_key": f"schedule:{state['schedule_id']}:{fire_at}",
            "requested_by": f"schedule:{state['schedule_id']}",
        },
    )


def _on_fire(
    state: ScheduleState | None, inp: FireInput, cfg: TasksConfig, now_ms: int
) -> tuple[ScheduleState | None, list[Output]]:
    out = [tombstone(inp["timer_id"])]  # fired: clean it off the compacted timers topic
    if state is None or not state["enabled"] or state.get("timer_id") != inp["timer_id"]:
        return state, out  # deleted, disabled or re-armed since: a stale timer
    new = state.copy()
    fire_at = int(inp["fire_at"])
    late = now_ms - fire_at > cfg.misfire_grace_ms
    if late and new["misfire_policy"] == "SKIP":
        new["skipped"] += 1
    else:
        out.append(_create_input(new, fire_at, max(fire_at, now_ms) if late else fire_at, late))
        new["fires"] += 1
    new["last_fire"] = fire_at
    new["timer_id"] = None  # fired; _arm must not tombstone it twice
    upcoming = next_fire(new["cron"], new["timezone"], max(fire_at, now_ms) if late else fire_at)
    _arm(new, upcoming, fire_at, out)
    return new, out


def step_schedule(
    state: ScheduleState | None, inp: ScheduleStepInput, cfg: TasksConfig, now_ms: int
) -> tuple[ScheduleState | None, list[Output]]:
    """Apply a ``schedule`` (upsert/delete) or ``fire`` input to one schedule. ``now_ms`` is the wall
    clock, used only to tell a missed fire from a punctual one."""
    if inp["type"] == "schedule":
        return _on_schedule(state, inp)
    return _on_fire(state, inp, cfg, now_ms)
