"""Traffic topology: space-time reservations of robot routes, conflict detection and resolution per site.

Consumes ``robot.status`` (key robot_id), ``task.events`` (key task_id) and ``site.maps`` (key site_id),
each fed into its inbox ``traffic.inbox`` keyed by site.
Produces HOLD / RESUME / REROUTE Decisions to ``scheduler.decisions`` (key robot_id), Conflicts to
``traffic.conflicts`` (key site_id) and CONFLICT_UNRESOLVED Alerts to ``alerts`` (key robot id), exactly
once. Rejected records go to ``dlq.traffic``. See ``topologies.traffic``.
"""

from __future__ import annotations

import logging

from pydantic import Field

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.settings import TopologySettings
from schemas import catalog
from topologies.traffic import OUTPUT_TOPICS, OWNER, TrafficConfig, build_traffic
from topologies.traffic.machine import MAP, STATUS, TASK

__all__ = ["SOURCES", "Settings", "build", "run"]

logger = logging.getLogger(__name__)

#: Kind of input -> its source topic.
SOURCES = {STATUS: catalog.ROBOT_STATUS, MAP: catalog.SITE_MAPS, TASK: catalog.TASK_EVENTS}


class Settings(TopologySettings):
    """Settings of the traffic processor (env prefix FLEET_)."""

    traffic_node_margin_s: float = Field(
        0.5, ge=0, description="A waypoint reserves its node this long either side."
    )
    traffic_dwell_s: float = Field(1.0, ge=0, description="How long a robot occupies a node it passes.")
    traffic_min_headway_s: float = Field(
        3.0, ge=0, description="Minimum gap between lane entries, same direction."
    )
    traffic_clear_s: float = Field(
        1.0, ge=0, description="Hysteresis: the blocker must have cleared this long before a RESUME."
    )
    traffic_reroute_min_wait_s: float = Field(
        5.0, ge=0, description="A detour is only searched when the expected wait is at least this long."
    )
    traffic_reroute_gain_s: float = Field(2.0, ge=0, description="A detour must arrive this much earlier.")
    traffic_speed_mps: float = Field(1.0, gt=0, description="Nominal speed for timing detours.")
    traffic_stand_s: float = Field(
        15.0,
        ge=0,
        description="How long a robot is expected to stand at the end of its route before it leaves again.",
    )
    traffic_deadlock_grace_s: float = Field(
        30.0,
        ge=0,
        description="A wait-for cycle no member can break yet is retried this long (each member held) before "
        "it is reported unresolved with an alert.",
    )
    traffic_latency_s: float = Field(
        1.0,
        ge=0,
        description="How long a decision may take to reach the robot after the status that caused it "
        "(robots drive on meanwhile: a HOLD only stops a robot at a node it reaches after that).",
    )
    commit_interval_s: float = Field(
        0.2, gt=0, description="Checkpoint period: exactly-once output becomes visible at each checkpoint."
    )

    def traffic_config(self) -> TrafficConfig:
        return TrafficConfig(
            node_margin_ms=round(self.traffic_node_margin_s * 1000),
            dwell_ms=round(self.traffic_dwell_s * 1000),
            min_headway_ms=round(self.traffic_min_headway_s * 1000),
            clear_ms=round(self.traffic_clear_s * 1000),
            reroute_min_wait_ms=round(self.traffic_reroute_min_wait_s * 1000),
            reroute_gain_ms=round(self.traffic_reroute_gain_s * 1000),
            speed_mps=self.traffic_speed_mps,
            latency_ms=round(self.traffic_latency_s * 1000),
            stand_ms=round(self.traffic_stand_s * 1000),
            deadlock_grace_ms=round(self.traffic_deadlock_grace_s * 1000),
        )


def build(settings: Settings) -> ProcessorApp:
    """The traffic ProcessorApp, fully wired (not running)."""
    papp = create_processor_app(
        settings, OWNER, exactly_once=True, commit_interval=settings.commit_interval_s
    )
    sources, decoders = papp.sources(SOURCES)
    outputs = build_traffic(
        sources=sources, inbox=papp.inbox(), decoders=decoders, config=settings.traffic_config()
    )
    papp.produce(outputs, OUTPUT_TOPICS)
    return papp


def run(settings: Settings) -> None:
    build(settings).run()
