"""Configuration of the telemetry topology: plain values, built once by the processor from its settings."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OWNER", "TelemetryConfig"]

#: The processor that owns the telemetry topology's timers (``timers.due.telemetry``) and its DLQ name.
OWNER = "telemetry"


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """Thresholds and periods of the telemetry rules. Durations are in milliseconds of event time.

    :param offline_timeout_ms: a robot with no telemetry for this long goes OFFLINE.
    :param heartbeat_ms: a RobotStatus HEARTBEAT is emitted when no status was emitted for this long.
    :param battery_low: BATTERY_LOW when the state of charge falls below this fraction.
    :param battery_margin: BATTERY_OK only once the charge is back at ``battery_low + battery_margin``.
    :param future_skew_ms: telemetry stamped further than this ahead of the wall clock is rejected.
    :param window_ms: length of the tumbling aggregate windows.
    :param moving_speed: speed (m/s) above which a robot that reports IDLE/UNKNOWN counts as MOVING.
    :param map_margin_m: a pose may lie this far outside the bounding box of its site map.
    :param restart_gap_ms: a sample whose seq is not above the last accepted one, stamped at least this
        long after the last sample, is a robot that restarted (its seq began again), not a stale one.
    """

    offline_timeout_ms: int = 10_000
    heartbeat_ms: int = 30_000
    battery_low: float = 0.2
    battery_margin: float = 0.05
    future_skew_ms: int = 5_000
    window_ms: int = 60_000
    moving_speed: float = 0.05
    map_margin_m: float = 2.0
    restart_gap_ms: int = 2_000

    def __post_init__(self) -> None:
        for name in ("offline_timeout_ms", "heartbeat_ms", "window_ms", "restart_gap_ms"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.future_skew_ms < 0 or self.map_margin_m < 0 or self.battery_margin < 0:
            raise ValueError("future_skew_ms, map_margin_m and battery_margin must not be negative")
        if not 0.0 <= self.battery_low <= 1.0:
            raise ValueError("battery_low must be within 0..1")
