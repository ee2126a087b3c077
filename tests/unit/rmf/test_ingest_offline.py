"""RMF robots that fall silent become OFFLINE (topologies.rmf): one offline timer per robot through the
timer service, armed once, re-armed for the remainder while states keep coming, OFFLINE exactly once."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from pipelines.rmf import fleet_state, robot_state
from schemas import rmf
from schemas.models import RobotStatus, Timer
from topologies.rmf import (
    OUTPUT_TOPIC,
    OWNER,
    STATE_ROBOT_PREFIX,
    TIMERS_TOPIC,
    Output,
    RmfIngestConfig,
    RmfIngestStep,
    fleet_outputs,
    timer_outputs,
)

TIMEOUT = 10_000
CFG = RmfIngestConfig(tenant_id="t1", site_id="s1", heartbeat_ms=60_000, offline_timeout_ms=TIMEOUT)
T = 1_767_225_600.0  # seconds: RMF's unix_millis_time of the first state
R = 1_767_225_600_250  # ms: Kafka timestamp (the gateway's clock) of the first state, 250 ms later


def states(memories: dict[str, Any], message: dict[str, Any], received_ms: int) -> list[Output]:
    rmf.validate(message)
    return fleet_outputs(memories, message, CFG, received_ms)


def split(out: list[Output]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(RobotStatus records, Timers) of ``out``, each validated against its record model."""
    statuses = [o.value for o in out if o.topic == OUTPUT_TOPIC]
    timers = [o.value for o in out if o.topic == TIMERS_TOPIC]
    assert len(statuses) + len(timers) == len(out)
    for record in statuses:
        RobotStatus.model_validate(record)
    for timer in timers:
        Timer.model_validate(timer)
    return statuses, timers


def at(robot: dict[str, Any], seconds: float, **changes: Any) -> dict[str, Any]:
    return {**copy.deepcopy(robot), "unix_millis_time": int((T + seconds) * 1000), **changes}


def test_first_state_arms_one_timer_keyed_for_the_fleet_partition() -> None:
    memories: dict[str, Any] = {}
    [status], [timer] = split(states(memories, fleet_state("f", {"r1": robot_state("r1", T)}), R))
    assert status["status"] == "IDLE"
    assert timer["owner"] == OWNER == "rmf-ingest"
    assert timer["target_key"] == "f"  # back on timers.due.rmf-ingest with the fleet's key and state
    assert timer["due_at"] == R + TIMEOUT  # the gateway's clock, not RMF's
    assert orjson.loads(timer["payload_json"]) == {"kind": "offline", "robot_id": "r1"}
    out = states({}, fleet_state("f", {"r1": robot_state("r1", T)}), R)
    assert [(o.topic, o.key) for o in out] == [(OUTPUT_TOPIC, "r1"), (TIMERS_TOPIC, timer["timer_id"])]
    assert timer["timer_id"] == "rmf-ingest:offline:t1:f:r1"
    assert memories["r1"]["timer_due"] == R + TIMEOUT


def test_silence_makes_the_robot_offline_exactly_once() -> None:
    memories: dict[str, Any] = {}
    first = robot_state("r1", T, status="working", task_id="delivery.dispatch-1", battery=0.6)
    _, [timer] = split(states(memories, fleet_state("f", {"r1": first}), R))

    [offline], timers = split(timer_outputs(memories, "f", timer, CFG))
    assert timers == []  # disarmed: nothing more to wait for
    ms = first["unix_millis_time"]
    assert (offline["status"], offline["previous_status"], offline["reason"]) == (
        "OFFLINE",
        "WORKING",
        "OFFLINE",
    )
    assert (offline["robot_id"], offline["fleet_id"], offline["tenant_id"]) == ("r1", "f", "t1")
    assert offline["occurred_at"] == ms + TIMEOUT  # in RMF's time, like the robot's other records
    assert offline["seq"] == offline["last_seen_at"] == ms
    assert offline["battery"] == 0.6 and offline["task_id"] == "delivery.dispatch-1"
    assert offline["pose"]["x"] == first["location"]["x"] and offline["speed"] == 0.0
    assert memories["r1"]["timer_due"] is None

    assert timer_outputs(memories, "f", timer, CFG) == []  # the timer service fires at least once
    again = {**timer, "due_at": timer["due_at"] + TIMEOUT}
    assert timer_outputs(memories, "f", again, CFG) == []  # no timer armed: nothing to fire


