"""Configuration of the tasks topology: plain values, built once by the processor from its settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.limits import FUTURE_SKEW_MS

__all__ = ["OWNER", "TasksConfig"]

#: The processor that owns the tasks topology's timers (``timers.due.tasks``) and its DLQ name.
OWNER = "tasks"


@dataclass(frozen=True, slots=True)
class TasksConfig:
    """Durations (milliseconds of event time) and limits of the task state machine and the cron schedules.

    :param default_timeout_ms: timeout of an attempt when the spec has no ``timeout_ms``; the clock starts
        when the task is ASSIGNED and stops when it leaves ASSIGNED/DISPATCHED/EXECUTING. None: no timeout.
    :param retry_backoff_base_ms: RETRYING waits ``base * 2**(attempt-1)`` before going back to QUEUED...
    :param retry_backoff_max_ms: ...capped at this.
    :param max_dependencies: a CREATE with more prerequisites than this is rejected.
    :param max_dependents: a prerequisite accepts at most this many dependents (further ones are rejected).
    :param misfire_grace_ms: a cron fire delivered later than this after its time counts as missed
        (downtime); the schedule's misfire policy then decides SKIP or FIRE_ONCE.
    :param future_skew_ms: a command stamped further than this after it was produced is refused.
    :param rmf_tenant_id: tenant of the tasks Open-RMF dispatched itself (adopted when their states
        arrive); None: such states are logged and ignored.
    :param rmf_site_id: their site, unless ``rmf_fleet_sites`` names one for their fleet.
    """

    default_timeout_ms: int | None = 3_600_000
    retry_backoff_base_ms: int = 5_000
    retry_backoff_max_ms: int = 300_000
    max_dependencies: int = 100
    max_dependents: int = 10_000
    misfire_grace_ms: int = 60_000
    future_skew_ms: int = FUTURE_SKEW_MS
    rmf_tenant_id: str | None = None
    rmf_site_id: str = ""
    rmf_fleet_sites: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.default_timeout_ms is not None and self.default_timeout_ms <= 0:
            raise ValueError("default_timeout_ms must be positive (or None for no timeout)")
        if self.retry_backoff_base_ms < 0 or self.retry_backoff_max_ms < self.retry_backoff_base_ms:
            raise ValueError("need 0 <= retry_backoff_base_ms <= retry_backoff_max_ms")
        if self.max_dependencies < 0 or self.max_dependents < 0 or self.misfire_grace_ms < 0:
            raise ValueError("max_dependencies, max_dependents and misfire_grace_ms must not be negative")
        if self.future_skew_ms < 0:
            raise ValueError("future_skew_ms must not be negative")

    def rmf_site_of(self, fleet: str | None) -> str:
        """The site of an adopted RMF task of ``fleet``."""
        return self.rmf_fleet_sites.get(fleet or "", self.rmf_site_id)

    def backoff_ms(self, attempt: int) -> int:
        """Delay before attempt ``attempt + 1`` after attempt ``attempt`` failed (attempt >= 1)."""
        return min(self.retry_backoff_max_ms, self.retry_backoff_base_ms * (2 ** max(0, attempt - 1)))
