"""RMF sink: dispatches tasks of RMF-managed fleets to an RMF API server and cancels them there.

Consumes ``task.events`` (a stateful step keeps each task's spec from its CREATED event and attaches it to
the ASSIGNED / CANCELLED events the sink acts on) and ``robot.registry`` (robots with ``managed_by = RMF``).
Publishes RMF's answers to ``rmf.task_states`` for the tasks topology (see ``sinks.rmf``). At least once,
idempotent; an unreachable RMF server pauses the consumer; undecodable records, times outside years
1970..9999 and events the sink can never act on go to ``dlq.sink-rmf`` with the reason.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from confluent_kafka import KafkaException, Producer
from pydantic import Field, SecretStr
from quixstreams import State

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.settings import PRODUCER_DEFAULTS, CommonSettings
from schemas import tracing
from schemas.catalog import RMF_TASK_STATES, ROBOT_REGISTRY, TASK_EVENTS
from schemas.records import TERMINAL_TASK_STATES
from sinks.deadletters import DeadLetterWriter
from sinks.rmf import RmfApiClient, RmfSink

__all__ = ["NAME", "Settings", "build", "enrich", "run"]

logger = logging.getLogger(__name__)

NAME = "sink-rmf"
_ACTS_ON = ("ASSIGNED", "CANCELLED")


class Settings(CommonSettings):
    """Settings of the RMF sink (env prefix FLEET_)."""

    rmf_api_url: str = Field("http://127.0.0.1:8000", description="RMF API server (rmf-web api-server).")
    rmf_api_token: SecretStr | None = Field(None, description="Bearer JWT sent to the RMF API server.")
    rmf_fleets: list[str] = Field(
        default_factory=list, description="Fleet ids (TaskSpec.fleet_id) whose tasks RMF runs."
    )
    rmf_timeout_s: float = Field(5.0, gt=0, description="Timeout of one RMF API call.")
    rmf_retry_after_s: float = Field(2.0, gt=0, description="Pause after the RMF server failed to answer.")
    rmf_cancel_attempts: int = Field(5, ge=1, description="Unanswered cancels before giving up on one.")
    commit_interval_s: float = Field(0.5, gt=0, description="Flush (and commit) period.")


def enrich(event: dict[str, Any] | None, state: State) -> dict[str, Any] | None:
    """Keep the spec of each task (from CREATED) and attach it to the events the sink acts on."""
    if not event or event.get("kind", "TRANSITION") != "TRANSITION":
        return None
    status = event.get("state")
    spec = event.get("spec")
    if status == "CREATED" and spec:
        state.set("spec", spec)
    else:
        spec = state.get("spec")
    if status in TERMINAL_TASK_STATES:
        state.delete("spec")
    return {**event, "spec": spec} if status in _ACTS_ON else None


class _TaskStatePublisher:
    """Produces task_state_update messages to ``rmf.task_states`` and waits for the ack."""

    def __init__(self, kafka_config: dict[str, Any], topic: str) -> None:
        self.topic = topic
        self._producer = Producer({**kafka_config, **PRODUCER_DEFAULTS, "client.id": f"fleet-{NAME}"})

    def __call__(self, key: str, message: dict[str, Any]) -> None:
        errors: list[Any] = []
        self._producer.produce(
            self.topic,
            key=key.encode(),
            value=orjson.dumps(message),
            headers=tracing.outgoing_headers(),  # the trace of the task event being acted on
            on_delivery=lambda e, _m: errors.append(e),
        )
        if self._producer.flush(30) or (errors and errors[0] is not None):
            raise KafkaException(errors[0] if errors else "rmf.task_states write timed out")

    def close(self) -> None:
        self._producer.flush(30)


def build(settings: Settings) -> tuple[ProcessorApp, RmfSink, list[Any]]:
    """The wired processor (not running), its sink and the resources to close."""
    papp = create_processor_app(
        settings, NAME, exactly_once=False, commit_interval=settings.commit_interval_s
    )
    client = RmfApiClient(
        settings.rmf_api_url,
        settings.rmf_api_token.get_secret_value() if settings.rmf_api_token else None,
        timeout_s=settings.rmf_timeout_s,
    )
    publisher = _TaskStatePublisher(settings.kafka_client_config(), settings.topic(RMF_TASK_STATES))
    dead_letters = DeadLetterWriter(papp.dlq.send, papp.encoders([TASK_EVENTS, ROBOT_REGISTRY]))
    sink = RmfSink(
        client,
        publisher,
        rmf_fleets=settings.rmf_fleets,
        retry_after_s=settings.rmf_retry_after_s,
        cancel_attempts=settings.rmf_cancel_attempts,
        dead_letter=dead_letters,
    )

    events = papp.avro_input(TASK_EVENTS)
    events = events.apply(enrich, stateful=True).filter(lambda v: v is not None)
    events.sink(sink)
    registrations = papp.avro_input(ROBOT_REGISTRY)
    registrations.filter(lambda v: v is not None).update(sink.register)
    return papp, sink, [client, publisher]


def run(settings: Settings) -> None:
    papp, _sink, resources = build(settings)
    try:
        papp.run()
    finally:
        for resource in resources:
            resource.close()
