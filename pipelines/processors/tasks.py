"""Tasks topology: commands, idempotency, state machine, dependencies, timeouts, retries, cron -> task.events.

Consumes ``task.commands``, ``scheduler.decisions`` (ASSIGN/UNASSIGN), ``robot.telemetry`` (records with a
task phase), ``rmf.task_states``, ``timers.due.tasks`` and ``task.schedules``; normalizes them into the
internal ``tasks.inbox`` (keyed by task id, schedule id for schedules), whose one stateful step produces
``task.events``, ``timers`` (arm / tombstone) and inbox messages (dependencies, cron creations), exactly
once. Rejected records go to ``dlq.tasks``. See ``topologies/tasks``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field
from quixstreams.models import Deserializer, SerializationContext
from quixstreams.models.serializers import JSONDeserializer, JSONSerializer

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.settings import TopologySettings
from schemas import catalog
from schemas.ids import now_ms
from schemas.quix import AvroDeserializer, AvroSerializer
from schemas.rmf import RmfJsonCodec
from topologies.tasks import (
    EVENTS,
    INBOX,
    OWNER,
    TIMERS,
    OutputSerializer,
    TasksConfig,
    build_inbox_feeds,
    build_tasks,
    inbox_key,
    output_key,
)

__all__ = ["INPUTS", "RmfDeserializer", "Settings", "build", "run"]

logger = logging.getLogger(__name__)

INPUTS = (
    "task.commands",
    "scheduler.decisions",
    "robot.telemetry",
    "rmf.task_states",
    f"timers.due.{OWNER}",
    "task.schedules",
)


class Settings(TopologySettings):
    """Settings of the tasks processor (env prefix FLEET_)."""

    default_task_timeout_s: float | None = Field(
        3600.0, gt=0, description="Attempt timeout of tasks whose spec has no timeout_ms (unset: none)."
    )
    retry_backoff_base_s: float = Field(5.0, ge=0, description="RETRYING waits base * 2^(attempt-1)...")
    retry_backoff_max_s: float = Field(300.0, ge=0, description="...capped at this.")
    max_dependencies: int = Field(100, ge=0, description="A CREATE with more prerequisites is rejected.")
    max_dependents: int = Field(10_000, ge=0, description="Dependents one task accepts.")
    misfire_grace_s: float = Field(
        60.0, ge=0, description="A cron fire handled later than this is a misfire (SKIP / FIRE_ONCE)."
    )
    tasks_from_telemetry: bool = Field(True, description="Consume robot.telemetry for task progress.")
    tasks_from_rmf: bool = Field(True, description="Consume rmf.task_states for task progress.")
    commit_interval_s: float = Field(
        0.2, gt=0, description="Checkpoint period: exactly-once output becomes visible at each checkpoint."
    )
    poll_timeout_s: float = Field(
        0.05, gt=0, le=1.0, description="Longest consumer poll; bounds how long a finished checkpoint waits."
    )
    transaction_timeout_s: float = Field(
        10.0,
        ge=1,
        le=900,
        description="A crashed instance's open transaction blocks readers at most this long.",
    )
    session_timeout_s: float = Field(
        10.0, ge=6, le=300, description="A crashed instance's partitions move to another after this long."
    )
    instance_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        description="Stable, unique id of this replica (e.g. the StatefulSet pod name). Its restart then takes "
        "its partitions back at once (static group membership) and fences the crashed predecessor's open "
        "transaction, instead of waiting session_timeout_s and transaction_timeout_s.",
    )

    def tasks_config(self) -> TasksConfig:
        return TasksConfig(
            default_timeout_ms=round(self.default_task_timeout_s * 1000)
            if self.default_task_timeout_s
            else None,
            retry_backoff_base_ms=round(self.retry_backoff_base_s * 1000),
            retry_backoff_max_ms=max(
                round(self.retry_backoff_max_s * 1000), round(self.retry_backoff_base_s * 1000)
            ),
            max_dependencies=self.max_dependencies,
            max_dependents=self.max_dependents,
            misfire_grace_ms=round(self.misfire_grace_s * 1000),
        )


class RmfDeserializer(Deserializer):
    """``rmf.task_states`` JSON, validated against the vendored rmf_api_msgs schemas."""

    def __init__(self) -> None:
        super().__init__()
        self._codec = RmfJsonCodec("rmf.task_states")

    def __call__(self, value: bytes, ctx: SerializationContext) -> Any:
        return self._codec.decode(value)


def _partitions(settings: Settings, name: str) -> int:
    if name == INBOX:
        name = "task.commands"
    return settings.partitions or catalog.topic(name).partitions


def build(settings: Settings, clock: Any = now_ms) -> ProcessorApp:
    """The tasks ProcessorApp, fully wired (not running)."""
    producer_config: dict[str, Any] = {"transaction.timeout.ms": round(settings.transaction_timeout_s * 1000)}
    consumer_config: dict[str, Any] = {"session.timeout.ms": round(settings.session_timeout_s * 1000)}
    if settings.instance_id:
        producer_config["transactional.id"] = f"{OWNER}-{settings.instance_id}"
        consumer_config["group.instance.id"] = f"{OWNER}-{settings.instance_id}"
    papp = create_processor_app(
        settings,
        OWNER,
        exactly_once=True,
        commit_interval=settings.commit_interval_s,
        producer_extra_config=producer_config,
        consumer_extra_config=consumer_config,
        # A checkpoint is only committed between polls: keep polls short so that an idle processor publishes
        # its output (a timer's transition, a dependency message) within commit_interval_s, not a second later.
        consumer_poll_timeout=settings.poll_timeout_s,
    )

    def avro_in(name: str) -> Any:
        return papp.topic(
            name,
            value_deserializer=AvroDeserializer(papp.codec(name)),
            partitions=_partitions(settings, name),
        )

    def avro_out(name: str) -> Any:
        serializer = OutputSerializer(AvroSerializer(papp.codec(name)))
        return papp.topic(name, value_serializer=serializer, partitions=_partitions(settings, name))

    inbox = papp.topic(
        INBOX,
        value_deserializer=JSONDeserializer(),
        value_serializer=OutputSerializer(JSONSerializer()),
        partitions=_partitions(settings, INBOX),
    )
    rmf = None
    if settings.tasks_from_rmf:
        rmf = papp.dataframe(
            papp.topic(
                "rmf.task_states",
                value_deserializer=RmfDeserializer(),
                partitions=_partitions(settings, "rmf.task_states"),
            )
        )
    feeds = build_inbox_feeds(
        commands=papp.dataframe(avro_in("task.commands")),
        decisions=papp.dataframe(avro_in("scheduler.decisions")),
        telemetry=papp.dataframe(avro_in("robot.telemetry")) if settings.tasks_from_telemetry else None,
        rmf_task_states=rmf,
        timers_due=papp.dataframe(avro_in(f"timers.due.{OWNER}")),
        schedules=papp.dataframe(avro_in("task.schedules")),
    )
    for feed in feeds:
        feed.to_topic(inbox, key=inbox_key)
    outputs = build_tasks(papp.dataframe(inbox), config=settings.tasks_config(), clock=clock)
    targets = {EVENTS: avro_out(EVENTS), TIMERS: avro_out(TIMERS), INBOX: inbox}
    for name, sdf in outputs.items():
        sdf.to_topic(targets[name], key=output_key)
    return papp


def run(settings: Settings) -> None:
    build(settings).run()
