"""A deterministic model of a robot fleet on a site graph, driven by an injected clock.

`FleetSim.step(now_ms)` advances every robot to `now_ms` and returns one RobotTelemetry dict per robot
(docs/records.md). Nothing here reads the wall clock, the environment or a broker: the same seed,
map, start time and sequence of calls give the same records, event ids included.

Robots either wander on their own (autonomous: random destinations, self-charging below the
threshold) or follow what they are told through `assign`, `hold`, `resume`, `reroute`,
`send_to_charger` and `unassign`, the hooks that scheduler decisions drive. Told nothing, a robot that
follows decisions goes back to its parking spot once it has stood idle for `return_home_ms`.

A HOLD is a layer over the route: a held robot stops at its hold node (or where it stands, or at the end
of the lane it is on) and stays there until `resume` or `reroute`, whatever route it is given meanwhile.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from schemas.sitegraph import NoRouteError, graph_for

from .groundtruth import GroundTruth, MotionEvent, MotionKind
from .ids import IdFactory, SeededUuid7
from .robot import Activity, Motion, Purpose, Robot

__all__ = ["FleetConfig", "FleetSim", "RobotView"]

_MODE = {
    Activity.IDLE: "IDLE",
    Activity.TRAVEL: "MOVING",
    Activity.WORK: "WORKING",
    Activity.CHARGING: "CHARGING",
    Activity.ERROR: "ERROR",
}
_WANDER_KINDS = ("AISLE", "PICKUP", "DROPOFF")
_CAPABILITY_SETS = (["lift", "tote"], ["lift", "tote"], ["tote"])
_NO_CHARGER_RETRY_MS = 2000.0


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """How the simulated fleet behaves. Rates are per second, battery is a fraction 0..1."""

    tenant_id: str = "acme"
    fleet_id: str = "sim"
    robots: int = 10
    seed: int = 0
    max_speed: float = 1.2
    speed_scale: float = 1.0  # drive this many times faster than a real robot (max_speed and lane limits)
    drain_moving_per_s: float = 0.0002  # 0.02 %/s
    drain_idle_per_s: float = 0.00002
    charge_per_s: float = 0.01  # 1 %/s
    charge_below: float = 0.25
    charge_until: float = 0.95
    initial_battery: tuple[float, float] = (0.3, 1.0)
    dwell_ms: tuple[int, int] = (1000, 5000)  # pause at a destination before the next one
    start_dwell_ms: int = 3000  # robots leave parking staggered over this period
    work_ms: int = 3000  # time spent WORKING at the end of a task's route
    autonomous: bool = True  # idle robots without a task pick random destinations
    return_home_ms: int | None = None  # not autonomous: an idle robot drives back to its parking spot
    # after standing this long (None: it stays where its last task left it)
    start_delay_ms: int = 0  # a standing robot given a new route (a task, a charger, home) sets off this
    # much later (preparing to move); its route then starts with the node it stands on, timed at departure
    self_charge: bool = True  # robots below charge_below go to the nearest free charger on their own
    footprint_m: float = 0.6
    record_history: bool = False  # keep every occupancy interval and collision (memory grows)
    seq_start: int | None = None  # first seq of every robot; None: the start time in epoch ms
    robot_prefix: str | None = None  # robot ids are f"{prefix}-{n:03d}"; None: f"{site_id}-amr"
    model: str = "SimAMR-100"
    grants: bool = False  # robots drive only onto nodes granted to them (GRANT decisions; traffic control)
    stall_per_min: float = 0.0  # execution noise: stalls per minute of travel, per robot (Poisson)
    stall_ms: tuple[int, int] = (1000, 6000)  # how long a stall lasts (uniform)
    speed_spread: float = 0.0  # execution noise: each robot's top speed is (1 - U(0, spread)) x max_speed
    managed_by: str = "FLEETSTREAM"  # registrations: SELF for robots that plan their own way (autonomous)

    def __post_init__(self) -> None:
        if self.robots < 0:
            raise ValueError("robots must be >= 0")
        if not 0.0 <= self.charge_below < self.charge_until <= 1.0:
            raise ValueError("need 0 <= charge_below < charge_until <= 1")
        if self.speed_scale <= 0:
            raise ValueError("speed_scale must be > 0")
        if self.return_home_ms is not None and self.return_home_ms < 0:
            raise ValueError("return_home_ms must be >= 0")
        if self.start_delay_ms < 0:
            raise ValueError("start_delay_ms must be >= 0")
        if self.stall_per_min < 0 or not 0.0 <= self.speed_spread < 1.0:
            raise ValueError("need stall_per_min >= 0 and 0 <= speed_spread < 1")
        if not 0 <= self.stall_ms[0] <= self.stall_ms[1]:
            raise ValueError("stall_ms must be (low, high) with 0 <= low <= high")


@dataclass(frozen=True, slots=True)
class RobotView:
    """A read-only snapshot of one robot, for tests and for wiring decisions."""

    robot_id: str
    activity: str
    purpose: str
    node_id: str | None
    anchor: str
    x: float
    y: float
    battery: float
    path: tuple[str, ...]
    held: bool
    task_id: str | None
    charger: str | None
    seq: int
    powered: bool


class FleetSim:
    """N robots on one site, advanced by `step(now_ms)`."""

    def __init__(
        self,
        site_map: Mapping[str, Any],
        config: FleetConfig,
        start_ms: int,
        *,
        ids: IdFactory | None = None,
    ) -> None:
        self.config = config
        self.site_map = site_map
        self.graph = graph_for(site_map)  # the shared immutable graph of this map version
        self.site_id: str = site_map["site_id"]
        self.tenant_id = config.tenant_id
        self.ground_truth = GroundTruth(record_history=config.record_history)
        self._ids: IdFactory = ids or SeededUuid7(f"fleet:{config.seed}:{self.site_id}")
        self._now = start_ms
        self._motion = Motion(
            config.max_speed * config.speed_scale,
            config.footprint_m,
            config.drain_moving_per_s / 1000.0 * config.speed_scale,  # same energy per metre
            config.speed_scale,
        )
        self._charger_nodes = sorted({node for _charger, node in self.graph.chargers})
        self._wander_targets = sorted(self.graph.nodes_of_kind(*_WANDER_KINDS))
        self._robots: dict[str, Robot] = {}
        self._place_robots(start_ms)

    # -- set-up -------------------------------------------------------------------------------------------
    def _start_nodes(self, n: int, rng: random.Random) -> list[str]:
        parking = sorted(self.graph.nodes_of_kind("PARKING"))
        rng.shuffle(parking)
        if n <= len(parking):
            return parking[:n]
        others = sorted(self.graph.nodes_of_kind("AISLE", "WAYPOINT"))
        rng.shuffle(others)
        nodes = parking + others
        if n > len(nodes):
            raise ValueError(
                f"{n} robots do not fit on the {len(nodes)} parking/aisle/waypoint nodes of the map"
            )
        return nodes[:n]

    def _place_robots(self, start_ms: int) -> None:
        cfg = self.config
        rng = random.Random(f"fleet:{cfg.seed}:{self.site_id}:placement")
        prefix = cfg.robot_prefix or f"{self.site_id}-amr"
        seq0 = start_ms if cfg.seq_start is None else cfg.seq_start
        events: list[MotionEvent] = []
        for i, node in enumerate(self._start_nodes(cfg.robots, rng), start=1):
            robot_id = f"{prefix}-{i:03d}"
            x, y = self.graph.position(node)
            robot = Robot(
                robot_id=robot_id,
                name=f"AMR {i}",
                capabilities=list(_CAPABILITY_SETS[(i - 1) % len(_CAPABILITY_SETS)]),
                max_payload_kg=100.0 if "lift" in _CAPABILITY_SETS[(i - 1) % len(_CAPABILITY_SETS)] else 30.0,
                rng=random.Random(f"fleet:{cfg.seed}:{robot_id}"),
                node=node,
                x=x,
                y=y,
                battery=round(rng.uniform(*cfg.initial_battery), 4),
                seq=seq0,
                home=node,
                allowed=0 if cfg.grants else None,
                noise=random.Random(f"noise:{cfg.seed}:{robot_id}"),
            )
            if cfg.speed_spread and robot.noise is not None:
                robot.speed_factor = 1.0 - robot.noise.uniform(0.0, cfg.speed_spread)
            robot.until_ms = start_ms + robot.rng.uniform(0, cfg.start_dwell_ms)
            self._robots[robot_id] = robot
            events.append(MotionEvent(float(start_ms), MotionKind.ENTER_NODE, robot_id, node_id=node))
        self.ground_truth.apply(events)

    # -- queries ------------------------------------------------------------------------------------------
    @property
    def now_ms(self) -> int:
        return self._now

    @property
    def robot_ids(self) -> list[str]:
        return list(self._robots)

    def view(self, robot_id: str) -> RobotView:
        r = self._robot(robot_id)
        return RobotView(
            robot_id=r.robot_id,
            activity=r.activity.value,
            purpose=r.purpose.value,
            node_id=r.node_at(),
            anchor=r.anchor,
            x=r.x,
            y=r.y,
            battery=r.battery,
            path=tuple(r.path),
            held=r.held,
            task_id=r.task_id,
            charger=r.charger,
            seq=r.seq,
            powered=r.powered,
        )

    def waiting_for_grant(self) -> list[str]:
        """Robots that stand at the end of what they were granted with more of their way still to go."""
        return [
            r.robot_id
            for r in self._robots.values()
            if r.powered
            and r.allowed is not None
            and r.edge is None
            and r.path
            and r.allowed <= 0
            and r.activity is Activity.TRAVEL
        ]

    def registrations(self, now_ms: int | None = None) -> list[dict[str, Any]]:
        """One RobotRegistration dict per robot."""
        at = self._now if now_ms is None else now_ms
        return [
            {
                "event_id": self._ids(at),
                "tenant_id": self.tenant_id,
                "site_id": self.site_id,
                "occurred_at": at,
                "robot_id": r.robot_id,
                "fleet_id": self.config.fleet_id,
                "name": r.name,
                "model": self.config.model,
                "capabilities": list(r.capabilities),
                "max_payload_kg": r.max_payload_kg,
                "managed_by": self.config.managed_by,
                "active": True,
            }
            for r in self._robots.values()
        ]

    # -- the clock ----------------------------------------------------------------------------------------
    def step(self, now_ms: int) -> list[dict[str, Any]]:
        """Advance every robot to now_ms and return one RobotTelemetry dict per robot."""
        if now_ms < self._now:
            raise ValueError(f"time runs forward: step({now_ms}) after {self._now}")
        t0, self._now = self._now, now_ms
        events: list[MotionEvent] = []
        for robot in self._robots.values():
            self._advance(robot, float(t0), float(now_ms), events)
        self.ground_truth.apply(events)
        return [self._telemetry(robot, now_ms) for robot in self._robots.values() if robot.powered]

    def _advance(self, r: Robot, t: float, t_end: float, events: list[MotionEvent]) -> None:
        if not r.powered:
            return
        cfg = self.config
        idle_drain = cfg.drain_idle_per_s / 1000.0
        self._maybe_stall(r, t, t_end)
        if r.purpose is Purpose.WANDER and self._wants_charge(r):
            self._go_charge(r)
        for _ in range(10_000):
            if t >= t_end or r.activity is Activity.ERROR:
                return
            if r.activity is Activity.TRAVEL:
                if r.stall_until is not None and r.stall_until > t:  # stalled (execution noise)
                    wait_end = min(r.stall_until, t_end)
                    r.battery = max(r.battery - idle_drain * (wait_end - t), 0.0)
                    t = wait_end
                elif r.edge is None and not r.path:
                    self._arrived(r, t)
                elif r.edge is None and r.stopped():  # held here
                    r.battery = max(r.battery - idle_drain * (t_end - t), 0.0)
                    t = t_end
                elif r.edge is None and r.depart_at is not None and r.depart_at > t:  # about to set off
                    wait_end = min(r.depart_at, t_end)
                    r.battery = max(r.battery - idle_drain * (wait_end - t), 0.0)
                    t = wait_end
                else:
                    r.depart_at = None
                    t = r.move(self.graph, self._motion, t, t_end, events)
            elif r.activity is Activity.CHARGING:
                rate = cfg.charge_per_s / 1000.0
                need = max(cfg.charge_until - r.battery, 0.0) / rate
                if t + need <= t_end:
                    r.battery, t = cfg.charge_until, t + need
                    self._release_charger(r)
                    r.activity, r.purpose, r.until_ms = Activity.IDLE, Purpose.NONE, None
                    if r.path and r.allowed:
                        self._drive_granted(r)  # granted a way while it charged
                else:
                    r.battery += rate * (t_end - t)
                    t = t_end
            elif r.until_ms is not None and r.until_ms > t:  # IDLE dwell or WORK in progress
                wait_end = min(r.until_ms, t_end)
                r.battery = max(r.battery - idle_drain * (wait_end - t), 0.0)
                t = wait_end
            elif r.activity is Activity.WORK:
                r.activity, r.purpose, r.until_ms = Activity.IDLE, Purpose.NONE, None
                r.task_phase = "COMPLETED"
                if r.path and r.allowed:
                    self._drive_granted(r)  # granted a way while it worked
            elif not self._decide(r, t):
                r.battery = max(r.battery - idle_drain * (t_end - t), 0.0)
                t = t_end
        raise RuntimeError(f"robot {r.robot_id} did not settle within one step")  # pragma: no cover

    def _maybe_stall(self, r: Robot, t: float, t_end: float) -> None:
        """Execution noise: a travelling robot stops for a while now and then (a person in the way, a
        re-localisation), wherever it is, at ``stall_per_min`` stalls per minute of travel."""
        rate = self.config.stall_per_min
        if not rate or r.activity is not Activity.TRAVEL or r.noise is None:
            return
        if r.stall_until is not None and r.stall_until > t:
            return
        if r.noise.random() < 1.0 - math.exp(-rate * (t_end - t) / 60_000.0):
            r.stall_until = t + r.noise.uniform(*self.config.stall_ms)

    # -- behaviour ----------------------------------------------------------------------------------------
    def _wants_charge(self, r: Robot) -> bool:
        return self.config.self_charge and r.battery < self.config.charge_below and r.charger is None

    def _decide(self, r: Robot, t: float) -> bool:
        """An idle robot at a node with nothing to wait for: charge, wander, go home, or stay. True if it
        changed."""
        r.until_ms = None
        if r.held:
            return False
        if self._wants_charge(r):
            if self._go_charge(r):
                return True
            if self.config.autonomous:
                r.until_ms = t + _NO_CHARGER_RETRY_MS
                return True
            return False
        if not self.config.autonomous:
            return self.config.return_home_ms is not None and self._go_home(r, t)
        if not self._wander_targets:
            return False
        here = r.anchor
        targets = [n for n in self._wander_targets if n != here]
        for _ in range(8):
            dest = r.rng.choice(targets)
            try:
                r.path = self.graph.shortest_path(here, dest)[1:]
            except NoRouteError:
                continue
            r.activity, r.purpose = Activity.TRAVEL, Purpose.WANDER
            return True
        return False  # pragma: no cover - the demo map is strongly connected

    def _go_home(self, r: Robot, t: float) -> bool:
        """Back to the parking spot once it has stood idle for ``return_home_ms`` (a robot left standing
        at a drop-off blocks it for the next delivery)."""
        if r.node is None or r.node == r.home:
            r.home_at = None
            return False
        if r.home_at is None:
            r.home_at = t + (self.config.return_home_ms or 0)
        if t < r.home_at:
            r.until_ms = r.home_at
            return True
        r.home_at = None
        try:
            self._set_route(r, [r.home], t)
        except NoRouteError:  # pragma: no cover - the demo map is strongly connected
            return False
        r.activity, r.purpose = Activity.TRAVEL, Purpose.HOME
        return True

    def _arrived(self, r: Robot, t: float) -> None:
        if r.purpose is Purpose.TASK:
            r.activity, r.until_ms = Activity.WORK, t + self.config.work_ms
            return
        if r.purpose is Purpose.CHARGE and r.node is not None and r.node == r.charger:
            r.activity, r.until_ms = Activity.CHARGING, None
            return
        if r.purpose is Purpose.CHARGE:
            self._release_charger(r)
        dwell = r.rng.uniform(*self.config.dwell_ms) if r.purpose is Purpose.WANDER else 0.0
        r.activity, r.purpose = Activity.IDLE, Purpose.NONE
        r.until_ms = t + dwell if dwell else None

    def _free_chargers(self, exclude: str) -> list[str]:
        taken = {o.charger for o in self._robots.values() if o.charger is not None}
        taken |= {o.anchor for o in self._robots.values() if o.robot_id != exclude}
        return [c for c in self._charger_nodes if c not in taken]

    def _go_charge(self, r: Robot, charger_node: str | None = None) -> bool:
        if charger_node is None:
            best = self.graph.nearest(r.anchor, self._free_chargers(r.robot_id))
            if best is None:
                return False
            charger_node = best[0]
        self._release_charger(r)
        self._set_route(r, [charger_node], float(self._now))
        r.charger, r.purpose, r.activity, r.until_ms = charger_node, Purpose.CHARGE, Activity.TRAVEL, None
        return True

    def _release_charger(self, r: Robot) -> None:
        r.charger = None

    def _set_route(self, r: Robot, waypoints: Sequence[str], start_at: float | None = None) -> None:
        """Replace the robot's path; a robot on a lane finishes that lane first. A hold stays in force:
        at its node if the new path passes it, else where the robot stands (or at the lane's end).

        With ``start_at`` (a new task, charger or trip home) a robot that stood still sets off
        ``start_delay_ms`` after it.
        """
        anchor = r.anchor
        standing = r.edge is None and (r.activity is not Activity.TRAVEL or not r.path)
        if start_at is not None and standing and self.config.start_delay_ms:
            r.depart_at = start_at + self.config.start_delay_ms
        r.home_at = None
        if r.allowed is not None:  # it drives what it was granted first, then on to its new stops
            granted = r.path[: r.allowed]
            start = granted[-1] if granted else anchor
            path = self.graph.expand(start, waypoints)
            r.stops = self._stops_of(start, path)
            r.path = granted + path
            return
        path = self.graph.expand(anchor, waypoints)
        r.path = [anchor, *path] if r.edge is not None else path
        if r.held:
            r.place_hold(r.hold_at)

    # -- hooks for decisions ------------------------------------------------------------------------------
    def assign(self, robot_id: str, task_id: str, route_nodes: Sequence[str]) -> None:
        """Give the robot a task: drive through route_nodes (gaps filled by shortest paths), then work."""
        r = self._robot(robot_id)
        self._set_route(r, route_nodes, float(self._now))
        self._release_charger(r)
        r.task_id, r.task_phase = task_id, "STARTED"
        r.activity, r.purpose, r.until_ms = Activity.TRAVEL, Purpose.TASK, None

    def unassign(self, robot_id: str) -> None:
        """Take the task away: the robot stops at its next node and forgets the task."""
        r = self._robot(robot_id)
        r.task_id, r.task_phase = None, "NONE"
        if r.allowed is not None:  # it drives what it was granted (nothing is taken back), then stops
            r.path = r.path[: r.allowed]
            r.stops = r.path[-1:]
        else:
            r.path = [r.edge_to] if r.edge is not None else []
        if r.activity in (Activity.TRAVEL, Activity.WORK):
            r.activity = Activity.TRAVEL if r.edge is not None or r.path else Activity.IDLE
        r.purpose, r.until_ms = Purpose.NONE, None
        if r.held:
            r.place_hold(r.hold_at)

    def hold(self, robot_id: str, at_node: str | None = None, route: Sequence[str] | None = None) -> None:
        """Stop at at_node if it is still on the remaining path, else where the robot stands (or at the
        end of the lane it is on), until `resume` or `reroute`.

        ``route`` is the way to ``at_node`` (next node first, ``at_node`` last) as the sender planned it;
        it picks the right visit of a node the path passes twice (a HOLD's route, see `apply_decision`).
        """
        r = self._robot(robot_id)
        r.held = True
        r.place_hold(at_node, list(route) if route is not None else None)

    def grant(
        self, robot_id: str, route: Sequence[str], granted: int, plan: tuple[str, int] | None = None
    ) -> bool:
        """A GRANT: the robot may drive along ``route`` up to ``route[granted - 1]``, never beyond.

        ``route`` starts at the node the robot stood on or last passed when it was decided; the robot finds
        where it is on it (the node it is at, or the end of the lane it is on) and drives the granted part
        from there, then on to its own stops as far as later grants allow. A grant of an older plan update
        than one applied, or one that no longer contains where the robot is, is ignored (grants only grow:
        a newer one covers it). A robot that has nowhere to go (it was standing idle) drives the granted
        part anyway: it is making room for another robot.
        """
        r = self._robot(robot_id)
        if r.allowed is None:
            return False
        if plan is not None and r.plan is not None and plan[0] == r.plan[0] and plan[1] <= r.plan[1]:
            return False
        base = list(route[: max(granted, 0)])
        anchor = r.anchor
        if anchor not in base:
            return False
        ahead = base[base.index(anchor) + 1 :]
        lane_end = [anchor] if r.edge is not None else []
        current = r.path[: r.allowed]
        new = lane_end + ahead
        if len(new) < len(current) and current[: len(new)] == new:
            return False  # covers less than the robot already has
        stops = list(r.stops)
        for node in new:
            if stops and stops[0] == node:
                stops.pop(0)
        end = new[-1] if new else anchor
        if new and r.path[: len(new)] == new:
            rest = r.path[len(new) :]  # the grant follows the robot's way: the rest of it still holds
        else:
            rest = self.graph.expand(end, stops) if stops else []
        r.path = new + rest
        r.allowed = len(new)
        if plan is not None:
            r.plan = plan
        if r.activity is Activity.IDLE and r.path:
            self._drive_granted(r)
        return True

    @staticmethod
    def _drive_granted(r: Robot) -> None:
        """An idle robot with a granted way (it is told to make room) sets off along it."""
        r.activity, r.until_ms, r.home_at = Activity.TRAVEL, None, None
        if r.purpose is Purpose.NONE:
            r.purpose = Purpose.GOTO

    def _stops_of(self, start: str, path: list[str]) -> list[str]:
        """The nodes of ``path`` (driven from ``start``) where the robot stops, as traffic reads them."""
        g = self.graph
        idx = [g.index[n] for n in path]
        return [path[i] for i in g.stops(idx, g.index.get(start))]

    def resume(self, robot_id: str) -> None:
        r = self._robot(robot_id)
        r.held, r.hold_at, r.hold_left = False, None, None

    def reroute(self, robot_id: str, nodes: Sequence[str]) -> None:
        """Replace the remaining route (the current lane is finished first) and drive it: a REROUTE ends a
        hold. Task and purpose are kept."""
        r = self._robot(robot_id)
        r.held, r.hold_at, r.hold_left = False, None, None
        self._set_route(r, self._not_yet_driven(r, nodes))
        if r.activity in (Activity.IDLE, Activity.CHARGING):
            self._release_charger(r)
            r.activity, r.until_ms = Activity.TRAVEL, None
            if r.purpose is Purpose.NONE:
                r.purpose = Purpose.GOTO

    @staticmethod
    def _not_yet_driven(r: Robot, nodes: Sequence[str]) -> list[str]:
        """A route sent a moment ago may start with nodes the robot has passed since: drop them (up to the
        node it is at or driving to), so that it does not turn back for them."""
        route = list(nodes)
        anchor = r.anchor
        if anchor in route:
            i = route.index(anchor)
            ahead = set(r.path)
            if not any(n in ahead for n in route[:i]):
                return route[i + 1 :]
        return route

    def send_to_charger(self, robot_id: str, charger_node: str | None = None) -> bool:
        """Send the robot to a charger (default: the nearest free one). False if none is free."""
        r = self._robot(robot_id)
        r.task_id, r.task_phase = (None, "NONE") if r.task_id is None else (r.task_id, "FAILED")
        return self._go_charge(r, charger_node)

    def power_off(self, robot_id: str) -> None:
        """Switch the robot off: it stops where it is (on a lane too) and sends no more telemetry."""
        self._robot(robot_id).powered = False

    def power_on(self, robot_id: str) -> None:
        """Switch it on again: it reports and moves on from where it stopped, task forgotten, its telemetry
        seq begun again from 1 as a rebooted robot's (the telemetry topology follows such a restart)."""
        r = self._robot(robot_id)
        r.powered = True
        r.seq = 1
        if r.task_id is not None:
            self.unassign(robot_id)

    def _robot(self, robot_id: str) -> Robot:
        try:
            return self._robots[robot_id]
        except KeyError:
            raise KeyError(f"unknown robot {robot_id!r}") from None

    # -- records ------------------------------------------------------------------------------------------
    def _telemetry(self, r: Robot, now_ms: int) -> dict[str, Any]:
        record = {
            "event_id": self._ids(now_ms),
            "tenant_id": self.tenant_id,
            "site_id": self.site_id,
            "occurred_at": now_ms,
            "robot_id": r.robot_id,
            "fleet_id": self.config.fleet_id,
            "seq": r.seq,
            "pose": {
                "x": round(r.x, 3),
                "y": round(r.y, 3),
                "yaw": round(r.yaw, 4),
                "node_id": r.node_at(),
                "map_name": None,
            },
            "battery": round(min(max(r.battery, 0.0), 1.0), 5),
            "speed": r.current_speed(self._motion, now_ms),
            "mode": _MODE[r.activity],
            "error_code": r.error_code,
            "task_id": r.task_id,
            "task_phase": r.task_phase,
            "route": r.route(self.graph, self._motion, now_ms),
        }
        r.seq += 1
        if r.task_phase == "STARTED":
            r.task_phase = "IN_PROGRESS"
        elif r.task_phase in ("COMPLETED", "FAILED"):
            r.task_id, r.task_phase = None, "NONE"
        return record
