"""Telemetry topology: validate, dedupe and order robot telemetry; derive status, offline/battery alerts, 1m aggregates.

Consumes ``robot.telemetry``, ``robot.registry`` and ``timers.due.telemetry`` (key robot_id, co-partitioned,
read aligned by timestamp) and its inbox ``telemetry.inbox`` (records a producer put on another partition
than their key's, the site maps fed from ``site.maps`` for the pose check); produces every accepted sample
to ``robot.telemetry.accepted`` and ``robot.status``, ``alerts``, ``robot.telemetry.1m`` and ``timers``,
exactly once. Rejected records go to ``dlq.telemetry``. See ``topologies.telemetry``.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.settings import TopologySettings
from pipelines.writebehind import WriteBehind, WriteBehindSink
from schemas import catalog
from schemas.limits import FUTURE_SKEW_MS
from topologies.telemetry import (
    OUTPUT_TOPICS,
    OWNER,
    REGISTRATION,
    SITE_MAP,
    TELEMETRY,
    TIMER,
    TelemetryConfig,
    build_telemetry,
)

__all__ = ["Settings", "build", "run"]

logger = logging.getLogger(__name__)


class Settings(TopologySettings):
    """Settings of the telemetry processor (env prefix FLEET_)."""

    offline_timeout_s: float = Field(
        10.0, gt=0, description="No telemetry for this long: the robot is OFFLINE."
    )
    heartbeat_s: float = Field(
        30.0, gt=0, description="RobotStatus HEARTBEAT period without changes (event time)."
    )
    battery_low: float = Field(0.2, ge=0, le=1, description="BATTERY_LOW below this state of charge.")
    battery_margin: float = Field(0.05, ge=0, le=1, description="BATTERY_OK at battery_low + this margin.")
    future_skew_s: float = Field(
        FUTURE_SKEW_MS / 1000,
        ge=0,
        description="Telemetry stamped further ahead of the time the broker received it is rejected.",
    )
    map_margin_m: float = Field(
        2.0, ge=0, description="Poses may lie this far outside the site map's bounds."
    )
    moving_speed: float = Field(0.05, ge=0, description="m/s above which an idle-reporting robot is MOVING.")
    restart_gap_s: float = Field(
        2.0,
        gt=0,
        description="A sample with a seq not above the last one, stamped this long after the last sample, is a "
        "robot that restarted (its seq began again); closer, it is a duplicate or stale and dropped.",
    )
    consumer_poll_timeout_s: float = Field(
        0.005,
        gt=0,
        le=1,
        description="Longest wait for a batch of records. Three inputs are read time-aligned in batches, and "
        "a batch waits this long to fill up: Quix's 1 s default halves throughput.",
    )
    kafka_transaction_timeout_s: float = Field(
        10.0,
        ge=1,
        le=900,
        description="A crashed instance's open transaction is aborted after this long (until then "
        "read_committed readers wait); must exceed a checkpoint's duration (as in Kafka Streams).",
    )

    def telemetry_config(self) -> TelemetryConfig:
        return TelemetryConfig(
            offline_timeout_ms=round(self.offline_timeout_s * 1000),
            heartbeat_ms=round(self.heartbeat_s * 1000),
            battery_low=self.battery_low,
            battery_margin=self.battery_margin,
            future_skew_ms=round(self.future_skew_s * 1000),
            map_margin_m=self.map_margin_m,
            moving_speed=self.moving_speed,
            restart_gap_ms=round(self.restart_gap_s * 1000),
        )


def build(settings: Settings) -> ProcessorApp:
    """The telemetry ProcessorApp, fully wired (not running)."""
    papp = create_processor_app(
        settings,
        OWNER,
        exactly_once=True,
        commit_interval=settings.commit_interval_s,
        producer_extra_config={"transaction.timeout.ms": round(settings.kafka_transaction_timeout_s * 1000)},
        consumer_poll_timeout=settings.consumer_poll_timeout_s,
    )
    telemetry = papp.input(catalog.ROBOT_TELEMETRY)
    partitions = int(telemetry.topics[0].broker_config.num_partitions or 1)  # where its records are
    registry = papp.input(catalog.ROBOT_REGISTRY)
    # Robots' state write-behind (stored once per checkpoint); the hook hangs off a branch of the
    # rare registry input that lets nothing through, so it costs nothing on the telemetry path.
    states = WriteBehind()
    registry.filter(_nothing).sink(WriteBehindSink(states))
    outputs = build_telemetry(
        telemetry=telemetry,
        registry=registry,
        timers_due=papp.input(catalog.timers_due(OWNER)),
        inbox=papp.inbox(partitions),
        site_maps=papp.input(catalog.SITE_MAPS),
        decoders={
            TELEMETRY: papp.decoder(catalog.ROBOT_TELEMETRY),
            REGISTRATION: papp.decoder(catalog.ROBOT_REGISTRY),
            TIMER: papp.decoder(catalog.timers_due(OWNER)),
            SITE_MAP: papp.decoder(catalog.SITE_MAPS),
        },
        config=settings.telemetry_config(),
        partitions=partitions,
        state_view=states.view,
    )
    # An accepted sample is the input as it came: it keeps the producer's headers (and its trace, if any).
    # Only the InfluxDB sink reads it, and a point written twice is one point: it is produced at least
    # once beside the transaction, cheaper than a produce through it (pipelines/sideoutput.py).
    papp.produce(outputs, OUTPUT_TOPICS, side=[catalog.ROBOT_TELEMETRY_ACCEPTED])
    return papp


def _nothing(_value: Any) -> bool:
    return False


def run(settings: Settings) -> None:
    build(settings).run()
