"""Dispatch topology: assign ready tasks to free robots per site, send robots to chargers, requeue on offline.

Consumes ``robot.status``, ``task.events``, ``site.maps`` and ``robot.registry`` (each fed into its inbox
``dispatch.inbox`` keyed by ``site_id``; the topics may have any partition counts) and produces Decisions to
``scheduler.decisions`` (key task_id, else robot_id) exactly once. Rejected records go to
``dlq.dispatch``. With ``FLEET_PLANNER_TARGET`` set, every matching with a choice (more than one robot or
task) goes to the gRPC planner behind a deadline, retries and a circuit breaker, and falls back to the
in-process greedy policy; each Decision's ``planner`` field says which one decided.
"""

from __future__ import annotations

import logging

from pydantic import Field

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.planner import CircuitBreaker, PlannerAssigner, PlannerClient
from pipelines.settings import TopologySettings
from schemas import catalog
from topologies.dispatch import (
    MAP,
    OUTPUT_TOPICS,
    REGISTRATION,
    STATUS,
    TASK,
    Assigner,
    DispatchConfig,
    build_dispatch,
    greedy_assigner,
)
from topologies.dispatch.builder import FEED_KEY, OWNER

__all__ = ["FEED_KEY", "SOURCES", "Settings", "build", "run"]

logger = logging.getLogger(__name__)

#: Kind of input -> its source topic.
SOURCES = {
    STATUS: catalog.ROBOT_STATUS,
    TASK: catalog.TASK_EVENTS,
    MAP: catalog.SITE_MAPS,
    REGISTRATION: catalog.ROBOT_REGISTRY,
}


class Settings(TopologySettings):
    """Settings of the dispatch processor (env prefix FLEET_)."""

    dispatch_nominal_speed_mps: float = Field(1.0, gt=0, description="Speed for travel times and ETAs.")
    dispatch_battery_reserve: float = Field(0.2, ge=0, le=1, description="Charge a robot must keep.")
    dispatch_battery_per_s: float = Field(0.0003, ge=0, description="Charge used per second of travel.")
    dispatch_charge_release: float = Field(0.9, ge=0, le=1, description="Charge at which a charger is freed.")
    dispatch_max_busy_density: float = Field(
        0.08,
        ge=0,
        le=1,
        description="Robots parked on a PARKING node get a task only while fewer robots than this fraction "
        "of the site's lane nodes have one (0: no limit; docs/traffic.md).",
    )
    planner_target: str | None = Field(None, description="host:port of the gRPC planner; unset: in-process.")
    planner_timeout_s: float = Field(0.25, gt=0, description="Deadline of one planner call.")
    planner_retries: int = Field(1, ge=0, le=5, description="Retries of a failed planner call (jittered).")
    planner_failure_threshold: int = Field(3, ge=1, description="Consecutive failures that open the circuit.")
    planner_cooldown_s: float = Field(10.0, ge=0, description="Open circuit: wait before a half-open probe.")
    commit_interval_s: float = Field(
        0.2, gt=0, description="Checkpoint period: exactly-once decisions become visible at each checkpoint."
    )

    def dispatch_config(self) -> DispatchConfig:
        return DispatchConfig(
            nominal_speed_mps=self.dispatch_nominal_speed_mps,
            battery_reserve=self.dispatch_battery_reserve,
            battery_per_s=self.dispatch_battery_per_s,
            charge_release=self.dispatch_charge_release,
            max_busy_density=self.dispatch_max_busy_density,
        )

    def assigner(self) -> Assigner:
        if not self.planner_target:
            return greedy_assigner
        breaker = CircuitBreaker(
            f"planner:{self.planner_target}",
            failure_threshold=self.planner_failure_threshold,
            cooldown_s=self.planner_cooldown_s,
        )
        client = PlannerClient(
            self.planner_target,
            timeout_s=self.planner_timeout_s,
            retries=self.planner_retries,
            breaker=breaker,
        )
        return PlannerAssigner(client)


def build(settings: Settings, *, feeds: bool = True) -> ProcessorApp:
    """The dispatch ProcessorApp, fully wired (not running). Without ``feeds`` it reads only its inbox:
    ``fleet replay dispatch`` (``pipelines/replay.py``) has written it, in event-time order."""
    papp = create_processor_app(
        settings, OWNER, exactly_once=True, commit_interval=settings.commit_interval_s
    )
    sources, decoders = papp.sources(SOURCES) if feeds else ({}, {})
    outputs = build_dispatch(
        sources=sources,
        inbox=papp.inbox(),
        decoders=decoders,
        config=settings.dispatch_config(),
        assigner=settings.assigner(),
    )
    papp.produce(outputs, OUTPUT_TOPICS)
    return papp


def run(settings: Settings) -> None:
    build(settings).run()
