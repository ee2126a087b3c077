"""Tunables of the dispatch policy: speeds, battery model and the weights of the cost function.

Every weight is in *seconds-equivalent*, the unit of the cost: one second of robot travel costs 1.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["DispatchConfig"]


@dataclass(frozen=True, slots=True)
class DispatchConfig:
    """Parameters of the dispatch cost (see ``topologies.dispatch.policy`` for the formula)."""

    nominal_speed_mps: float = 1.0
    """Speed used for travel times and ETAs; a lane's ``speed_limit`` lowers it on that lane."""
    battery_reserve: float = 0.2
    """State of charge (0..1) a robot must keep: a trip that would end below it is infeasible."""
    battery_per_s: float = 0.0003
    """State of charge used per second of travel (0.0003 ~ 55 min of driving per full charge)."""
    charge_release: float = 0.9
    """A robot sent to a charger is held there until its battery reaches this level."""
    battery_weight_s: float = 60.0
    """Cost added when a trip uses all the energy above the reserve (linear in the fraction used)."""
    priority_weight_s: float = 60.0
    """Urgency per priority level (0..10): a priority-10 task is worth 10 minutes of travel."""
    deadline_weight_s: float = 300.0
    """Urgency of a task whose deadline slack is zero; falls linearly to 0 at ``deadline_horizon_s``."""
    deadline_horizon_s: float = 900.0
    """Slack beyond which a deadline adds no urgency."""
    lateness_weight: float = 2.0
    """Cost per second an assignment's estimated completion would pass the task's deadline."""
    age_weight: float = 0.1
    """Urgency per second a task has waited in the queue (anti-starvation pressure)."""
    age_cap_s: float = 1800.0
    """Waiting time beyond which age adds no more urgency."""
    max_busy_density: float = 0.08
    """Robots idle on a parking spot are called out for a task only while fewer robots than this fraction
    of the site's lane nodes (nodes that are not dead ends) have a task: the lanes carry only so many
    robots (traffic's ``max_lane_density``), and a robot given a task it cannot start waits in its spot
    while a robot already on the floor could have taken it. Robots not parked always take tasks. 0: no
    limit."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DispatchConfig:
        """A config from a dict, ignoring unknown keys (older/newer peers)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in names})
