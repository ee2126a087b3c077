"""Tasks: create (idempotent), cancel, read one, list.

One task reads the same from GET /v1/tasks/{task_id} and from the list: the Postgres row, whose state is
replaced by the Redis hot view's when that one is newer (a higher ``seq``: the Postgres sink lags behind).
With Redis down the row alone answers; with Postgres down the hot view alone (``source: redis``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status

from gateway.deps import Hot, Operator, Pg, Producer, Settings, Viewer
from gateway.errors import ERROR_RESPONSES, ApiError, Unavailable, cursor_error
from gateway.limits import check_spec
from gateway.models import Page, TaskAccepted, TaskCancel, TaskCreate, TaskPublic
from gateway.pagination import CursorError
from gateway.params import Cursor, Limit, OptionalId, PathId
from gateway.routers._fallback import either
from schemas import catalog
from schemas.ids import TASK_NAMESPACE, task_id_for, uuid7
from schemas.models import CommandType, TaskCommand, TaskState

__all__ = ["TASK_NAMESPACE", "router", "task_id_for"]

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=ERROR_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskAccepted,
    responses={
        202: {
            "links": {
                "GetTask": {
                    "operationId": "get_task_v1_tasks__task_id__get",
                    "parameters": {"task_id": "$response.body#/task_id"},
                    "description": "The task, once the tasks topology has created it.",
                },
                "CancelTask": {
                    "operationId": "cancel_task_v1_tasks__task_id__cancel_post",
                    "parameters": {"task_id": "$response.body#/task_id"},
                },
            }
        }
    },
    summary="Create a task",
    description="Writes a CREATE command to task.commands. With an `Idempotency-Key` the task id is "
    "derived from (tenant, key), so a retry yields the same id and the tasks topology creates one task. "
    "The command's time is the gateway's clock. Limits: a body over `FLEET_TASK_MAX_RECORD_BYTES` (default "
    "65536) is 413; a `spec.payload` over `FLEET_TASK_MAX_PAYLOAD_BYTES` (default 16384) as JSON is 422.",
)
async def create_task(
    body: TaskCreate,
    request: Request,
    principal: Operator,
    producer: Producer,
    settings: Settings,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", min_length=1, max_length=200, description="Client key of this creation."
        ),
    ] = None,
) -> TaskAccepted:
    task_id = task_id_for(principal.tenant_id, idempotency_key) if idempotency_key else uuid7()
    request.state.audit_resource_id = task_id
    request.state.audit_site_id = body.site_id
    check_spec(body.spec, ["body", "spec"], max_payload_bytes=settings.task_max_payload_bytes)
    command = TaskCommand(
        tenant_id=principal.tenant_id,
        site_id=body.site_id,
        task_id=task_id,
        command=CommandType.CREATE,
        idempotency_key=idempotency_key,
        spec=body.spec.to_record(),
        requested_by=principal.subject,
    )
    await producer.send(catalog.TASK_COMMANDS, task_id, command, max_bytes=settings.task_max_record_bytes)
    return TaskAccepted(task_id=task_id, idempotency_key=idempotency_key)


#: What the Redis hot view of a task holds (sinks/redis.py ``task_view``): the state of its last transition.
_HOT_FIELDS = ("state", "robot_id", "attempt", "seq", "reason", "updated_at")


def _merge(row: dict[str, Any] | None, view: dict[str, Any] | None) -> TaskPublic | None:
    """The Postgres row with the hot view's state when the view is newer; either alone if only one exists."""
    if row is None:
        return TaskPublic.model_validate({**view, "source": "redis"}) if view else None
    if view is not None and int(view.get("seq") or 0) > int(row.get("seq") or 0):
        return TaskPublic.model_validate({**row, **{f: view.get(f) for f in _HOT_FIELDS}, "source": "redis"})
    return TaskPublic.model_validate({**row, "source": "postgres"})


async def _find_task(hot: Hot, pg: Pg, tenant_id: str, task_id: str) -> TaskPublic | None:
    view = await either(hot.task(tenant_id, task_id))
    row = await either(pg.get("tasks", tenant_id, task_id))
    if isinstance(row, Unavailable) and (isinstance(view, Unavailable) or view is None):
        raise row  # only Postgres could say whether the task exists
    return _merge(
        None if isinstance(row, Unavailable) else row, None if isinstance(view, Unavailable) else view
    )


@router.post(
    "/{task_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskAccepted,
    summary="Cancel a task",
    description="Writes a CANCEL command. 404 if the task is not (yet) known to the caller's tenant.",
)
async def cancel_task(
    task_id: PathId,
    body: TaskCancel,
    request: Request,
    principal: Operator,
    producer: Producer,
    settings: Settings,
    hot: Hot,
    pg: Pg,
) -> TaskAccepted:
    task = await _find_task(hot, pg, principal.tenant_id, task_id)
    if task is None:
        raise ApiError(404, f"task {task_id} not found")
    request.state.audit_site_id = task.site_id
    command = TaskCommand(
        tenant_id=principal.tenant_id,
        site_id=task.site_id or "",
        task_id=task_id,
        command=CommandType.CANCEL,
        reason=body.reason,
        requested_by=principal.subject,
    )
    await producer.send(catalog.TASK_COMMANDS, task_id, command, max_bytes=settings.task_max_record_bytes)
    return TaskAccepted(task_id=task_id)


@router.get(
    "/{task_id}",
    response_model=TaskPublic,
    summary="Get a task",
    description="The same fields as its entry in the list. With Redis or Postgres down, what the other "
    "holds (`source`); 503 only if Postgres is down and Redis does not have the task.",
)
async def get_task(task_id: PathId, principal: Viewer, hot: Hot, pg: Pg) -> TaskPublic:
    task = await _find_task(hot, pg, principal.tenant_id, task_id)
    if task is None:
        raise ApiError(404, f"task {task_id} not found")
    return task


@router.get(
    "",
    response_model=Page[TaskPublic],
    summary="List tasks",
    description="Most recently updated first, from Postgres. Every filter is exact; tasks created outside "
    "fleetstream (by Open-RMF, with `external_id`) are listed like the others.",
)
async def list_tasks(
    principal: Viewer,
    pg: Pg,
    site_id: OptionalId = None,
    state: Annotated[list[TaskState] | None, Query(description="Any of these states.")] = None,
    robot_id: OptionalId = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    external_id: Annotated[
        str | None, Query(min_length=1, max_length=256, description="The task's id in Open-RMF.")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[TaskPublic]:
    try:
        page = await pg.list(
            "tasks",
            principal.tenant_id,
            filters={
                "site_id": site_id,
                "state": [s.value for s in state] if state else None,
                "robot_id": robot_id,
                "category": category,
                "external_id": external_id,
            },
            cursor=cursor,
            limit=limit,
        )
    except CursorError as exc:
        raise cursor_error(exc) from None
    return Page[TaskPublic](
        items=[TaskPublic.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )
