"""Tasks topology: commands, idempotency, state machine, dependencies, timeouts, retries, cron -> task.events.

Consumes ``task.commands``, ``scheduler.decisions`` (ASSIGN/UNASSIGN), ``robot.telemetry`` (records with a
task phase), ``rmf.task_states`` (ours, and the tasks RMF dispatched itself, adopted as external tasks when
``FLEET_RMF_TENANT_ID`` is set), ``timers.due.tasks`` and ``task.schedules``; normalizes them into the
internal ``tasks.inbox`` (keyed by task id, schedule id for schedules), whose one stateful step produces
``task.events``, ``timers`` (arm / tombstone) and inbox messages (dependencies, cron creations), exactly
once. Rejected records go to ``dlq.tasks``. See ``topologies/tasks``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.settings import TopologySettings
from schemas import catalog
from schemas.limits import FUTURE_SKEW_MS
from topologies.tasks import (
    COMMAND,
    DECISION,
    OUTPUT_TOPICS,
    OWNER,
    RMF,
    SCHEDULE,
    TELEMETRY,
    TIMER,
    TasksConfig,
    build_tasks,
)

__all__ = ["SOURCES", "Settings", "build", "run"]

logger = logging.getLogger(__name__)

#: Kind of input -> its source topic.
SOURCES = {
    COMMAND: catalog.TASK_COMMANDS,
    DECISION: catalog.SCHEDULER_DECISIONS,
    TELEMETRY: catalog.ROBOT_TELEMETRY,
    RMF: catalog.RMF_TASK_STATES,
    TIMER: catalog.timers_due(OWNER),
    SCHEDULE: catalog.TASK_SCHEDULES,
}


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
        60.0,
        ge=0,
        description="A cron fire the timer service delivers later than this is a misfire (SKIP / FIRE_ONCE).",
    )
    future_skew_s: float = Field(
        FUTURE_SKEW_MS / 1000,
        ge=0,
        description="A command stamped further than this after it was produced (its Kafka timestamp) is "
        "dead-lettered.",
    )
    rmf_tenant_id: str | None = Field(
        None,
        min_length=1,
        description="Tenant of the tasks Open-RMF dispatched itself: their states create external tasks "
        "(unset: such states are logged and ignored).",
    )
    rmf_site_id: str = Field("", description="Site of those tasks, unless rmf_fleet_sites names one.")
    rmf_fleet_sites: dict[str, str] = Field(
        default_factory=dict, description='RMF fleet name -> site id, as JSON: {"tinyRobot": "s1"}.'
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
            future_skew_ms=round(self.future_skew_s * 1000),
            rmf_tenant_id=self.rmf_tenant_id,
            rmf_site_id=self.rmf_site_id,
            rmf_fleet_sites=dict(self.rmf_fleet_sites),
        )


def build(settings: Settings) -> ProcessorApp:
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
    kinds = [
        kind
        for kind in SOURCES
        if (kind != TELEMETRY or settings.tasks_from_telemetry) and (kind != RMF or settings.tasks_from_rmf)
    ]
    sources, decoders = papp.sources({kind: SOURCES[kind] for kind in kinds})
    outputs = build_tasks(
        sources=sources, inbox=papp.inbox(), decoders=decoders, config=settings.tasks_config()
    )
    papp.produce(outputs, OUTPUT_TOPICS)
    return papp


def run(settings: Settings) -> None:
    build(settings).run()
