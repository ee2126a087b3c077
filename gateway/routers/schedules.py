"""Cron schedules: create, list, disable (each a TaskSchedule on the compacted task.schedules topic)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter
from fastapi import APIRouter, Request, status

from gateway.deps import Operator, Producer, Schedules, Settings, Viewer
from gateway.errors import ERROR_RESPONSES, ApiError, problem
from gateway.limits import check_spec
from gateway.models import Accepted, Page, ScheduleCreate, SchedulePublic
from gateway.params import OptionalId, PathId
from schemas import catalog
from schemas.ids import now_ms, uuid7
from schemas.models import TaskSchedule

__all__ = ["router", "schedule_view_key"]

router = APIRouter(prefix="/v1/schedules", tags=["schedules"], responses=ERROR_RESPONSES)


def _view_key(tenant_id: str, schedule_id: str) -> str:
    return f"{tenant_id}/{schedule_id}"


def schedule_view_key(value: dict) -> str:
    """Key of a TaskSchedule value in the in-memory view: tenant and schedule id."""
    return _view_key(value["tenant_id"], value["schedule_id"])


def _check(body: ScheduleCreate) -> None:
    """The model checked the form of the expression and the time zone; here: does it ever fire?"""
    problems = []
    if len(body.cron.split()) != 5 or not croniter.is_valid(body.cron):
        problems.append(problem(["body", "cron"], "not a five-field cron expression", "cron"))
    else:
        start = datetime.fromtimestamp(now_ms() / 1000, UTC).astimezone(ZoneInfo(body.timezone))
        try:  # e.g. "0 0 31 2 *": well-formed, but there is no February 31st
            croniter(body.cron, start).get_next(datetime)
        except CroniterBadDateError:
            problems.append(problem(["body", "cron"], "the expression never fires", "cron"))
    if problems:
        raise ApiError(422, "invalid schedule", detail=problems)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={
        202: {
            "links": {
                "DisableSchedule": {
                    "operationId": "disable_schedule_v1_schedules__schedule_id__disable_post",
                    "parameters": {"schedule_id": "$response.body#/id"},
                }
            }
        }
    },
    summary="Create a schedule",
    description="Writes a TaskSchedule to task.schedules. The template has the limits of a task spec "
    "(POST /v1/tasks); an expression that never fires is a 422.",
)
async def create_schedule(
    body: ScheduleCreate,
    request: Request,
    principal: Operator,
    producer: Producer,
    view: Schedules,
    settings: Settings,
) -> Accepted:
    _check(body)
    check_spec(body.template, ["body", "template"], max_payload_bytes=settings.task_max_payload_bytes)
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
    await producer.send(catalog.TASK_SCHEDULES, schedule_id, record, max_bytes=settings.task_max_record_bytes)
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
    await producer.send(catalog.TASK_SCHEDULES, schedule_id, record)
    view.put(key, record.model_dump(mode="json"))
    return Accepted(id=schedule_id)
