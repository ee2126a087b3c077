"""Cron schedules: create, list, disable (each a TaskSchedule on the compacted task.schedules topic)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from fastapi import APIRouter, Request, status

from gateway.deps import Operator, Producer, Schedules, Viewer
from gateway.errors import ERROR_RESPONSES, ApiError, problem
from gateway.models import Accepted, Page, ScheduleCreate, SchedulePublic
from gateway.params import OptionalId, PathId
from schemas.ids import uuid7
from schemas.models import TaskSchedule

__all__ = ["router", "schedule_view_key"]

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=ERROR_RESPONSES)


def _view_key(tenant_id: str, schedule_id: str) -> str:
    return f"{tenant_id}/{schedule_id}"


def schedule_view_key(value: dict) -> str:
    """Key of a TaskSchedule value in the in-memory view: tenant and schedule id."""
    return _view_key(value["tenant_id"], value["schedule_id"])


def _check(body: ScheduleCreate) -> None:
    problems = []
    if len(body.cron.split()) != 5 or not croniter.is_valid(body.cron):
        problems.append(problem(["body", "cron"], "not a five-field cron expression", "cron"))
    try:
        ZoneInfo(body.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        problems.append(problem(["body", "timezone"], f"unknown time zone {body.timezone!r}", "timezone"))
    if problems:
        raise ApiError(422, "invalid schedule", detail=problems)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, summary="Create a schedule")
async def create_schedule(
    body: ScheduleCreate, request: Request, principal: Operator, producer: Producer, view: Schedules
) -> Accepted:
    _check(body)
    schedule_id = uuid7()  # never client-chosen: the topic is compacted by schedule_id across tenants
    request.state.audit_resource_id = schedule_id
    request.state.audit_site_id = body.site_id
    record = TaskSchedule(
        tenant_id=principal.tenant_id,
        site_id=body.site_id,
        schedule_id=schedule_id,
        cron=body.cron,
        timezone=body.timezone,
        template=body.template.to_record(),
        enabled=body.enabled,
        misfire_policy=body.misfire_policy,
    )
    key = _view_key(principal.tenant_id, schedule_id)
    await producer.send("task.schedules", schedule_id, record)
    view.put(key, record.model_dump(mode="json"))
    return Accepted(id=schedule_id)


@router.get("", response_model=Page[SchedulePublic], summary="List schedules")
async def list_schedules(
    principal: Viewer, view: Schedules, site_id: OptionalId = None
) -> Page[SchedulePublic]:
    items = [
        SchedulePublic.model_validate(v)
        for v in view.values()
        if v.get("tenant_id") == principal.tenant_id and (site_id is None or v.get("site_id") == site_id)
    ]
    items.sort(key=lambda s: s.schedule_id)
    return Page[SchedulePublic](items=items)


@router.post(
    "/{schedule_id}/disable",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    summary="Disable a schedule",
)
async def disable_schedule(
    schedule_id: PathId, request: Request, principal: Operator, producer: Producer, view: Schedules
) -> Accepted:
    key = _view_key(principal.tenant_id, schedule_id)
    current = view.get(key)
    if current is None:
        raise ApiError(404, f"schedule {schedule_id} not found")
    request.state.audit_site_id = current.get("site_id")
    data = {k: v for k, v in current.items() if k not in ("event_id", "occurred_at")}
    record = TaskSchedule.model_validate({**data, "enabled": False})
    await producer.send("task.schedules", schedule_id, record)
    view.put(key, record.model_dump(mode="json"))
    return Accepted(id=schedule_id)
