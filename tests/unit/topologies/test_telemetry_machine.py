"""The per-robot state machine of the telemetry topology: pure transitions driven by event time."""

from __future__ import annotations

import copy
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from topologies.telemetry import (
    AGGREGATES,
    ALERTS,
    STATUS,
    TIMERS,
    Output,
    TelemetryConfig,
    det_uuid7,
    on_telemetry,
    on_timer,
)

T0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)  # a window boundary
CFG = TelemetryConfig(offline_timeout_ms=10_000, heartbeat_ms=30_000, battery_low=0.2, battery_margin=0.05)


def sample(seq: int, at: int, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": f"e{seq}",
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": at,
        "robot_id": "r1",
        "fleet_id": "f1",
        "seq": seq,
        "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": None, "map_name": "m"},
        "battery": 0.8,
        "speed": 0.0,
        "mode": "IDLE",
        "error_code": None,
        "task_id": None,
        "task_phase": "NONE",
        "route": [],
    }
    pose = overrides.pop("pose", None)
    record.update(overrides)
    if pose:
        record["pose"] = {**record["pose"], **pose}
    return record


class Robot:
    """Drives one robot's state through the pure transitions and keeps every output."""

    def __init__(self, config: TelemetryConfig = CFG) -> None:
        self.config = config
        self.state: dict[str, Any] | None = None
        self.outputs: list[Output] = []

    def send(self, seq: int, at: int, **overrides: Any) -> list[Output]:
        before = copy.deepcopy(self.state)
        self.state, out = on_telemetry(self.state, sample(seq, at, **overrides), self.config)
        assert before is None or self.state is not None
        self.outputs += out
        return out

    def fire(self, due_at: int, tenant_id: str = "acme") -> list[Output]:
        timer = {
            "tenant_id": tenant_id,
            "timer_id": "x",
            "owner": "telemetry",
            "target_key": "r1",
            "due_at": due_at,
        }
        self.state, out = on_timer(self.state, timer, self.config)
        self.outputs += out
        return out


def of(outputs: list[Output], topic: str) -> list[dict[str, Any]]:
    return [o.value for o in outputs if o.topic == topic]


def kinds(outputs: list[Output]) -> list[tuple[str, str]]:
    """(topic, what) for each output: status reason+value, alert kind, 'timer', 'aggregate'."""
    result = []
    for o in outputs:
        if o.topic == STATUS:
            result.append((STATUS, f"{o.value['reason']}:{o.value['status']}"))
        elif o.topic == ALERTS:
            result.append((ALERTS, o.value["kind"]))
        else:
            result.append((o.topic, ""))
    return result


# ------------------------------------------------------------------------------ first sample, ordering


def test_first_sample_emits_a_change_and_arms_the_offline_timer():
    robot = Robot()
    out = robot.send(1, T0 + 100)
    assert kinds(out) == [(STATUS, "CHANGE:IDLE"), (TIMERS, "")]
    status = of(out, STATUS)[0]
    assert status["previous_status"] is None
    assert status["seq"] == 1 and status["last_seen_at"] == T0 + 100 and status["occurred_at"] == T0 + 100
    timer = of(out, TIMERS)[0]
    assert timer == {
        "event_id": timer["event_id"],
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": T0 + 100,
        "timer_id": "telemetry:offline:acme:r1",
        "owner": "telemetry",
        "target_key": "r1",
        "due_at": T0 + 100 + 10_000,
        "payload_json": orjson.dumps({"kind": "offline"}).decode(),
    }


def test_duplicate_seq_is_dropped_without_any_change():
    robot = Robot()
    robot.send(5, T0)
    state = robot.state
    assert robot.send(5, T0 + 500, mode="MOVING") == []
    assert robot.state is state


def test_stale_out_of_order_seq_is_dropped():
    robot = Robot()
    robot.send(5, T0)
    state = robot.state
    assert robot.send(4, T0 + 900, mode="ERROR") == []
    assert robot.state is state and state["status"] == "IDLE"


def test_a_robot_that_restarts_with_a_lower_seq_is_followed_and_its_status_seq_stays_monotonic():
    robot = Robot()
    robot.send(500, T0)
    robot.send(501, T0 + 500)
    out = robot.send(1, T0 + 5_000, mode="WORKING")  # rebooted: its seq began again
    assert [s["seq"] for s in of(out, STATUS)] == [503] and of(out, STATUS)[0]["status"] == "WORKING"
    assert robot.state is not None and robot.state["session_at"] == T0 + 5_000
    out = robot.send(2, T0 + 5_500, mode="MOVING", speed=1.0)
    assert [s["seq"] for s in of(out, STATUS)] == [504]
    assert robot.send(2, T0 + 5_500) == []  # a duplicate of the new session
    assert robot.send(501, T0 + 500) == []  # a re-sent sample from before the restart
    assert robot.send(900, T0 + 4_900, mode="ERROR") == []  # late, from before the restart
    assert robot.state["status"] == "MOVING" and robot.state["seq"] == 504


