"""InfluxDB sink: robot.telemetry.accepted and robot.telemetry.1m as line protocol (raw 7 d, aggregates 90 d).

Only telemetry the telemetry topology accepted (validated, not a duplicate) becomes a time series: the
sink reads ``robot.telemetry.accepted``, never raw ``robot.telemetry``. At least once with idempotent
points (measurement + tags + occurred_at); an InfluxDB outage pauses the consumer and retries the same
records; a record that can never be a point (undecodable, a time outside years 1970..9999 or outside
what InfluxDB stores, a point InfluxDB refuses) goes to ``dlq.sink-influx`` with the reason.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from pipelines.app import create_processor_app
from pipelines.metrics import sink_observers
from pipelines.settings import CommonSettings
from schemas.catalog import ROBOT_TELEMETRY_1M, ROBOT_TELEMETRY_ACCEPTED
from sinks.deadletters import DeadLetterWriter
from sinks.influx import InfluxConfig, InfluxSink

__all__ = ["NAME", "TOPICS", "Settings", "run"]

logger = logging.getLogger(__name__)

NAME = "sink-influx"
TOPICS = (ROBOT_TELEMETRY_ACCEPTED, ROBOT_TELEMETRY_1M)


class Settings(CommonSettings):
    """Settings of the InfluxDB sink (env prefix FLEET_)."""

    influx_url: str = Field("http://127.0.0.1:18086", description="Base URL of InfluxDB.")
    influx_api: Literal["v1", "v2"] = Field(
        "v1", description="v1: /write + /query (1.x, 2.x DBRP, 3.x); v2: /api/v2/write with bucket db/rp."
    )
    influx_database: str = Field("fleetstream", min_length=1)
    influx_raw_rp: str = Field("telemetry_7d", min_length=1, description="Retention policy of raw telemetry.")
    influx_raw_duration: str = Field("7d", pattern=r"^(INF|\d+[hdw])$")
    influx_aggregate_rp: str = Field("telemetry_1m_90d", min_length=1, description="Policy of 1m aggregates.")
    influx_aggregate_duration: str = Field("90d", pattern=r"^(INF|\d+[hdw])$")
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_token: SecretStr | None = Field(
        None, description="Token (2.x/3.x); sent as 'Authorization: Token'."
    )
    influx_create_schema: bool = Field(
        True, description="Create the database and retention policies at start."
    )
    influx_timeout_s: float = Field(10.0, gt=0)
    influx_max_points_per_request: int = Field(5000, ge=1)
    influx_retry_after_s: float = Field(5.0, gt=0, description="Pause after InfluxDB failed (down, 5xx).")
    commit_interval_s: float = Field(1.0, gt=0, description="Flush (and commit) period: one batch per flush.")

    @model_validator(mode="after")
    def _check_influx_secrets(self) -> Settings:
        if self.environment == "production":
            for name in ("influx_password", "influx_token"):
                secret = getattr(self, name)
                if secret is not None and secret.get_secret_value().strip().lower() in {
                    "",
                    "changeme",
                    "secret",
                }:
                    raise ValueError(f"{name} is a placeholder; set a real secret in production")
        return self

    def influx_config(self) -> InfluxConfig:
        return InfluxConfig(
            url=self.influx_url,
            database=self.influx_database,
            raw_rp=self.influx_raw_rp,
            raw_duration=self.influx_raw_duration,
            aggregate_rp=self.influx_aggregate_rp,
            aggregate_duration=self.influx_aggregate_duration,
            username=self.influx_username,
            password=self.influx_password.get_secret_value() if self.influx_password else None,
            token=self.influx_token.get_secret_value() if self.influx_token else None,
            api=self.influx_api,
            timeout_s=self.influx_timeout_s,
            max_points_per_request=self.influx_max_points_per_request,
            retry_after_s=self.influx_retry_after_s,
            create_schema=self.influx_create_schema,
        )


def run(settings: Settings) -> None:
    papp = create_processor_app(
        settings, NAME, exactly_once=False, commit_interval=settings.commit_interval_s
    )
    on_flush, on_backpressure = sink_observers(NAME)
    dead_letters = DeadLetterWriter(papp.dlq.send, papp.encoders(TOPICS))
    sink = InfluxSink(
        settings.influx_config(),
        on_flush=on_flush,
        on_backpressure=on_backpressure,
        dead_letter=dead_letters,
    )
    for name in TOPICS:
        papp.avro_input(name).sink(sink)
    logger.info(
        "writing to %s database %s (%s API)",
        settings.influx_url,
        settings.influx_database,
        settings.influx_api,
    )
    try:
        papp.run()
    finally:
        sink.close()
