"""One router per resource."""

from gateway.routers import (
    alerts,
    conflicts,
    dashboard,
    decisions,
    docs,
    health,
    robots,
    schedules,
    sites,
    stream,
    tasks,
    telemetry,
)

__all__ = [
    "alerts",
    "conflicts",
    "dashboard",
    "decisions",
    "docs",
    "health",
    "robots",
    "schedules",
    "sites",
    "stream",
    "tasks",
    "telemetry",
]