def test_a_lower_seq_within_the_restart_gap_is_stale_not_a_restart():
    robot = Robot(TelemetryConfig(restart_gap_ms=2_000))
    robot.send(5, T0)
    state = robot.state
    assert robot.send(4, T0 + 1_999, mode="ERROR") == []
    assert robot.state is state
    assert (
        of(robot.send(4, T0 + 2_000, mode="ERROR"), STATUS)[0]["seq"] == 10
    )  # the gap passed: counted on from 5


def test_an_offline_robot_back_with_its_seq_reset_comes_online():
    robot = Robot()
    robot.send(40, T0, mode="WORKING")
    robot.fire(T0 + 10_000)
    out = robot.send(1, T0 + 60_000, mode="IDLE")
    assert kinds(out) == [(ALERTS, "ROBOT_ONLINE"), (STATUS, "CHANGE:IDLE"), (TIMERS, "")]
    assert of(out, STATUS)[0]["seq"] == 42


# ------------------------------------------------------------------------------ status and heartbeat


def test_status_change_is_emitted_once_with_the_previous_status():
    robot = Robot()
    robot.send(1, T0)
    out = robot.send(2, T0 + 1000, mode="MOVING", speed=1.2)
    assert kinds(out) == [(STATUS, "CHANGE:MOVING")]
    assert of(out, STATUS)[0]["previous_status"] == "IDLE"
    assert robot.send(3, T0 + 2000, mode="MOVING", speed=1.1) == []


@pytest.mark.parametrize(
    "change",
    [
        {"task_id": "t9", "task_phase": "STARTED", "mode": "IDLE"},
        {"pose": {"node_id": "n7"}},
        {"route": [{"node_id": "n2", "eta": T0 + 9000}]},
    ],
)
def test_task_node_or_route_change_is_a_change_even_with_the_same_status(change: dict[str, Any]):
    robot = Robot()
    robot.send(1, T0, route=[])
    out = robot.send(2, T0 + 1000, **change)
    assert next(k for k in kinds(out) if k[0] == STATUS)[1].startswith("CHANGE:")


def test_a_new_eta_on_the_same_route_is_not_a_change():
    robot = Robot()
    robot.send(1, T0, route=[{"node_id": "n2", "eta": T0 + 9000}])
    assert robot.send(2, T0 + 1000, route=[{"node_id": "n2", "eta": T0 + 9500}]) == []


def test_heartbeat_every_period_of_event_time_without_change():
    robot = Robot()
    robot.send(1, T0)
    emitted = []
    for i in range(2, 70):  # one sample a second for 68 s
        emitted += [(i, k) for k in kinds(robot.send(i, T0 + (i - 1) * 1000)) if k[0] == STATUS]
    assert emitted == [(31, (STATUS, "HEARTBEAT:IDLE")), (61, (STATUS, "HEARTBEAT:IDLE"))]


def test_a_change_resets_the_heartbeat_period():
    robot = Robot()
    robot.send(1, T0)
    robot.send(2, T0 + 20_000, mode="MOVING")
    assert robot.send(3, T0 + 31_000, mode="MOVING") == []
    # (its offline timer never fires here, so it is armed again on the way: only statuses are compared)
    statuses = [k for k in kinds(robot.send(4, T0 + 50_000, mode="MOVING")) if k[0] == STATUS]
    assert statuses == [(STATUS, "HEARTBEAT:MOVING")]


# ------------------------------------------------------------------------------ battery hysteresis


def test_battery_low_once_per_crossing_with_hysteresis():
    robot = Robot()
    levels = [0.5, 0.25, 0.19, 0.15, 0.10, 0.21, 0.18, 0.24, 0.249, 0.25, 0.3, 0.1]
    alerts = []
    for i, level in enumerate(levels, start=1):
        alerts += [(level, a["kind"]) for a in of(robot.send(i, T0 + i * 1000, battery=level), ALERTS)]
    assert alerts == [(0.19, "BATTERY_LOW"), (0.25, "BATTERY_OK"), (0.1, "BATTERY_LOW")]


def test_first_sample_already_low_raises_battery_low():
    out = Robot().send(1, T0, battery=0.05)
    [alert] = of(out, ALERTS)
    assert alert["kind"] == "BATTERY_LOW" and alert["severity"] == "WARNING" and alert["subject_id"] == "r1"
    assert alert["alert_id"] == alert["event_id"]
    assert alert["message"] == "robot r1 battery 5% below 20%"


# ------------------------------------------------------------------------------ offline timer


