"""The VDA 5050 bridge topology: vehicles' messages in (state, connection, factsheet, visualization ->
RobotTelemetry, robot.status OFFLINE, RobotRegistration) and scheduler decisions out (-> orders, order
updates and instant actions), one state per vehicle. Pure logic; ``pipelines.vda5050`` does the I/O.
Mapping both ways: docs/vda5050.md."""

from topologies.kernel import Output
from topologies.vda5050.builder import (
    DECISION,
    INBOUND,
    STATE_ORDERS,
    STATE_VEHICLE,
    InboundMessage,
    VdaStep,
    build_vda5050,
    inbound_message,
)
from topologies.vda5050.config import OWNER, VdaConfig, VehicleEntry
from topologies.vda5050.machine import on_decision, on_inbound
from topologies.vda5050.messages import HEADER_RECEIVED_AT, HEADER_TOPIC, VdaTopic, decode, parse_topic
from topologies.vda5050.records import OUTBOUND, OUTPUT_TOPICS, output_key
from topologies.vda5050.sitemodel import MapLookup, SiteModel, model_for

__all__ = [
    "DECISION",
    "HEADER_RECEIVED_AT",
    "HEADER_TOPIC",
    "INBOUND",
    "OUTBOUND",
    "OUTPUT_TOPICS",
    "OWNER",
    "STATE_ORDERS",
    "STATE_VEHICLE",
    "InboundMessage",
    "MapLookup",
    "Output",
    "SiteModel",
    "VdaConfig",
    "VdaStep",
    "VdaTopic",
    "VehicleEntry",
    "build_vda5050",
    "decode",
    "inbound_message",
    "model_for",
    "on_decision",
    "on_inbound",
    "output_key",
    "parse_topic",
]
