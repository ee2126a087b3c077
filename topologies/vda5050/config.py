"""Configuration of the VDA 5050 bridge topology, as plain values (built from settings at the entrypoint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["OWNER", "VdaConfig", "VehicleEntry"]

#: The processor that runs this topology (consumer group ``fleet-vda5050``, ``dlq.vda5050``).
OWNER = "vda5050"


@dataclass(frozen=True, slots=True)
class VehicleEntry:
    """A vehicle configured by the integrator (``manufacturer/serialNumber`` -> where it belongs)."""

    robot_id: str | None = None
    site_id: str | None = None
    fleet_id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class VdaConfig:
    """How vehicles map onto robots and how orders are built.

    - ``tenant_id``/``site_id``/``fleet_id``: where vehicles belong unless ``vehicles`` says otherwise.
    - ``vehicles``: ``"manufacturer/serialNumber" -> VehicleEntry``; these are known from their first
      message. Others become known through their factsheet when ``register_unknown`` (else their messages
      are dead-lettered).
    - ``robot_id_template``: robot id of a vehicle without an entry (``{manufacturer}``, ``{serialNumber}``).
    - ``await_grants``: orders release only their start node and wait for traffic's GRANTs; otherwise the
      whole route of an ASSIGN or CHARGE is released at once.
    - ``map_ids``: site id -> VDA 5050 ``mapId`` of its nodes (default: the site id).
    """

    tenant_id: str
    site_id: str
    fleet_id: str = "vda5050"
    vehicles: Mapping[str, VehicleEntry] = field(default_factory=dict)
    robot_id_template: str = "{manufacturer}-{serialNumber}"
    register_unknown: bool = True
    await_grants: bool = False
    map_ids: Mapping[str, str] = field(default_factory=dict)
    resend_after_ms: int = 2000
    factsheet_request_every_ms: int = 60_000
    clock_skew_ms: int = 5000
    node_radius_m: float = 0.5
    default_speed: float = 1.0
    visualization_interval_ms: int = 500
    load_type: str = "EPAL"
    station_type: str = "floor"

    def entry(self, manufacturer: str, serial: str) -> VehicleEntry | None:
        return self.vehicles.get(f"{manufacturer}/{serial}")

    def robot_id(self, manufacturer: str, serial: str) -> str:
        """The robot id of a vehicle: its entry's, else the template filled in."""
        entry = self.entry(manufacturer, serial)
        if entry is not None and entry.robot_id:
            return entry.robot_id
        return self.robot_id_template.format(manufacturer=manufacturer, serialNumber=serial)

    def map_id(self, site_id: str) -> str:
        return self.map_ids.get(site_id, site_id)
