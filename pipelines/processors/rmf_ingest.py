"""RMF ingest: Open-RMF fleet states (rmf.fleet_states) -> RobotStatus records on robot.status.

Consumes ``rmf.fleet_states`` (the ``fleet_state_update`` frames the gateway's ``/_internal`` websocket
received from RMF fleet adapters, key fleet name, validated again against the vendored rmf_api_msgs
schemas) and ``timers.due.rmf-ingest`` (its offline timers, key fleet name, co-partitioned), and produces
one RobotStatus per robot state that changed, and OFFLINE for a robot silent for ``rmf_offline_timeout_s``,
exactly once, so RMF robots appear on ``robot.status`` like ours (dispatch, traffic, the Postgres and Redis
sinks, SSE); its offline timers go to ``timers`` (the ``timers`` processor must run for them to fire).
Duplicates re-sent on reconnect are dropped. Undecodable or mis-keyed records go to ``dlq.rmf-ingest``.
See ``topologies.rmf``.
"""

from __future__ import annotations

import logging

from pydantic import Field

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.settings import TopologySettings
from schemas import catalog
from topologies.rmf import (
    FLEET_STATE,
    OUTPUT_TOPIC,
    OUTPUT_TOPICS,
    OWNER,
    TIMER,
    RmfIngestConfig,
    build_rmf_ingest,
)

__all__ = ["INPUT", "TIMERS_DUE", "Settings", "build", "run"]

logger = logging.getLogger(__name__)

INPUT = catalog.RMF_FLEET_STATES
#: This processor's due timers (key fleet name, co-partitioned with INPUT).
TIMERS_DUE = catalog.timers_due(OWNER)


class Settings(TopologySettings):
    """Settings of the RMF ingest processor (env prefix FLEET_)."""

    rmf_tenant_id: str = Field(
        min_length=1, description="Tenant the RMF robots belong to (one tenant per deployment)."
    )
    rmf_site_id: str = Field(min_length=1, description="Site of RMF fleets not in rmf_fleet_sites.")
    rmf_fleet_sites: dict[str, str] = Field(
        default_factory=dict, description='RMF fleet name -> site id, as JSON: {"tinyRobot": "s1"}.'
    )
    rmf_heartbeat_s: float = Field(
        30.0, gt=0, description="A robot's status is re-emitted after this long without changes."
    )
    rmf_min_interval_s: float = Field(
        1.0, ge=0, description="Pose or battery changes alone are emitted at most this often per robot."
    )
    rmf_offline_timeout_s: float = Field(
        10.0,
        gt=0,
        description="An RMF robot from which no state arrived for this long becomes OFFLINE (needs the "
        "timers processor).",
    )

    def ingest_config(self) -> RmfIngestConfig:
        return RmfIngestConfig(
            tenant_id=self.rmf_tenant_id,
            site_id=self.rmf_site_id,
            fleet_sites=dict(self.rmf_fleet_sites),
            heartbeat_ms=round(self.rmf_heartbeat_s * 1000),
            min_interval_ms=round(self.rmf_min_interval_s * 1000),
            offline_timeout_ms=round(self.rmf_offline_timeout_s * 1000),
        )


def build(settings: Settings) -> ProcessorApp:
    """The RMF ingest ProcessorApp, fully wired (not running)."""
    papp = create_processor_app(
        settings, OWNER, exactly_once=True, commit_interval=settings.commit_interval_s
    )
    fleet_states = papp.topic(INPUT)
    # Created with INPUT's real partition count: a robot's timer must come back to the partition of its
    # fleet's state (Quix refuses to start when the two differ).
    timers_due = papp.topic(TIMERS_DUE, partitions=fleet_states.broker_config.num_partitions)
    outputs = build_rmf_ingest(
        papp.dataframe(fleet_states),
        config=settings.ingest_config(),
        decoders={FLEET_STATE: papp.decoder(INPUT), TIMER: papp.decoder(TIMERS_DUE)},
        timers_due=papp.dataframe(timers_due),
    )
    papp.produce(outputs, OUTPUT_TOPICS)
    return papp


def run(settings: Settings) -> None:
    logger.info(
        "RMF fleet states of tenant %s -> %s (default site %s, OFFLINE after %g s without a state)",
        settings.rmf_tenant_id,
        settings.topic(OUTPUT_TOPIC),
        settings.rmf_site_id,
        settings.rmf_offline_timeout_s,
    )
    build(settings).run()
