"""Limits the gateway enforces on task commands and schedules before it produces them.

Time: the gateway stamps every record's ``occurred_at`` with its own clock (a client cannot set it: request
models refuse unknown fields), so no command it produces lies in the future. A ``deadline`` must lie in
years 1970..9999, the instants every record may carry (:data:`MAX_TIMESTAMP_MS`); the OpenAPI schema says so.

Size: a request body of the task and schedule routes is at most ``task_max_record_bytes`` (413, in
:mod:`gateway.middleware`); a spec's ``payload`` at most ``task_max_payload_bytes`` as compact JSON (422
naming the field and the limit); the encoded record at most ``task_max_record_bytes`` (413). The tasks
topology dead-letters records past its own limits, which must be at least these.
"""

from __future__ import annotations

import orjson

from gateway.errors import ApiError, problem
from gateway.models import MAX_TIMESTAMP_MS, TaskSpecIn

__all__ = ["MAX_TIMESTAMP_MS", "check_spec"]


def check_spec(spec: TaskSpecIn, loc: list[str | int], *, max_payload_bytes: int) -> None:
    """Raise a 422 naming ``loc + ["payload"]`` when the payload is larger than ``max_payload_bytes``."""
    if spec.payload is None:
        return
    size = len(orjson.dumps(spec.payload))
    if size > max_payload_bytes:
        msg = f"payload is {size} bytes as JSON; the limit is {max_payload_bytes} bytes"
        raise ApiError(422, f"invalid request: {msg}", detail=[problem([*loc, "payload"], msg, "too_large")])