def test_a_timer_fired_after_newer_states_rearms_for_the_remainder() -> None:
    memories: dict[str, Any] = {}
    robot = robot_state("r1", T)
    _, [timer] = split(states(memories, fleet_state("f", {"r1": robot}), R))
    for i in range(1, 6):  # one state a second: the armed timer stays, none is produced per state
        _, timers = split(states(memories, fleet_state("f", {"r1": at(robot, i)}), R + i * 1000))
        assert timers == []
    statuses, [rearmed] = split(timer_outputs(memories, "f", timer, CFG))
    assert statuses == []
    assert rearmed["due_at"] == R + 5000 + TIMEOUT and rearmed["timer_id"] == timer["timer_id"]
    assert rearmed["occurred_at"] == timer["due_at"]
    assert timer_outputs(memories, "f", timer, CFG) == []  # the superseded timer fired twice: ignored
    [offline], [] = split(timer_outputs(memories, "f", rearmed, CFG))
    assert offline["status"] == "OFFLINE" and offline["seq"] == at(robot, 5)["unix_millis_time"]


def test_a_robot_that_comes_back_reports_its_new_status_and_is_watched_again() -> None:
    memories: dict[str, Any] = {}
    robot = robot_state("r1", T)
    _, [timer] = split(states(memories, fleet_state("f", {"r1": robot}), R))
    [offline], _ = split(timer_outputs(memories, "f", timer, CFG))

    back = at(robot, 60, status="charging")
    [status], [timer] = split(states(memories, fleet_state("f", {"r1": back}), R + 60_000))
    assert (status["status"], status["previous_status"], status["reason"]) == ("CHARGING", "OFFLINE", "RMF")
    assert status["occurred_at"] > offline["occurred_at"]
    assert timer["due_at"] == R + 60_000 + TIMEOUT
    [offline_again], [] = split(timer_outputs(memories, "f", timer, CFG))
    assert (offline_again["previous_status"], offline_again["status"]) == ("CHARGING", "OFFLINE")
    assert offline_again["event_id"] != offline["event_id"]


def test_back_with_the_same_status_is_emitted_at_once_too() -> None:
    memories: dict[str, Any] = {}
    robot = robot_state("r1", T)
    _, [timer] = split(states(memories, fleet_state("f", {"r1": robot}), R))
    timer_outputs(memories, "f", timer, CFG)
    [status], [_] = split(states(memories, fleet_state("f", {"r1": at(robot, 30)}), R + 30_000))
    assert (status["status"], status["previous_status"]) == ("IDLE", "OFFLINE")


def test_states_buffered_during_an_outage_then_the_first_newer_than_offline_is_emitted() -> None:
    """An adapter that lost its connection sends its buffered states on reconnect: stamped before the
    OFFLINE record's time, they are not emitted (every consumer orders by occurred_at and would put them
    before the OFFLINE: a robot's records move forward in time); the first state stamped after it is
    emitted, even with nothing else changed."""
    memories: dict[str, Any] = {}
    robot = robot_state("r1", T)
    _, [timer] = split(states(memories, fleet_state("f", {"r1": robot}), R))
    [offline], _ = split(timer_outputs(memories, "f", timer, CFG))
    received = R + 20_000  # all of them arrive together on reconnect
    assert split(states(memories, fleet_state("f", {"r1": at(robot, 5)}), received))[0] == []
    assert split(states(memories, fleet_state("f", {"r1": at(robot, 9)}), received))[0] == []
    [newer], _ = split(states(memories, fleet_state("f", {"r1": at(robot, 11)}), received))
    assert newer["occurred_at"] > offline["occurred_at"] and newer["previous_status"] == "OFFLINE"
    assert split(states(memories, fleet_state("f", {"r1": at(robot, 12)}), received))[0] == []


