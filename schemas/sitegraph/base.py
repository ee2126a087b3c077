"""The site graph's value types and its error: a directed lane, a map's bounds, station kinds, no route."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.errors import FleetError

__all__ = ["STATION_KINDS", "Bounds", "Lane", "NoRouteError"]

#: Node kinds where a robot's route means "stop here" (a task's pickup or drop-off, a charger, parking).
STATION_KINDS = frozenset({"PICKUP", "DROPOFF", "STATION", "CHARGER", "PARKING"})


class NoRouteError(FleetError):
    """No sequence of lanes leads from one node to another (unknown node, or a one-way dead end)."""


@dataclass(frozen=True, slots=True)
class Lane:
    """One drivable direction of a lane, by node index."""

    lane_id: str
    u: int
    v: int
    length: float  # metres
    seconds: float  # at the graph's nominal speed (or the lane's limit, where lower)
    speed_limit: float | None


@dataclass(frozen=True, slots=True)
class Bounds:
    """Axis-aligned bounding box of a site map (nodes and zone corners), in map metres."""

    version: int
    min_x: float
    min_y: float
    max_x: float
    max_y: float

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        return (
            self.min_x - margin <= x <= self.max_x + margin
            and self.min_y - margin <= y <= self.max_y + margin
        )
