"""Settings: one class per deployable, read once at the entrypoint (env prefix ``FLEET_``).

Every deployable's settings class derives from :class:`CommonSettings`. Env names map one-to-one onto
the Helm values (``FLEET_KAFKA_BOOTSTRAP_SERVERS`` <-> ``kafka.bootstrapServers``). Library code never
reads the environment: it takes plain arguments built from these objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import FleetError

__all__ = ["PRODUCER_DEFAULTS", "CommonSettings", "ConfigError", "TopologySettings", "load_settings"]

S = TypeVar("S", bound="CommonSettings")

# Every producer of ours partitions keys like Java clients, Quix Streams and aiokafka do (murmur2), so
# records of one key from any of them meet in one partition; librdkafka's own default is CRC32.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "partitioner": "murmur2_random",
    "enable.idempotence": True,
    "acks": "all",
}

_PLACEHOLDERS = {"", "change-me", "changeme", "secret", "dev-secret", "fleetstream-dev"}


class ConfigError(FleetError):
    """Bad configuration: raised at start-up with the field and the reason."""


class CommonSettings(BaseSettings):
    """What every fleetstream process needs: Kafka, the schema registry, logging and metrics."""

    model_config = SettingsConfigDict(env_prefix="FLEET_", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = Field(
        "development", description="Placeholder secrets are refused outside development and test."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = Field(
        "json", description="JSON lines for machines, text for a terminal."
    )
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus /metrics port; 0 turns it off.")
    dead_letters_max_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A processor that dead-letters more than this fraction of its last "
        "dead_letters_window records stops (a systematic cause, not a bad record).",
    )
    dead_letters_window: int = Field(
        1000, ge=10, description="Records over which dead_letters_max_ratio is measured."
    )

    # Kafka
    kafka_bootstrap_servers: str = Field("127.0.0.1:19092", min_length=1)
    kafka_commit_stall_s: float = Field(
        15.0,
        gt=0,
        description="An exactly-once processor whose Kafka transaction commit, or whose consumer close on "
        "the way out, blocks longer than this exits (and is restarted): librdkafka can keep a dead broker as "
        "the coordinator after a hard broker kill (pipelines/watchdog.py).",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_ca_location: Path | None = Field(
        None, description="PEM file of the CA that signed the brokers."
    )
    topic_prefix: str = Field(
        "", description="Prepended to every topic name (isolates environments and tests)."
    )
    topic_replication_factor: int | None = Field(
        None,
        ge=1,
        description="Replication of a topic a processor has to create because it is missing (as `fleet "
        "topics apply` uses it); unset: the brokers' default.replication.factor.",
    )
    topic_min_insync_replicas: int | None = Field(
        None, ge=1, description="min.insync.replicas of such a topic; unset: the brokers' default."
    )

    # Schema registry (any Confluent-compatible API)
    schema_registry_url: str = "http://127.0.0.1:18081/apis/ccompat/v7"
    schema_registry_username: str | None = None
    schema_registry_password: SecretStr | None = None
    schema_registry_ca_location: Path | None = None

    # Where processors keep local state (RocksDB) between restarts.
    state_dir: Path = Path(".local/state")

    # Consumer groups
    kafka_session_timeout_s: float = Field(
        10.0,
        ge=6,
        le=300,
        description="A crashed processor instance's partitions (a topology's or a sink's) move to another "
        "after this long (also one that the commit watchdog ended: it cannot leave its group).",
    )

    @model_validator(mode="after")
    def _check_security(self) -> CommonSettings:
        if self.kafka_security_protocol.startswith("SASL"):
            if not self.kafka_sasl_mechanism:
                raise ValueError("kafka_sasl_mechanism is required when kafka_security_protocol is SASL_*")
            if not self.kafka_sasl_username or self.kafka_sasl_password is None:
                raise ValueError("kafka_sasl_username and kafka_sasl_password are required for SASL")
        for path_field in ("kafka_ssl_ca_location", "schema_registry_ca_location"):
            path = getattr(self, path_field)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{path_field}: no such file {path}")
        if self.environment == "production":
            for secret_field in ("kafka_sasl_password", "schema_registry_password"):
                secret = getattr(self, secret_field)
                if secret is not None and secret.get_secret_value().strip().lower() in _PLACEHOLDERS:
                    raise ValueError(f"{secret_field} is a placeholder; set a real secret in production")
        return self

    def topic(self, name: str) -> str:
        """The real topic name for a catalog name, with this environment's prefix."""
        return f"{self.topic_prefix}{name}"

    def kafka_client_config(self) -> dict[str, Any]:
        """librdkafka configuration (confluent-kafka, Quix Streams) including security."""
        cfg: dict[str, Any] = {
            "bootstrap.servers": self.kafka_bootstrap_servers,
            "security.protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            cfg["sasl.mechanism"] = self.kafka_sasl_mechanism
            cfg["sasl.username"] = self.kafka_sasl_username
            cfg["sasl.password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            )
        if self.kafka_ssl_ca_location:
            cfg["ssl.ca.location"] = str(self.kafka_ssl_ca_location)
        return cfg

    def kafka_producer_config(self) -> dict[str, Any]:
        """librdkafka configuration for a producer: security plus :data:`PRODUCER_DEFAULTS`."""
        return {**self.kafka_client_config(), **PRODUCER_DEFAULTS}

    def aiokafka_config(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka producers and consumers including security."""
        cfg: dict[str, Any] = {
            "bootstrap_servers": self.kafka_bootstrap_servers,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            cfg["sasl_mechanism"] = self.kafka_sasl_mechanism
            cfg["sasl_plain_username"] = self.kafka_sasl_username
            cfg["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            )
        if self.kafka_ssl_ca_location or self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            cfg["ssl_context"] = create_ssl_context(
                cafile=str(self.kafka_ssl_ca_location) if self.kafka_ssl_ca_location else None
            )
        return cfg

    def registry_client_config(self) -> dict[str, Any]:
        """Plain arguments for the registry client (URL, basic auth, CA)."""
        return {
            "url": self.schema_registry_url,
            "username": self.schema_registry_username,
            "password": self.schema_registry_password.get_secret_value()
            if self.schema_registry_password
            else None,
            "ca_location": str(self.schema_registry_ca_location)
            if self.schema_registry_ca_location
            else None,
        }


class TopologySettings(CommonSettings):
    """What every exactly-once topology processor adds: its checkpoint period and the partitions of the
    topics it creates. A processor whose decisions must be seen sooner declares a shorter default."""

    partitions: int | None = Field(
        None, ge=1, description="Partitions when this processor must create a topic (default: the catalog's)."
    )
    commit_interval_s: float = Field(
        0.5, gt=0, description="Checkpoint period: exactly-once output becomes visible at each checkpoint."
    )


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings from the environment once, turning validation errors into one clear ConfigError."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "(settings)"
            env = f"FLEET_{field.upper()}" if err["loc"] else "FLEET_*"
            problems.append(f"  {env}: {err['msg']}")
        raise ConfigError(f"invalid configuration for {cls.__name__}:\n" + "\n".join(problems)) from None