def test_a_robot_rmf_reports_offline_is_not_reported_again() -> None:
    memories: dict[str, Any] = {}
    message = fleet_state("f", {"r1": robot_state("r1", T, status="offline")})
    [status], [timer] = split(states(memories, message, R))
    assert status["status"] == "OFFLINE" and status["reason"] == "RMF"
    assert timer_outputs(memories, "f", timer, CFG) == []
    assert memories["r1"]["timer_due"] is None


def test_a_robot_removed_from_its_fleet_goes_offline_while_the_others_stay(harness: Any) -> None:
    h = harness(RmfIngestStep(CFG))
    robots = {"r1": robot_state("r1", T), "r2": robot_state("r2", T)}
    first = h.send("fleet_state", "f", fleet_state("f", robots), R)
    armed = {o.value["timer_id"]: o.value for o in first if o.topic == TIMERS_TOPIC}
    assert len(armed) == 2
    for i in range(1, 12):  # r2 left the fleet's list; r1 keeps reporting
        out = h.send("fleet_state", "f", fleet_state("f", {"r1": at(robots["r1"], i)}), R + i * 1000)
        assert all(o.topic == OUTPUT_TOPIC for o in out)

    fired = [o for timer in armed.values() for o in h.send("timer", "f", timer, timer["due_at"])]
    statuses, timers = split(fired)
    assert [(r["robot_id"], r["status"], r["previous_status"]) for r in statuses] == [
        ("r2", "OFFLINE", "IDLE")
    ]
    assert [t["payload_json"] for t in timers] == ['{"kind":"offline","robot_id":"r1"}']
    assert timers[0]["due_at"] == R + 11_000 + TIMEOUT
    h.checkpoint()
    assert h.stored("f", STATE_ROBOT_PREFIX + "r2")["status"] == "OFFLINE"
    before = {r: h.stored("f", STATE_ROBOT_PREFIX + r) for r in ("r1", "r2")}
    assert [o for timer in armed.values() for o in h.send("timer", "f", timer, 0)] == []  # fired again
    h.checkpoint()
    assert {r: h.stored("f", STATE_ROBOT_PREFIX + r) for r in ("r1", "r2")} == before  # nothing written


@pytest.mark.parametrize(
    "change",
    [
        {"owner": "telemetry"},
        {"tenant_id": "t2"},
        {"payload_json": '{"kind": "offline"}'},
        {"payload_json": "not json"},
        {"payload_json": None},
    ],
)
def test_timers_that_are_not_ours_are_ignored(change: dict[str, Any], harness: Any) -> None:
    h = harness(RmfIngestStep(CFG))
    [_, timer] = h.send("fleet_state", "f", fleet_state("f", {"r1": robot_state("r1", T)}), R)
    h.checkpoint()
    before = h.stored("f", STATE_ROBOT_PREFIX + "r1")
    assert h.send("timer", "f", {**timer.value, **change}, 0) == []
    h.checkpoint()
    assert h.stored("f", STATE_ROBOT_PREFIX + "r1") == before
    assert h.send("timer", "f", timer.value, 0)[0].value["status"] == "OFFLINE"


def test_a_timer_for_an_unknown_robot_is_ignored(harness: Any) -> None:
    h = harness(RmfIngestStep(CFG))
    [_, timer] = h.send("fleet_state", "f", fleet_state("f", {"r1": robot_state("r1", T)}), R)
    assert h.send("timer", "g", timer.value, 0) == []  # state of another key: no such robot
