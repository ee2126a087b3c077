"""Ground truth of a simulation: which robot occupied which node when, and the collisions that follows.

A robot occupies a node while its centre is within the footprint radius of the node (so a robot
driving through a node occupies it briefly, a robot standing on it for as long as it stands). Two
robots in one node at once are a VERTEX collision; two robots on one lane in opposite directions at
once are an EDGE (head-on) collision. The simulator moves robots without traffic control, so these
numbers are the baseline a traffic topology is measured against.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Collision", "GroundTruth", "MotionEvent", "MotionKind", "Occupancy"]


class MotionKind(StrEnum):
    ENTER_NODE = "ENTER_NODE"
    LEAVE_NODE = "LEAVE_NODE"
    ENTER_LANE = "ENTER_LANE"
    LEAVE_LANE = "LEAVE_LANE"


_LEAVES = (MotionKind.LEAVE_NODE, MotionKind.LEAVE_LANE)


@dataclass(frozen=True, slots=True)
class MotionEvent:
    """A robot entering or leaving a node or a lane direction, at an exact (fractional) epoch ms."""

    at_ms: float
    kind: MotionKind
    robot_id: str
    node_id: str | None = None
    lane_id: str | None = None
    from_node: str | None = None
    to_node: str | None = None

    def sort_key(self) -> tuple[float, int, str]:
        # Leaving before entering at one instant, so touching intervals do not overlap.
        return (self.at_ms, 0 if self.kind in _LEAVES else 1, self.robot_id)


@dataclass(frozen=True, slots=True)
class Occupancy:
    """Robot `robot_id` occupied `node_id` from `start_ms` until `end_ms` (None: still there)."""

    robot_id: str
    node_id: str
    start_ms: int
    end_ms: int | None


@dataclass(frozen=True, slots=True)
class Collision:
    kind: str  # "VERTEX" or "EDGE"
    robot_ids: tuple[str, str]
    at_ms: int
    node_id: str | None = None
    lane_id: str | None = None


class GroundTruth:
    """Applies motion events in time order; counts collisions online.

    With `record_history` it also keeps every closed occupancy interval and every collision (memory
    grows with the run); without it, the counters, the current occupancy and the first
    `KEEP_COLLISIONS` collisions (what went wrong, in a run meant to have none) are kept.
    """

    KEEP_COLLISIONS = 1000

    def __init__(self, *, record_history: bool = False) -> None:
        self.record_history = record_history
        self.vertex_collisions = 0
        self.edge_collisions = 0
        self._at_node: dict[str, dict[str, float]] = {}  # node -> robot -> since
        self._on_lane: dict[tuple[str, str], set[str]] = {}  # (from, to) -> robots
        self._closed: list[Occupancy] = []
        self.collisions: list[Collision] = []

    def apply(self, events: list[MotionEvent]) -> None:
        for ev in sorted(events, key=MotionEvent.sort_key):
            self._apply(ev)

    def _apply(self, ev: MotionEvent) -> None:
        at = round(ev.at_ms)
        if ev.kind is MotionKind.ENTER_NODE:
            assert ev.node_id is not None
            here = self._at_node.setdefault(ev.node_id, {})
            for other in sorted(here):
                if other != ev.robot_id:
                    self.vertex_collisions += 1
                    if self._keep():
                        self.collisions.append(
                            Collision("VERTEX", (other, ev.robot_id), at, node_id=ev.node_id)
                        )
            here[ev.robot_id] = ev.at_ms
        elif ev.kind is MotionKind.LEAVE_NODE:
            assert ev.node_id is not None
            since = self._at_node.get(ev.node_id, {}).pop(ev.robot_id, None)
            if since is not None and self.record_history:
                self._closed.append(Occupancy(ev.robot_id, ev.node_id, round(since), at))
        elif ev.kind is MotionKind.ENTER_LANE:
            assert ev.from_node is not None and ev.to_node is not None
            for other in sorted(self._on_lane.get((ev.to_node, ev.from_node), ())):
                self.edge_collisions += 1
                if self._keep():
                    self.collisions.append(Collision("EDGE", (other, ev.robot_id), at, lane_id=ev.lane_id))
            self._on_lane.setdefault((ev.from_node, ev.to_node), set()).add(ev.robot_id)
        else:
            assert ev.from_node is not None and ev.to_node is not None
            self._on_lane.get((ev.from_node, ev.to_node), set()).discard(ev.robot_id)

    def _keep(self) -> bool:
        return self.record_history or len(self.collisions) < self.KEEP_COLLISIONS

    # -- queries -------------------------------------------------------------------------------------------
    def occupants(self, node_id: str) -> frozenset[str]:
        return frozenset(self._at_node.get(node_id, {}))

    def intervals(self) -> list[Occupancy]:
        """Every occupancy so far (closed ones only with `record_history`), open ones last."""
        open_ = [
            Occupancy(robot, node, round(since), None)
            for node, robots in sorted(self._at_node.items())
            for robot, since in sorted(robots.items())
        ]
        return [*self._closed, *open_]

    def occupancy_of(self, robot_id: str) -> list[Occupancy]:
        return sorted((o for o in self.intervals() if o.robot_id == robot_id), key=lambda o: o.start_ms)
