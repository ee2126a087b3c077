"""The telemetry topology (key robot_id): validate, dedupe, derive status, offline and battery alerts,
1-minute aggregates.

``build_telemetry`` is the Quix builder; ``machine`` holds the pure per-robot transitions, ``rules`` the
rejections and the status derivation, ``sitemaps`` the in-memory site-map bounds for the pose check.
"""

from topologies.telemetry.builder import (
    OUTPUT_KEY_FIELDS,
    OUTPUT_TOPICS,
    REGISTRATION,
    STATE_ROBOT,
    TELEMETRY,
    TIMER,
    BoundsLookup,
    StateFlush,
    TelemetryStep,
    build_telemetry,
    output_key,
)
from topologies.telemetry.config import OWNER, TelemetryConfig
from topologies.telemetry.machine import classify_order, on_registration, on_telemetry, on_timer
from topologies.telemetry.records import AGGREGATES, ALERTS, STATUS, TIMERS, Output, det_uuid7
from topologies.telemetry.rules import derive_status, validate_telemetry
from topologies.telemetry.sitemaps import SiteBounds, SiteMapIndex, bounds_of

__all__ = [
    "AGGREGATES",
    "ALERTS",
    "OUTPUT_KEY_FIELDS",
    "OUTPUT_TOPICS",
    "OWNER",
    "REGISTRATION",
    "STATE_ROBOT",
    "STATUS",
    "TELEMETRY",
    "TIMER",
    "TIMERS",
    "BoundsLookup",
    "Output",
    "SiteBounds",
    "SiteMapIndex",
    "StateFlush",
    "TelemetryConfig",
    "TelemetryStep",
    "bounds_of",
    "build_telemetry",
    "classify_order",
    "derive_status",
    "det_uuid7",
    "on_registration",
    "on_telemetry",
    "on_timer",
    "output_key",
    "validate_telemetry",
]