def test_timer_is_armed_once_not_per_record():
    robot = Robot()
    timers = []
    for i in range(1, 20):
        timers += of(robot.send(i, T0 + i * 500), TIMERS)
    assert [t["due_at"] for t in timers] == [T0 + 500 + 10_000]


def test_a_timer_that_never_fired_is_armed_again_a_timeout_later():
    robot = Robot()
    robot.send(1, T0)  # armed for T0 + 10 s; that timer is lost on its way and never fires
    assert of(robot.send(2, T0 + 19_999), TIMERS) == []  # late, not yet a whole timeout late
    timers = of(robot.send(3, T0 + 20_000), TIMERS)
    assert [t["due_at"] for t in timers] == [T0 + 30_000]
    assert robot.state["timer_due"] == T0 + 30_000
    assert robot.fire(T0 + 10_000) == []  # the lost one turning up after all: not the armed one
    assert of(robot.send(4, T0 + 21_000), TIMERS) == []  # armed once, not per record


def test_fired_timer_rearms_for_the_remainder_when_the_robot_was_seen_since():
    robot = Robot()
    robot.send(1, T0)  # armed for T0 + 10 s
    robot.send(2, T0 + 4_000)
    out = robot.fire(T0 + 10_000)
    assert kinds(out) == [(TIMERS, "")]
    assert of(out, TIMERS)[0]["due_at"] == T0 + 14_000
    assert robot.state["timer_due"] == T0 + 14_000 and robot.state["status"] == "IDLE"


def test_quiet_robot_goes_offline_when_the_timer_fires():
    robot = Robot()
    robot.send(1, T0 + 1_000, battery=0.7, speed=0.5, mode="MOVING")
    out = robot.fire(T0 + 11_000)
    assert kinds(out) == [(STATUS, "OFFLINE:OFFLINE"), (ALERTS, "ROBOT_OFFLINE"), (AGGREGATES, "")]
    status = of(out, STATUS)[0]
    assert status["previous_status"] == "MOVING" and status["occurred_at"] == T0 + 11_000
    assert status["last_seen_at"] == T0 + 1_000 and status["seq"] == 1 and status["battery"] == 0.7
    alert = of(out, ALERTS)[0]
    assert alert["message"] == "robot r1 sent no telemetry for 10 s (last seen 2025-03-01T08:00:01.000+00:00)"
    assert robot.state["timer_due"] is None


def test_a_timer_that_is_not_the_armed_one_is_ignored():
    robot = Robot()
    robot.send(1, T0)
    robot.send(2, T0 + 6_000)
    robot.fire(T0 + 10_000)  # re-armed for T0 + 16 s
    state = robot.state
    assert robot.fire(T0 + 10_000) == []  # the same timer delivered twice
    assert robot.fire(T0 + 12_345) == []  # a timer this state never armed
    assert robot.fire(T0 + 16_000, tenant_id="globex") == []  # another tenant's timer
    assert robot.state is state


def test_timer_for_an_unknown_robot_is_ignored():
    robot = Robot()
    assert robot.fire(T0) == [] and robot.state is None


def test_offline_then_online_again():
    robot = Robot()
    robot.send(1, T0, mode="WORKING")
    robot.fire(T0 + 10_000)
    assert robot.fire(T0 + 10_000) == []  # fired twice: already offline and disarmed
    out = robot.send(2, T0 + 95_000, mode="IDLE")
    assert kinds(out) == [(ALERTS, "ROBOT_ONLINE"), (STATUS, "CHANGE:IDLE"), (TIMERS, "")]
    assert of(out, STATUS)[0]["previous_status"] == "OFFLINE"
    assert of(out, ALERTS)[0]["severity"] == "INFO"
    assert of(out, TIMERS)[0]["due_at"] == T0 + 105_000


