"""The RMF sink: our task assignments and cancellations -> an RMF API server (see ``sinks.rmf.sink``)."""

from sinks.rmf.client import RmfApiClient, RmfRefused, RmfUnavailable
from sinks.rmf.requests import (
    ATTEMPT_LABEL,
    TASK_LABEL,
    UnsupportedTask,
    cancel_request,
    dispatch_request,
    linked_state,
    refusal_state,
)
from sinks.rmf.sink import Publish, RmfSink

__all__ = [
    "ATTEMPT_LABEL",
    "TASK_LABEL",
    "Publish",
    "RmfApiClient",
    "RmfRefused",
    "RmfSink",
    "RmfUnavailable",
    "UnsupportedTask",
    "cancel_request",
    "dispatch_request",
    "linked_state",
    "refusal_state",
]
