"""Traffic topology: grants for the robots fleetstream coordinates, conflict monitoring for the others, per site.

Consumes ``robot.status`` and ``robot.registry`` (key robot_id), ``task.events`` (key task_id),
``site.maps`` (key site_id) and ``timers.due.traffic`` (its planning ticks), each fed into its inbox
``traffic.inbox`` keyed by site.
Produces GRANT Decisions (the nodes a robot may drive onto, exclusively) for coordinated robots and
HOLD / RESUME / REROUTE Decisions for monitored (Open-RMF) robots to ``scheduler.decisions`` (key
robot_id), Conflicts to ``traffic.conflicts`` (key site_id) and CONFLICT_UNRESOLVED / CONFLICT_CLEARED
Alerts to ``alerts`` (key robot id), exactly once. Rejected records go to ``dlq.traffic``. See
``topologies.traffic`` and docs/traffic.md.
"""

from __future__ import annotations

import logging

from pydantic import Field

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.settings import TopologySettings
from schemas import catalog
from topologies.timers import TIMER
from topologies.traffic import OUTPUT_TOPICS, OWNER, TrafficConfig, build_traffic
from topologies.traffic.builder import FEED_KEY
from topologies.traffic.site import MAP, REGISTRATION, STATUS, TASK

__all__ = ["FEED_KEY", "SOURCES", "Settings", "build", "run"]

logger = logging.getLogger(__name__)

#: Kind of input -> its source topic.
SOURCES = {
    STATUS: catalog.ROBOT_STATUS,
    REGISTRATION: catalog.ROBOT_REGISTRY,
    MAP: catalog.SITE_MAPS,
    TASK: catalog.TASK_EVENTS,
    TIMER: catalog.timers_due(OWNER),
}


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
    traffic_alert_clear_s: float = Field(
        30.0,
        ge=0,
        description="A robot's unresolved-conflict alert stays one situation until clear this long.",
    )
    traffic_alerts_per_minute: int = Field(
        30, ge=1, description="At most this many traffic alerts per site and minute (the rest are counted)."
    )
    traffic_round_s: float = Field(0.25, gt=0, description="Grants: a planning round at most this often.")
    traffic_warmup_s: float = Field(
        5.0, ge=0, description="Grants: no grant until this long after a site's first status."
    )
    traffic_lookahead_s: float = Field(
        4.0,
        gt=0,
        description="Grants: a robot is granted nodes until its grant ends this far ahead of it (covers the "
        "pipeline's latency, or robots stop at every frontier).",
    )
    traffic_max_held_nodes: int = Field(
        8, ge=2, description="Grants: the most nodes one robot holds at once."
    )
    traffic_horizon_nodes: int = Field(
        20, ge=0, description="Grants: planned nodes a GRANT shows beyond what it grants (VDA 5050 horizon)."
    )
    traffic_priority_boost_s: float = Field(
        10.0, ge=0, description="Grants: each point of task priority counts as this much more waiting."
    )
    traffic_stall_weight: float = Field(
        3.0,
        ge=0,
        description="Grants: each second a robot has waited for its next node counts as this many seconds "
        "more age (0: age alone).",
    )
    traffic_obstacle_s: float = Field(
        120.0, ge=0, description="Grants: planning cost of a node an OFFLINE or failed robot holds."
    )
    traffic_max_lane_density: float = Field(
        0.2,
        gt=0,
        le=1,
        description="Grants: robots parked off the lanes set off only while fewer than this share of the lane "
        "nodes hold robots.",
    )
    traffic_turn_after_s: float = Field(
        20.0,
        ge=0,
        description="Grants: a robot that has waited this long for its next node has its goal kept for it "
        "(of the robots bound there, it goes next; 0: off).",
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
            alert_clear_ms=round(self.traffic_alert_clear_s * 1000),
            alerts_per_minute=self.traffic_alerts_per_minute,
            round_ms=round(self.traffic_round_s * 1000),
            warmup_ms=round(self.traffic_warmup_s * 1000),
            lookahead_ms=round(self.traffic_lookahead_s * 1000),
            max_held_nodes=self.traffic_max_held_nodes,
            horizon_nodes=self.traffic_horizon_nodes,
            priority_boost_ms=round(self.traffic_priority_boost_s * 1000),
            stall_weight=self.traffic_stall_weight,
            obstacle_s=self.traffic_obstacle_s,
            max_lane_density=self.traffic_max_lane_density,
            turn_after_ms=round(self.traffic_turn_after_s * 1000),
        )


def build(settings: Settings, *, feeds: bool = True) -> ProcessorApp:
    """The traffic ProcessorApp, fully wired (not running). Without ``feeds`` it reads only its inbox:
    ``fleet replay traffic`` (``pipelines/replay.py``) has written it, in event-time order."""
    papp = create_processor_app(
        settings, OWNER, exactly_once=True, commit_interval=settings.commit_interval_s
    )
    sources, decoders = papp.sources(SOURCES) if feeds else ({}, {})
    outputs = build_traffic(
        sources=sources, inbox=papp.inbox(), decoders=decoders, config=settings.traffic_config()
    )
    papp.produce(outputs, OUTPUT_TOPICS)
    return papp


def run(settings: Settings) -> None:
    build(settings).run()
