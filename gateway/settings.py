"""Settings of the gateway deployable (env prefix ``FLEET_``), read once at the entrypoint."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from pipelines.settings import CommonSettings

__all__ = ["GatewaySettings"]

_DEV_SECRET = "fleetstream-dev-secret-not-for-production"
_PLACEHOLDERS = {"", "change-me", "changeme", "secret", "dev-secret", "fleetstream-dev", _DEV_SECRET}


class GatewaySettings(CommonSettings):
    """HTTP server, auth, readers, rate limits and the SSE hub of the gateway."""

    # HTTP
    http_host: str = Field("127.0.0.1", description="Interface uvicorn binds to.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port uvicorn listens on.")
    http_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="uvicorn worker processes sharing the port (`fleet run gateway --workers N`); about one "
        "per core on a single host. Rate limits are shared (Redis); the SSE cap, caches and /metrics are "
        "per worker (docs/operations.md).",
    )
    dashboard_enabled: bool = Field(True, description="Serve the live fleet dashboard at /.")
    max_body_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Larger request bodies are refused (413); site maps are the largest.",
    )
    unavailable_retry_after_seconds: int = Field(
        5,
        ge=1,
        le=3600,
        description="Retry-After of a 503 answered when a dependency (Kafka, Postgres, Redis, InfluxDB) is down.",
    )

    # Limits of task commands and schedules (the tasks topology dead-letters records past its own limits,
    # which must be at least these)
    task_max_record_bytes: int = Field(
        64 * 1024,
        ge=4096,
        le=1024 * 1024,
        description="Largest task command or schedule: a body of POST /v1/tasks, /v1/tasks/{id}/cancel or "
        "/v1/schedules over it is refused (413), and so is a record that encodes larger.",
    )
    task_max_payload_bytes: int = Field(
        16 * 1024,
        ge=256,
        description="Largest `payload` of a task spec or schedule template, as compact JSON (UTF-8); a larger "
        "one is refused (422 naming the field and the limit).",
    )

    # Auth
    auth_mode: Literal["hs256", "jwks"] = Field(
        "hs256",
        description="hs256: tokens signed with jwt_secret (development); jwks: OIDC tokens checked against jwks_url.",
    )
    jwt_secret: SecretStr = Field(
        SecretStr(_DEV_SECRET), description="HS256 secret; a placeholder is refused in production."
    )
    jwks_url: str | None = Field(None, description="JWKS document of the OIDC provider (auth_mode=jwks).")
    jwks_cache_seconds: float = Field(300.0, gt=0, description="How long fetched keys are trusted.")
    jwks_min_refresh_seconds: float = Field(
        10.0, ge=0, description="Least time between two refetches triggered by an unknown key id."
    )
    audience: str = Field("fleetstream", min_length=1, description="Required `aud` claim.")
    issuer: str = Field("fleetstream-dev", min_length=1, description="Required `iss` claim.")
    leeway_seconds: int = Field(
        5, ge=0, le=300, description="Clock skew tolerated on exp/nbf/iat, in seconds."
    )

    # Readers (the gateway never writes a database)
    postgres_dsn: SecretStr = Field(
        SecretStr("postgresql://fleet@127.0.0.1:15432/fleetstream"),
        description="Postgres the sinks project into (read only).",
    )
    postgres_pool_size: int = Field(8, ge=1, le=200)
    postgres_timeout_seconds: float = Field(
        3.0,
        gt=0,
        le=60,
        description="How long a read waits for a Postgres connection before the call is answered 503.",
    )
    redis_url: SecretStr = Field(
        SecretStr("redis://127.0.0.1:16379/0"), description="Hot views (read) and rate limits."
    )
    influx_url: str = Field("http://127.0.0.1:18086", description="InfluxDB v1 API (InfluxQL /query).")
    influx_database: str = Field("fleetstream", min_length=1)
    influx_username: str | None = None
    influx_password: SecretStr | None = None
    influx_raw_measurement: str = "robot_telemetry"
    influx_raw_retention_policy: str | None = Field(
        "telemetry_7d", description="RP of raw points (None: default RP)."
    )
    influx_rollup_measurement: str = "robot_telemetry_1m"
    influx_rollup_retention_policy: str | None = Field(
        "telemetry_1m_90d", description="RP of 1-minute aggregates."
    )
    influx_raw_retention_days: int = Field(7, ge=1, description="Older ranges are read from the rollup.")
    readiness_timeout_seconds: float = Field(1.0, gt=0, le=30)

    # Rate limits (per tenant, sliding window in Redis)
    rate_limit_requests: int = Field(6000, ge=0, description="Requests per tenant per window; 0 disables.")
    rate_limit_window_seconds: int = Field(60, ge=1, le=3600)

    # SSE
    sse_heartbeat_seconds: float = Field(15.0, gt=0)
    sse_client_queue: int = Field(1000, ge=1, description="Events buffered per client before it is dropped.")
    sse_max_clients_per_tenant: int = Field(
        2000, ge=1, description="Open streams per tenant, per gateway process (worker or replica)."
    )
    sse_ring_size: int = Field(10000, ge=1, description="Events kept per topic-partition for resume.")
    sse_max_replay: int = Field(50000, ge=1, description="Most events replayed on one resume.")

    # Producer
    producer_linger_ms: int = Field(2, ge=0, le=1000)
    producer_request_timeout_ms: int = Field(10000, ge=1000)
    schema_auto_register: bool = Field(
        True, description="Register the schemas on first use; set false where `fleet schemas register` runs."
    )

    # RMF fleet-adapter websocket (/_internal, see gateway.rmf_ws)
    rmf_ws_enabled: bool = Field(True, description="Serve /_internal for Open-RMF fleet adapters.")
    rmf_ws_token: SecretStr | None = Field(
        None, description="Token RMF clients put in server_uri (/_internal?token=...); unset refuses all."
    )
    rmf_ws_port: int = Field(
        0, ge=0, le=65535, description="Serve /_internal on this port of its own instead (0: the HTTP port)."
    )
    rmf_ws_max_in_flight: int = Field(1000, ge=1, description="Unacknowledged produces per RMF connection.")

    @model_validator(mode="after")
    def _check_limits(self) -> GatewaySettings:
        if self.task_max_payload_bytes >= self.task_max_record_bytes:
            raise ValueError("task_max_payload_bytes must be smaller than task_max_record_bytes")
        if self.task_max_record_bytes > self.max_body_bytes:
            raise ValueError("task_max_record_bytes must not exceed max_body_bytes")
        return self

    @model_validator(mode="after")
    def _check_auth(self) -> GatewaySettings:
        if self.auth_mode == "jwks" and not self.jwks_url:
            raise ValueError("jwks_url is required when auth_mode is jwks")
        if self.environment == "production":
            if (
                self.auth_mode == "hs256"
                and self.jwt_secret.get_secret_value().strip().lower() in _PLACEHOLDERS
            ):
                raise ValueError(
                    "jwt_secret is a placeholder; set a real secret (or auth_mode=jwks) in production"
                )
            token = self.rmf_ws_token.get_secret_value() if self.rmf_ws_token else None
            if token is not None and (token.strip().lower() in _PLACEHOLDERS or len(token) < 16):
                raise ValueError("rmf_ws_token is a placeholder or shorter than 16 characters")
            if self.auth_mode == "hs256" and len(self.jwt_secret.get_secret_value()) < 32:
                raise ValueError("jwt_secret must be at least 32 characters in production")
        return self
