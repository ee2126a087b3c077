"""The telemetry topology (key robot_id): validate, dedupe, derive status, offline and battery alerts,
1-minute aggregates, every accepted sample to ``robot.telemetry.accepted``.

``build_telemetry`` wires it on the kernel; ``machine`` holds the pure per-robot transitions, ``rules``
the rejections and the status derivation, ``sitemaps`` the site directory that brings each robot the
bounds of its site's map for the pose check.
"""

from topologies.telemetry.builder import (
    OUTPUT_TOPICS,
    REGISTRATION,
    STATE_ROBOT,
    TELEMETRY,
    TIMER,
    TelemetryStep,
    build_telemetry,
)
from topologies.telemetry.config import OWNER, TelemetryConfig
from topologies.telemetry.machine import classify_order, on_registration, on_telemetry, on_timer
from topologies.telemetry.records import (
    ACCEPTED,
    AGGREGATES,
    ALERTS,
    INBOX,
    STATUS,
    TIMERS,
    Output,
    det_uuid7,
)
from topologies.telemetry.rules import derive_status, validate_telemetry
from topologies.telemetry.sitemaps import SITE_BOUNDS, SITE_JOIN, SITE_MAP, bounds_of, site_key

__all__ = [
    "ACCEPTED",
    "AGGREGATES",
    "ALERTS",
    "INBOX",
    "OUTPUT_TOPICS",
    "OWNER",
    "REGISTRATION",
    "SITE_BOUNDS",
    "SITE_JOIN",
    "SITE_MAP",
    "STATE_ROBOT",
    "STATUS",
    "TELEMETRY",
    "TIMER",
    "TIMERS",
    "Output",
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
    "site_key",
    "validate_telemetry",
]