def test_whole_site_quiet_scenario_each_robot_goes_offline_exactly_once():
    # Three robots report for a while, then the whole site falls silent; only timers arrive.
    robots = {rid: Robot() for rid in ("a", "b", "c")}
    pending: dict[str, int] = {}
    for t in range(0, 20_000, 1_000):
        for n, (rid, robot) in enumerate(robots.items()):
            out = robot.send(t // 1_000 + 1, T0 + t + n * 100, robot_id=rid)
            for timer in of(out, TIMERS):
                pending[rid] = timer["due_at"]
    offline: list[str] = []
    clock = T0 + 20_000
    while pending:  # the timer service: fire the earliest pending timer
        rid, due = min(pending.items(), key=lambda kv: kv[1])
        del pending[rid]
        clock = max(clock, due)
        out = robots[rid].fire(due)
        for timer in of(out, TIMERS):
            pending[rid] = timer["due_at"]
        offline += [s["robot_id"] for s in of(out, STATUS) if s["status"] == "OFFLINE"]
    assert sorted(offline) == ["a", "b", "c"]
    assert clock == T0 + 19_200 + 10_000  # the last robot, last seen at 19.2 s
    assert all(r.state["timer_due"] is None for r in robots.values())


# ------------------------------------------------------------------------------ aggregates


def test_one_minute_aggregate_is_emitted_when_the_next_window_opens():
    robot = Robot()
    poses = [(0.0, 0.0), (3.0, 4.0), (3.0, 4.0), (6.0, 8.0)]
    for i, ((x, y), battery, speed) in enumerate(
        zip(poses, [0.9, 0.8, 0.85, 0.7], [0.0, 1.0, 0.0, 2.0], strict=True)
    ):
        assert (
            of(
                robot.send(i + 1, T0 + i * 15_000, pose={"x": x, "y": y}, battery=battery, speed=speed),
                AGGREGATES,
            )
            == []
        )
    out = robot.send(5, T0 + 61_000, pose={"x": 6.0, "y": 9.0})
    [agg] = of(out, AGGREGATES)
    assert agg == {
        "event_id": agg["event_id"],
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": T0,
        "robot_id": "r1",
        "fleet_id": "f1",
        "window_start": T0,
        "window_end": T0 + 60_000,
        "count": 4,
        "battery_min": 0.7,
        "battery_max": 0.9,
        "battery_avg": pytest.approx(0.8125),
        "speed_avg": 0.75,
        "speed_max": 2.0,
        "distance_m": 10.0,
    }
    assert uuid.UUID(agg["event_id"]).version == 7
    # The step from (6, 8) to (6, 9) belongs to the second window.
    assert robot.state["window"]["dist"] == 1.0 and robot.state["window"]["count"] == 1


def test_distance_is_not_counted_across_maps():
    robot = Robot()
    robot.send(1, T0, pose={"x": 0.0, "y": 0.0, "map_name": "L1"})
    robot.send(2, T0 + 1_000, pose={"x": 30.0, "y": 40.0, "map_name": "L2"})
    assert robot.state["window"]["dist"] == 0.0


def test_late_sample_of_an_emitted_window_is_not_aggregated():
    robot = Robot()
    robot.send(1, T0 + 59_000)
    robot.send(2, T0 + 60_500)  # closes window 0
    out = robot.send(3, T0 + 59_500)  # newer seq, older window: status yes, aggregate no
    assert of(out, AGGREGATES) == []
    assert robot.state["window"]["start"] == T0 + 60_000 and robot.state["window"]["count"] == 1


def test_offline_flushes_the_open_window_and_a_return_within_it_reemits_the_whole_window():
    robot = Robot()
    robot.send(1, T0 + 1_000, battery=0.9)
    [partial] = of(robot.fire(T0 + 11_000), AGGREGATES)
    assert partial["count"] == 1 and partial["window_start"] == T0
    robot.send(2, T0 + 40_000, battery=0.5)  # back within the same window
    [full] = of(robot.send(3, T0 + 61_000), AGGREGATES)
    assert full["window_start"] == T0 and full["count"] == 2 and full["battery_min"] == 0.5
    assert full["event_id"] != partial["event_id"]


def test_a_flushed_window_without_new_samples_is_not_emitted_again():
    robot = Robot()
    robot.send(1, T0 + 1_000)
    robot.fire(T0 + 11_000)
    out = robot.send(2, T0 + 200_000)
    assert of(out, AGGREGATES) == []


# ------------------------------------------------------------------------------ purity and ids


def test_transitions_do_not_mutate_their_inputs_and_are_deterministic():
    robot = Robot()
    robot.send(1, T0)
    state = copy.deepcopy(robot.state)
    record = sample(2, T0 + 61_000, mode="MOVING", battery=0.1)
    frozen = copy.deepcopy(record)
    first = on_telemetry(robot.state, record, CFG)
    second = on_telemetry(robot.state, record, CFG)
    assert robot.state == state and record == frozen
    assert first == second


def test_det_uuid7_is_a_v7_uuid_carrying_the_time():
    value = uuid.UUID(det_uuid7(T0, "acme", "r1", 1))
    assert value.version == 7 and value.int >> 80 == T0
    assert det_uuid7(T0, "a", 1) != det_uuid7(T0, "a", 2)


def test_robot_id_moved_to_another_tenant_starts_over():
    robot = Robot()
    robot.send(10, T0)
    out = robot.send(1, T0 + 1_000, tenant_id="globex")
    assert of(out, STATUS)[0]["previous_status"] is None and robot.state["tenant_id"] == "globex"


def test_aggregate_averages_are_finite():
    robot = Robot()
    robot.send(1, T0, battery=0.0, speed=0.0)
    [agg] = of(robot.send(2, T0 + 60_000), AGGREGATES)
    assert all(math.isfinite(agg[k]) for k in ("battery_avg", "speed_avg", "distance_m"))
