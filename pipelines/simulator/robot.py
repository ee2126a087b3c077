"""One simulated robot: its state and its motion along lanes (pure, time passed in as epoch ms)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum

from schemas.sitegraph import Lane, SiteGraph

from .geometry import heading
from .groundtruth import MotionEvent, MotionKind

__all__ = ["Activity", "Motion", "Purpose", "Robot"]


class Activity(StrEnum):
    """What the robot is doing; maps onto the TelemetryMode it reports."""

    IDLE = "IDLE"
    TRAVEL = "TRAVEL"
    WORK = "WORK"
    CHARGING = "CHARGING"
    ERROR = "ERROR"


class Purpose(StrEnum):
    """Why the robot travels."""

    NONE = "NONE"
    WANDER = "WANDER"  # autonomous random destination
    TASK = "TASK"  # an assigned task: work at the route's end
    CHARGE = "CHARGE"  # to a reserved charger
    GOTO = "GOTO"  # a route given without a task (reroute of an idle robot)
    HOME = "HOME"  # back to its home node (parking) after standing idle, when following decisions


@dataclass(frozen=True, slots=True)
class Motion:
    """Parameters of motion shared by every robot."""

    max_speed: float
    footprint_m: float
    drain_moving_per_ms: float
    speed_scale: float = 1.0  # lane speed limits scale with it (a fast-forwarded fleet)


@dataclass(slots=True)
class Robot:
    robot_id: str
    name: str
    capabilities: list[str]
    max_payload_kg: float
    rng: random.Random
    node: str | None
    x: float
    y: float
    battery: float
    seq: int
    yaw: float = 0.0
    activity: Activity = Activity.IDLE
    purpose: Purpose = Purpose.NONE
    # Nodes still to reach; path[0] is the lane's end node while the robot is on a lane.
    path: list[str] = field(default_factory=list)
    edge: Lane | None = None  # the lane being driven (a lane of the shared site graph)
    edge_from: str = ""  # its start node
    edge_to: str = ""  # its end node
    progress: float = 0.0  # metres along `edge`
    left_from: bool = False  # released the edge's start node
    reached_to: bool = False  # occupies the edge's end node
    held: bool = False
    hold_at: str | None = None  # the node a HOLD stops at (None: the node it is at, or the next one)
    hold_left: int | None = None  # it stops where this many nodes of its path remain (None: next node)
    until_ms: float | None = None  # end of a dwell (IDLE) or of the work (WORK)
    task_id: str | None = None
    task_phase: str = "NONE"
    charger: str | None = None  # reserved charger node
    error_code: str | None = None
    powered: bool = True  # a robot switched off stands where it is and reports nothing
    depart_at: float | None = None  # a standing robot given a new route sets off then
    home: str = ""  # its parking spot (where it started): it returns there when idle, following decisions
    home_at: float | None = None  # when an idle robot leaves for home
    # Grants (a fleet whose traffic the traffic topology controls): only the first `allowed` nodes of
    # `path` may be driven onto (None: no grants, the whole path); `stops` are the nodes still to stop
    # at, in order (the last is the end of the route); `plan` the last GRANT applied (plan id, seq).
    allowed: int | None = None
    stops: list[str] = field(default_factory=list)
    plan: tuple[str, int] | None = None
    # Execution noise: this robot's share of the top speed, and the end of a stall in progress.
    speed_factor: float = 1.0
    stall_until: float | None = None
    noise: random.Random | None = None

    # -- where the robot is -------------------------------------------------------------------------------
    @property
    def anchor(self) -> str:
        """The node the robot is at, or the node it is driving to."""
        if self.edge is not None:
            return self.edge_to
        assert self.node is not None
        return self.node

    def node_at(self) -> str | None:
        """The node the robot occupies (within its footprint), if any; the nearer one on a short lane."""
        if self.edge is None:
            return self.node
        at_from, at_to = not self.left_from, self.reached_to
        if at_from and at_to:
            return self.edge_from if self.progress < self.edge.length / 2 else self.edge_to
        if at_from:
            return self.edge_from
        return self.edge_to if at_to else None

    def stopped(self) -> bool:
        """Whether a travelling robot must stand at its current node (route done, or held here)."""
        if self.edge is not None:
            return False
        if not self.path:
            return True
        if self.allowed is not None and self.allowed <= 0:
            return True  # at the end of what it was granted
        return self.held and (self.hold_left is None or len(self.path) <= self.hold_left)

    def place_hold(self, at_node: str | None, route: list[str] | None = None) -> None:
        """Where a HOLD stops the robot: at ``at_node`` if it is still ahead, else at the node it is at
        (or, on a lane, at the lane's end).

        ``route`` is the way to ``at_node`` as the sender saw it (next node first, ``at_node`` last): it
        tells which visit of ``at_node`` is meant when the path passes it twice, even when the robot has
        gone on a few nodes since. Without it, or when the path no longer follows it, the first visit.
        """
        self.hold_at = at_node
        self.hold_left = None
        if at_node is None:
            return
        path = self.path
        if route and route[-1] == at_node:
            m = len(route)
            for s in range(m):  # the robot has passed s nodes of the route since it was sent
                if path[: m - s] == route[s:]:
                    self.hold_left = len(path) - (m - s)
                    return
        if at_node in path:
            self.hold_left = len(path) - path.index(at_node) - 1

    # -- motion -------------------------------------------------------------------------------------------
    def speed_on(self, edge: Lane, motion: Motion) -> float:
        top = motion.max_speed * self.speed_factor
        if edge.speed_limit:
            return min(top, edge.speed_limit * motion.speed_scale)
        return top

    def move(
        self, graph: SiteGraph, motion: Motion, t: float, t_end: float, events: list[MotionEvent]
    ) -> float:
        """Drive along the path from t towards t_end; stop at a node where `stopped()`, or when the battery
        is empty. Appends ground-truth events and returns the time reached."""
        while t < t_end and not (self.edge is None and self.stopped()):
            if self.edge is None:
                self._start_edge(graph, t, events)
            assert self.edge is not None
            edge = self.edge
            speed = self.speed_on(edge, motion)
            fp = motion.footprint_m
            marks = sorted(
                [(min(fp, edge.length), 0), (max(edge.length - fp, 0.0), 1), (edge.length, 2)],
                key=lambda m: (m[0], m[1] != 0),
            )
            arrived = False
            for pos, what in marks:
                if (what == 0 and self.left_from) or (what == 1 and self.reached_to):
                    continue
                dt = max(pos - self.progress, 0.0) / speed * 1000.0
                if t + dt > t_end:
                    self._drive(t_end - t, speed, motion)
                    t = t_end
                    break
                self._drive(dt, speed, motion)
                self.progress = pos
                t += dt
                if what == 0:
                    self.left_from = True
                    events.append(
                        MotionEvent(t, MotionKind.LEAVE_NODE, self.robot_id, node_id=self.edge_from)
                    )
                elif what == 1:
                    self.reached_to = True
                    events.append(MotionEvent(t, MotionKind.ENTER_NODE, self.robot_id, node_id=self.edge_to))
                else:
                    self._arrive_node(graph, t, events)
                    arrived = True
                    break
            self._place(graph)
            if self.battery <= 0.0:
                self.battery = 0.0
                self.activity = Activity.ERROR
                self.error_code = "BATTERY_EMPTY"
                return t
            if not arrived:
                break
        return t

    def _drive(self, dt_ms: float, speed: float, motion: Motion) -> None:
        self.progress += speed * dt_ms / 1000.0
        self.battery -= motion.drain_moving_per_ms * dt_ms

    def _start_edge(self, graph: SiteGraph, t: float, events: list[MotionEvent]) -> None:
        assert self.node is not None
        edge = graph.lane_between(self.node, self.path[0])
        self.edge, self.edge_from, self.edge_to, self.node = edge, self.node, self.path[0], None
        self.progress, self.left_from, self.reached_to = 0.0, False, False
        self.yaw = heading(graph.position(self.edge_from), graph.position(self.edge_to))
        events.append(
            MotionEvent(
                t,
                MotionKind.ENTER_LANE,
                self.robot_id,
                lane_id=edge.lane_id,
                from_node=self.edge_from,
                to_node=self.edge_to,
            )
        )

    def _arrive_node(self, graph: SiteGraph, t: float, events: list[MotionEvent]) -> None:
        edge = self.edge
        assert edge is not None
        events.append(
            MotionEvent(
                t,
                MotionKind.LEAVE_LANE,
                self.robot_id,
                lane_id=edge.lane_id,
                from_node=self.edge_from,
                to_node=self.edge_to,
            )
        )
        self.edge, self.node = None, self.edge_to
        self.progress = 0.0
        if self.path and self.path[0] == self.node:
            self.path.pop(0)
            if self.allowed is not None:
                self.allowed -= 1
        if self.stops and self.stops[0] == self.node:
            self.stops.pop(0)

    def _place(self, graph: SiteGraph) -> None:
        if self.edge is None:
            assert self.node is not None
            self.x, self.y = graph.position(self.node)
            return
        (x0, y0), (x1, y1) = graph.position(self.edge_from), graph.position(self.edge_to)
        f = min(self.progress / self.edge.length, 1.0) if self.edge.length > 0 else 1.0
        self.x, self.y = x0 + (x1 - x0) * f, y0 + (y1 - y0) * f

    # -- reporting ----------------------------------------------------------------------------------------
    def route(self, graph: SiteGraph, motion: Motion, now_ms: int) -> list[dict[str, object]]:
        """Remaining waypoints with ETAs, as if driving on from now at lane speeds."""
        if self.activity is not Activity.TRAVEL or not self.path:
            return []
        t = float(now_ms)
        out: list[dict[str, object]] = []
        prev: str | None
        if self.edge is None and self.depart_at is not None and self.depart_at > t:
            t = self.depart_at  # standing, about to set off: from here, at that time
            out.append({"node_id": self.node, "eta": math.ceil(t)})
        if self.edge is not None:
            t += (self.edge.length - self.progress) / self.speed_on(self.edge, motion) * 1000.0
            out.append({"node_id": self.edge_to, "eta": math.ceil(t)})
            prev, rest = self.edge_to, self.path[1:]
        else:
            prev, rest = self.node, self.path
        for node in rest:
            assert prev is not None
            edge = graph.lane_between(prev, node)
            t += edge.length / self.speed_on(edge, motion) * 1000.0
            out.append({"node_id": node, "eta": math.ceil(t)})
            prev = node
        return out

    def current_speed(self, motion: Motion, now_ms: float | None = None) -> float:
        if self.activity is not Activity.TRAVEL:
            return 0.0
        if now_ms is not None and self.stall_until is not None and self.stall_until > now_ms:
            return 0.0
        if self.edge is not None:
            return self.speed_on(self.edge, motion)
        return 0.0 if self.stopped() or self.depart_at is not None else motion.max_speed * self.speed_factor
