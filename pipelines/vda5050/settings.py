"""Settings of the VDA 5050 bridge (``fleet run vda5050``; env prefix ``FLEET_``).

The MQTT settings (``FLEET_MQTT_*``) are shared with ``fleet simulate --protocol vda5050`` through
:class:`MqttSettings`; ``FLEET_VDA_*`` are the bridge's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from pipelines.settings import CommonSettings, TopologySettings
from topologies.vda5050.config import VdaConfig, VehicleEntry

__all__ = ["MqttSettings", "Settings", "VehicleSetting"]

_PLACEHOLDERS = {"", "change-me", "changeme", "secret", "fleetstream-dev"}


class VehicleSetting(BaseModel):
    """Where one configured vehicle belongs (every field optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    robot_id: str | None = None
    site_id: str | None = None
    fleet_id: str | None = None
    name: str | None = None


class MqttSettings(CommonSettings):
    """How to reach the MQTT broker the vehicles use."""

    mqtt_url: str = Field(
        "mqtt://127.0.0.1:11883", description="Broker: mqtt://host:port, or mqtts://host:port for TLS."
    )
    mqtt_username: str | None = Field(None, description="MQTT user name (the broker's ACL applies to it).")
    mqtt_password: SecretStr | None = Field(None, description="MQTT password.")
    mqtt_client_id: str = Field("fleetstream-vda5050", min_length=1, description="MQTT client id.")
    mqtt_keepalive_s: int = Field(15, ge=5, le=600, description="MQTT keep-alive (VDA 5050 suggests ~15 s).")
    mqtt_tls: bool = Field(False, description="Use TLS (implied by an mqtts:// URL).")
    mqtt_ca_location: Path | None = Field(None, description="PEM of the CA that signed the broker.")
    mqtt_cert_location: Path | None = Field(None, description="Client certificate (PEM) for mutual TLS.")
    mqtt_key_location: Path | None = Field(None, description="Private key (PEM) of the client certificate.")

    @model_validator(mode="after")
    def _check_mqtt(self) -> MqttSettings:
        parsed = urlparse(self.mqtt_url)
        if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parsed.hostname:
            raise ValueError(f"mqtt_url {self.mqtt_url!r} is not mqtt://host:port or mqtts://host:port")
        for name in ("mqtt_ca_location", "mqtt_cert_location", "mqtt_key_location"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: no such file {path}")
        if (self.mqtt_cert_location is None) != (self.mqtt_key_location is None):
            raise ValueError("mqtt_cert_location and mqtt_key_location go together")
        if self.environment == "production" and self.mqtt_username:
            secret = self.mqtt_password.get_secret_value() if self.mqtt_password else ""
            if secret.strip().lower() in _PLACEHOLDERS:
                raise ValueError("mqtt_password is a placeholder; set a real secret in production")
        return self

    def mqtt_options(self) -> dict[str, Any]:
        """Plain arguments for :class:`pipelines.vda5050.mqtt.MqttClient`."""
        parsed = urlparse(self.mqtt_url)
        tls = self.mqtt_tls or parsed.scheme in ("mqtts", "ssl")
        return {
            "host": parsed.hostname,
            "port": parsed.port or (8883 if tls else 1883),
            "username": self.mqtt_username,
            "password": self.mqtt_password.get_secret_value() if self.mqtt_password else None,
            "keepalive": self.mqtt_keepalive_s,
            "tls": tls,
            "ca_location": str(self.mqtt_ca_location) if self.mqtt_ca_location else None,
            "cert_location": str(self.mqtt_cert_location) if self.mqtt_cert_location else None,
            "key_location": str(self.mqtt_key_location) if self.mqtt_key_location else None,
        }


class Settings(MqttSettings, TopologySettings):
    """Settings of the VDA 5050 bridge (env prefix FLEET_)."""

    commit_interval_s: float = Field(
        0.05,
        gt=0,
        description="Checkpoint period: decisions reach the vehicles within about two of them (their "
        "re-keying and the orders are both exactly-once outputs).",
    )
    vda_tenant_id: str = Field(
        min_length=1, description="Tenant the vehicles belong to (one per deployment)."
    )
    vda_site_id: str = Field(min_length=1, description="Site of vehicles not placed by FLEET_VDA_VEHICLES.")
    vda_fleet_id: str = Field("vda5050", min_length=1, description="Fleet of vehicles not placed otherwise.")
    vda_vehicles: dict[str, VehicleSetting] = Field(
        default_factory=dict,
        description='Configured vehicles, as JSON: {"acme/agv-01": {"robot_id": "agv-01", "site_id": "s1"}}.',
    )
    vda_robot_id_template: str = Field(
        "{manufacturer}-{serialNumber}", description="Robot id of a vehicle without an entry."
    )
    vda_register_unknown: bool = Field(
        True,
        description="A vehicle that sends a factsheet is registered; off: only FLEET_VDA_VEHICLES are served.",
    )
    vda_await_grants: bool = Field(
        False,
        description="Orders release only their start node and wait for traffic's GRANTs (off: the whole "
        "route of an ASSIGN or CHARGE is released).",
    )
    vda_interface_name: str = Field(
        "uagv", min_length=1, description="2.x topic root ({interfaceName}/v2/...); 3.0 uses vda5050/v3."
    )
    vda_majors: list[str] = Field(default_factory=lambda: ["2", "3"], description="Protocol majors served.")
    vda_map_ids: dict[str, str] = Field(
        default_factory=dict,
        description="Site id -> VDA 5050 mapId of its nodes, as JSON (default: site id).",
    )
    vda_mqtt_shared_group: str | None = Field(
        None,
        description="Subscribe through $share/<group>/ so that several replicas split the vehicles (retained "
        "connection and factsheet messages are then not delivered at subscribe).",
    )
    vda_resend_after_s: float = Field(
        2.0, gt=0, description="Unacknowledged orders are sent again after this."
    )
    vda_clock_skew_s: float = Field(
        5.0,
        gt=0,
        description="A vehicle timestamp further than this from the receive time is replaced by it.",
    )
    vda_node_radius_m: float = Field(0.5, gt=0, description="A vehicle this close to its last node is at it.")
    vda_default_speed: float = Field(1.0, gt=0, description="m/s for route ETAs without a factsheet speed.")
    vda_visualization_interval_s: float = Field(
        0.5, ge=0, description="visualization messages update the pose at most this often."
    )
    vda_load_type: str = Field(
        "EPAL", description="loadType of pick/drop actions unless the task's labels say."
    )
    vda_station_type: str = Field(
        "floor", description="stationType of pick/drop unless the task's labels say."
    )
    vda_factsheet_request_every_s: float = Field(
        60.0, gt=0, description="An unknown vehicle that connects is asked for its factsheet this often."
    )
    vda_site_maps_wait_s: float = Field(30.0, ge=0, description="Start-up wait for site.maps to be read.")

    @model_validator(mode="after")
    def _check_vda(self) -> Settings:
        if not set(self.vda_majors) <= {"2", "3"} or not self.vda_majors:
            raise ValueError(f"vda_majors {self.vda_majors}: only 2 and 3 are supported")
        try:
            self.vda_robot_id_template.format(manufacturer="m", serialNumber="s")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"vda_robot_id_template: {exc}") from None
        return self

    def vda_config(self) -> VdaConfig:
        return VdaConfig(
            tenant_id=self.vda_tenant_id,
            site_id=self.vda_site_id,
            fleet_id=self.vda_fleet_id,
            vehicles={k: VehicleEntry(**v.model_dump()) for k, v in self.vda_vehicles.items()},
            robot_id_template=self.vda_robot_id_template,
            register_unknown=self.vda_register_unknown,
            await_grants=self.vda_await_grants,
            map_ids=dict(self.vda_map_ids),
            resend_after_ms=round(self.vda_resend_after_s * 1000),
            factsheet_request_every_ms=round(self.vda_factsheet_request_every_s * 1000),
            clock_skew_ms=round(self.vda_clock_skew_s * 1000),
            node_radius_m=self.vda_node_radius_m,
            default_speed=self.vda_default_speed,
            visualization_interval_ms=round(self.vda_visualization_interval_s * 1000),
            load_type=self.vda_load_type,
            station_type=self.vda_station_type,
        )

    def subscriptions(self) -> list[str]:
        """The MQTT topic filters of everything vehicles publish (connection, state, factsheet,
        visualization) for every served major."""
        roots = []
        if "2" in self.vda_majors:
            roots.append(f"{self.vda_interface_name}/v2")
        if "3" in self.vda_majors:
            roots.append("vda5050/v3")
        share = f"$share/{self.vda_mqtt_shared_group}/" if self.vda_mqtt_shared_group else ""
        return [
            f"{share}{root}/+/+/{topic}"
            for root in roots
            for topic in ("connection", "state", "factsheet", "visualization")
        ]
