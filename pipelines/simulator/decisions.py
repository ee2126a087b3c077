"""Applying scheduler decisions (Decision dicts, docs/records.md) to the simulated fleet.

This is how the simulator follows dispatch and traffic: a consumer of `scheduler.decisions` hands
each record to `apply_decision` (typically from a `run_simulation(on_tick=...)` hook).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from schemas.sitegraph import NoRouteError

from .fleet import FleetSim

__all__ = ["apply_decision"]

logger = logging.getLogger(__name__)


def _route_nodes(decision: Mapping[str, Any]) -> list[str]:
    return [w["node_id"] for w in decision.get("route") or []]


def apply_decision(sim: FleetSim, decision: Mapping[str, Any]) -> bool:
    """Carry out one decision; False when it is not for this fleet or cannot be carried out.

    ASSIGN drives the route then works at its end; UNASSIGN drops the task; CHARGE drives to the
    route's last node (or the nearest free charger) and charges; RESUME drives on; REROUTE replaces the
    remaining route and ends a hold.

    GRANT (traffic control by grants, ``FleetConfig.grants``): the robot may drive ``route`` up to its
    ``granted``-th node and never beyond (``FleetSim.grant``).

    HOLD, as the traffic topology sends it: its route is the robot's way up to the node where it must
    wait (next node first, the hold node last); an empty route means "where you stand". The robot
    stops at the hold node if it has not passed it yet, else where it stands (or, on a lane, at the
    lane's end), and keeps holding through new routes until RESUME or REROUTE.
    """
    robot_id = decision.get("robot_id")
    if decision.get("site_id") not in (None, sim.site_id) or robot_id not in sim.robot_ids:
        return False
    if not sim.view(robot_id).powered:
        return False  # a robot switched off hears nothing
    kind = decision.get("kind")
    nodes = _route_nodes(decision)
    try:
        if kind == "ASSIGN":
            sim.assign(robot_id, decision.get("task_id") or decision.get("decision_id") or "task", nodes)
        elif kind == "UNASSIGN":
            sim.unassign(robot_id)
        elif kind == "CHARGE":
            return sim.send_to_charger(robot_id, nodes[-1] if nodes else None)
        elif kind == "HOLD":
            sim.hold(robot_id, nodes[-1] if nodes else None, nodes)
        elif kind == "RESUME":
            sim.resume(robot_id)
        elif kind == "GRANT":
            plan = decision.get("plan_id")
            seq = decision.get("plan_seq")
            return sim.grant(
                robot_id,
                nodes,
                int(decision.get("granted") or 0),
                (str(plan), int(seq)) if plan is not None and seq is not None else None,
            )
        elif kind == "REROUTE":
            if not nodes:
                return False
            sim.reroute(robot_id, nodes)
        else:
            return False
    except NoRouteError as exc:
        logger.warning(
            "cannot apply %s to %s: %s", kind, robot_id, exc, extra={"robot_id": robot_id, "reason": str(exc)}
        )
        return False
    return True
