"""Configuration of the traffic topology: plain values, built once by the processor from its settings."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OWNER", "TrafficConfig"]

#: The processor that owns the traffic topology (its DLQ name and decision ``planner`` tag).
OWNER = "traffic"


@dataclass(frozen=True, slots=True)
class TrafficConfig:
    """Margins and thresholds of the space-time reservation model. Durations are ms of event time.

    :param node_margin_ms: a waypoint reserves its node for ``[eta - margin, eta + dwell + margin]``.
    :param dwell_ms: how long a robot is expected to occupy a node it passes.
    :param min_headway_ms: two robots entering one lane in the same direction must be this far apart.
    :param clear_ms: hysteresis of a hold: the blocker's reservation on the contested node/lane must have
        ended this long ago before the held robot is resumed.
    :param reroute_min_wait_ms: a detour is only searched when the expected wait is at least this long.
    :param reroute_gain_ms: a detour must arrive at least this much earlier than waiting would.
    :param speed_mps: nominal speed used to time a detour (ETAs of a new route).
    :param latency_ms: how long after the event time of an input its decisions may reach the robot (the
        pipeline's latency: telemetry to status, status to traffic, decision to robot). Robots drive on
        meanwhile: a HOLD only stops a robot at a node it reaches after that, a REROUTE turns off its
        route there at the earliest, and a RESUMEd robot is taken to start any time within it.
    :param stand_ms: how long a robot that waits for one standing still (at the end of its route, or held)
        is expected to wait: the node it waits at must be free of other robots for that long.
    :param deadlock_grace_ms: a wait-for cycle that no member can break yet is tried again at every scan;
        it is reported unresolved (NONE, alert) once each of its members has been held this long.
    :param bucket_ms: width of the time bucket that goes into a conflict id (same conflict, same id).
    :param conflict_ttl_ms: how long an emitted conflict id is remembered (emitted once within it).
    :param deadlock_scan_ms: how often the whole wait-for graph is searched for cycles.
    :param deadlock_max_robots: longest wait-for cycle searched for (bounds the search in a jam).
    :param max_rounds: bound on resolution rounds per input (each round resolves one conflict).
    :param alert_clear_ms: a robot's CONFLICT_UNRESOLVED alert is one situation until it has had no
        unresolved conflict for this long; then CONFLICT_CLEARED.
    :param alerts_per_minute: at most this many alerts per site and minute (a burst of as many); the
        ones over it are counted and the count goes with the next alert sent.

    Grants (robots fleetstream coordinates, ``coordinate``):

    :param round_ms: a planning round runs at most this often (event time).
    :param warmup_ms: no grant before this long after the first status (every robot on the site reports
        its position first; after a restart the stored state already knows them).
    :param lookahead_ms: a robot is granted nodes until its grant ends this far ahead of it (at
        ``speed_mps``): it must cover the pipeline's latency, or the robot stops at every frontier.
    :param max_held_nodes: the most nodes one robot holds at once.
    :param horizon_nodes: how many planned nodes beyond the grant a GRANT's route shows (VDA 5050 horizon).
    :param priority_boost_ms: each point of task priority (0..10) counts as this much more waiting.
    :param stall_weight: each ms a robot has waited for its next node (since its grant last grew, or since it
        became ready to go) counts as this many ms more age: a robot waiting to merge into a busy lane
        overtakes, within a bounded time, the robots that stream past it (0: age alone).
    :param max_lane_density: flow control: while this share of the lane nodes (not dead ends) hold robots on
        their way somewhere, robots parked in dead ends that are not stations wait there instead of setting
        off.
    :param turn_after_ms: a robot that has waited this long for its next node gets its goal kept for it:
        of the robots bound for that node, only it may drive onto it next, and the others queue behind it
        (the longest waiter first). Without it, robots arriving nearer a busy workstation take it in turn
        after turn ahead of a robot waiting farther off. 0: off.
    :param obstacle_s: planning cost of driving onto a node an OFFLINE or failed robot holds (it keeps it
        until it is back): high enough that robots go round it where they can.
    """

    node_margin_ms: int = 500
    dwell_ms: int = 1_000
    min_headway_ms: int = 3_000
    clear_ms: int = 1_000
    reroute_min_wait_ms: int = 5_000
    reroute_gain_ms: int = 2_000
    speed_mps: float = 1.0
    latency_ms: int = 1_000
    stand_ms: int = 15_000
    bucket_ms: int = 10_000
    conflict_ttl_ms: int = 300_000
    deadlock_scan_ms: int = 2_000
    deadlock_max_robots: int = 12
    deadlock_grace_ms: int = 30_000
    max_rounds: int = 64
    alert_clear_ms: int = 30_000
    alerts_per_minute: int = 30
    round_ms: int = 250
    warmup_ms: int = 5_000
    lookahead_ms: int = 4_000
    max_held_nodes: int = 8
    horizon_nodes: int = 20
    priority_boost_ms: int = 10_000
    stall_weight: float = 3.0
    obstacle_s: float = 120.0
    max_lane_density: float = 0.2
    turn_after_ms: int = 20_000

    def __post_init__(self) -> None:
        for name in (
            "node_margin_ms",
            "dwell_ms",
            "min_headway_ms",
            "clear_ms",
            "reroute_min_wait_ms",
            "reroute_gain_ms",
            "latency_ms",
            "stand_ms",
            "deadlock_grace_ms",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.speed_mps <= 0 or self.bucket_ms <= 0 or self.conflict_ttl_ms <= 0 or self.max_rounds <= 0:
            raise ValueError("speed_mps, bucket_ms, conflict_ttl_ms and max_rounds must be positive")
