"""Tasks: create (idempotent), cancel, read one, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status

from gateway.deps import Hot, Operator, Pg, Producer, Viewer
from gateway.errors import ERROR_RESPONSES, ApiError, cursor_error
from gateway.models import Page, TaskAccepted, TaskCancel, TaskCreate, TaskPublic
from gateway.pagination import CursorError
from gateway.params import Cursor, Limit, OptionalId, PathId
from schemas.ids import TASK_NAMESPACE, task_id_for, uuid7
from schemas.models import CommandType, TaskCommand, TaskState

__all__ = ["TASK_NAMESPACE", "router", "task_id_for"]

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=ERROR_RESPONSES)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskAccepted,
    summary="Create a task",
    description="Writes a CREATE command to task.commands. With an `Idempotency-Key` the task id is "
    "derived from (tenant, key), so a retry yields the same id and the tasks topology creates one task.",
)
async def create_task(
    body: TaskCreate,
    request: Request,
    principal: Operator,
    producer: Producer,
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
    command = TaskCommand(
        tenant_id=principal.tenant_id,
        site_id=body.site_id,
        task_id=task_id,
        command=CommandType.CREATE,
        idempotency_key=idempotency_key,
        spec=body.spec.to_record(),
        requested_by=principal.subject,
    )
    await producer.send("task.commands", task_id, command)
    return TaskAccepted(task_id=task_id, idempotency_key=idempotency_key)


async def _find_task(hot: Hot, pg: Pg, tenant_id: str, task_id: str) -> TaskPublic | None:
    found = await hot.task(tenant_id, task_id)
    if found is None:
        found = await pg.get("tasks", tenant_id, task_id)
    return TaskPublic.model_validate(found) if found else None


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
    await producer.send("task.commands", task_id, command)
    return TaskAccepted(task_id=task_id)


@router.get("/{task_id}", response_model=TaskPublic, summary="Get a task")
async def get_task(task_id: PathId, principal: Viewer, hot: Hot, pg: Pg) -> TaskPublic:
    task = await _find_task(hot, pg, principal.tenant_id, task_id)
    if task is None:
        raise ApiError(404, f"task {task_id} not found")
    return task


@router.get("", response_model=Page[TaskPublic], summary="List tasks", description="Newest first.")
async def list_tasks(
    principal: Viewer,
    pg: Pg,
    site_id: OptionalId = None,
    state: Annotated[list[TaskState] | None, Query(description="Any of these states.")] = None,
    robot_id: OptionalId = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
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
            },
            cursor=cursor,
            limit=limit,
        )
    except CursorError as exc:
        raise cursor_error(exc) from None
    return Page[TaskPublic](
        items=[TaskPublic.model_validate(r) for r in page.items], next_cursor=page.next_cursor
    )
