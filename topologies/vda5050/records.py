"""Builders of the records the VDA 5050 topology emits, with deterministic UUIDv7 event ids (a replay of
the same inputs emits the same ids, so every idempotent sink writes a record once). RobotStatus is built
by :func:`topologies.status.robot_status`, as every topology builds it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from schemas import catalog
from schemas.ids import det_uuid7
from schemas.records import Alert, RobotRegistration, RobotTelemetry
from topologies.kernel import Output
from topologies.status import robot_status
from topologies.vda5050.protocol import Factsheet

if TYPE_CHECKING:
    from topologies.vda5050.vehicle import VehicleState

__all__ = [
    "ALERTS",
    "OUTBOUND",
    "OUTPUT_KEY_FIELDS",
    "OUTPUT_TOPICS",
    "REGISTRY",
    "STATUS",
    "TELEMETRY",
    "Output",
    "alert",
    "det_uuid7",
    "offline_status",
    "output",
    "output_key",
    "registration",
    "status",
]

TELEMETRY = catalog.ROBOT_TELEMETRY
REGISTRY = catalog.ROBOT_REGISTRY
STATUS = catalog.ROBOT_STATUS
ALERTS = catalog.ALERTS
OUTBOUND = catalog.VDA5050_OUTBOUND
#: Catalog names of the outputs, and the field of each output record that is its Kafka key.
OUTPUT_TOPICS = (TELEMETRY, REGISTRY, STATUS, ALERTS, OUTBOUND)
OUTPUT_KEY_FIELDS = {TELEMETRY: "robot_id", REGISTRY: "robot_id", STATUS: "robot_id", ALERTS: "subject_id",
                     OUTBOUND: "robot_id"}  # fmt: skip


def output(topic: str, value: Mapping[str, object]) -> Output:
    """The kernel's :class:`Output` of ``value`` on ``topic``, keyed by the topic's key field."""
    return Output(topic, str(value[OUTPUT_KEY_FIELDS[topic]]), value)


def output_key(out: Output) -> str:
    return out.key


def registration(
    vehicle: VehicleState, factsheet: Factsheet | None, capabilities: list[str], at: int
) -> RobotRegistration:
    """A RobotRegistration for a vehicle, from its factsheet when it sent one."""
    spec = factsheet.get("typeSpecification") if factsheet else None
    payload = spec.get("maxLoadMass", spec.get("maximumLoadMass")) if spec else None
    return {
        "event_id": det_uuid7(at, vehicle["tenant_id"], vehicle["robot_id"], "registration", *capabilities),
        "tenant_id": vehicle["tenant_id"],
        "site_id": vehicle["site_id"],
        "occurred_at": at,
        "robot_id": vehicle["robot_id"],
        "fleet_id": vehicle["fleet_id"],
        "name": vehicle["name"],
        "model": spec.get("seriesName") if spec else None,
        "capabilities": capabilities,
        "max_payload_kg": float(payload) if payload is not None else None,
        "managed_by": "FLEETSTREAM",
        "active": True,
    }


def status(
    vehicle: VehicleState, tele: RobotTelemetry, *, value: str, previous: str | None, reason: str, at: int
) -> Output:
    """The RobotStatus of a vehicle from its last telemetry (``tele``: the last RobotTelemetry emitted)."""
    return robot_status(
        event_id=det_uuid7(at, vehicle["tenant_id"], vehicle["robot_id"], "status", value, tele["seq"]),
        tenant_id=vehicle["tenant_id"],
        site_id=tele["site_id"],
        occurred_at=at,
        robot_id=vehicle["robot_id"],
        fleet_id=vehicle["fleet_id"],
        status=value,
        previous_status=previous,
        battery=tele["battery"],
        pose=tele["pose"],
        speed=0.0 if value == "OFFLINE" else tele["speed"],
        task_id=tele["task_id"],
        route=[] if value == "OFFLINE" else tele["route"],
        seq=tele["seq"],
        last_seen_at=tele["occurred_at"],
        reason=reason,
    )


def offline_status(vehicle: VehicleState, tele: RobotTelemetry, previous: str | None, at: int) -> Output:
    return status(vehicle, tele, value="OFFLINE", previous=previous, reason="OFFLINE", at=at)


def alert(vehicle: VehicleState, *, kind: str, subject: str, message: str, at: int) -> Alert:
    event_id = det_uuid7(at, vehicle["tenant_id"], vehicle["robot_id"], "alert", kind, subject, message)
    return {
        "event_id": event_id,
        "tenant_id": vehicle["tenant_id"],
        "site_id": vehicle["site_id"],
        "occurred_at": at,
        "alert_id": event_id,
        "kind": kind,
        "severity": "WARNING",
        "subject_id": subject,
        "message": message,
    }
