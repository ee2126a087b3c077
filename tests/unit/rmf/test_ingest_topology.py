"""RMF fleet states -> RobotStatus records (topologies.rmf): mapping, dedupe, throttling, the Quix adapter."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from pipelines.rmf import fleet_state, robot_state
from schemas import rmf
from schemas.errors import RejectedRecord
from schemas.models import RobotState, RobotStatus
from topologies.rmf import (
    RMF_ROBOT_STATUS,
    STATE_ROBOT_PREFIX,
    RmfIngestConfig,
    RmfIngestStep,
    fleet_statuses,
)

CFG = RmfIngestConfig(tenant_id="t1", site_id="s1", fleet_sites={"other": "s2"}, heartbeat_ms=10_000)
T = 1_767_225_600.0  # seconds, as robot_state() takes them


def run(memory: dict[str, Any], message: dict[str, Any], received_ms: int = 0) -> list[dict[str, Any]]:
    rmf.validate(message)  # every message the tests feed is one RMF may send
    return fleet_statuses(memory, message, CFG, received_ms)


def at(robot: dict[str, Any], ms: int, **changes: Any) -> dict[str, Any]:
    """``robot`` re-stamped at ``ms`` with ``changes``."""
    return {**copy.deepcopy(robot), "unix_millis_time": ms, **changes}


def test_every_rmf_status_maps_onto_a_robot_state() -> None:
    assert set(RMF_ROBOT_STATUS) == set(rmf.validator("robot_state").schema["properties"]["status"]["enum"])
    assert set(RMF_ROBOT_STATUS.values()) <= {s.value for s in RobotState}


@pytest.mark.parametrize(("rmf_status", "ours"), sorted(RMF_ROBOT_STATUS.items()))
def test_robot_states_become_valid_robot_status_records(rmf_status: str, ours: str) -> None:
    robot = robot_state("r1", T, battery=0.42, status=rmf_status, task_id="delivery.dispatch-3")
    [record] = run({}, fleet_state("tinyRobot", {"r1": robot}))
    RobotStatus.model_validate(record)
    assert (record["tenant_id"], record["site_id"]) == ("t1", "s1")
    assert (record["robot_id"], record["fleet_id"], record["status"]) == ("r1", "tinyRobot", ours)
    assert record["battery"] == 0.42 and record["task_id"] == "delivery.dispatch-3"
    assert record["reason"] == "RMF" and record["previous_status"] is None
    location = robot["location"]
    assert record["pose"] == {
        "x": location["x"], "y": location["y"], "yaw": location["yaw"], "node_id": None, "map_name": "L1",
    }  # fmt: skip
    assert record["seq"] == record["occurred_at"] == record["last_seen_at"] == robot["unix_millis_time"]


def test_site_per_fleet_name_from_key_and_no_task_is_none() -> None:
    robots = {"key-name": {**robot_state("", T), "name": ""}, "b": robot_state("b", T)}
    records = run({}, fleet_state("other", robots))
    assert [(r["robot_id"], r["site_id"], r["task_id"]) for r in records] == [
        ("b", "s2", None),
        ("key-name", "s2", None),
    ]


def test_duplicates_and_older_states_are_dropped() -> None:
    memory: dict[str, Any] = {}
    message = fleet_state("f", {"r1": robot_state("r1", T)})
    assert len(run(memory, message)) == 1
    assert run(memory, message) == []  # re-sent on reconnect
    older = fleet_state("f", {"r1": robot_state("r1", T - 1, status="error")})
    assert run(memory, older) == []


def test_status_task_and_map_changes_are_emitted_at_once_with_the_previous_status() -> None:
    memory: dict[str, Any] = {}
    first = robot_state("r1", T)
    ms = first["unix_millis_time"]
    run(memory, fleet_state("f", {"r1": first}))
    [working] = run(memory, fleet_state("f", {"r1": at(first, ms + 1, status="working")}))
    assert (working["status"], working["previous_status"]) == ("WORKING", "IDLE")
    [tasked] = run(memory, fleet_state("f", {"r1": at(first, ms + 2, status="working", task_id="x")}))
    assert tasked["task_id"] == "x" and tasked["previous_status"] == "WORKING"
    moved = at(first, ms + 3, status="working", task_id="x")
    moved["location"] = {**moved["location"], "map": "L2"}
    [other_map] = run(memory, fleet_state("f", {"r1": moved}))
    assert other_map["pose"]["map_name"] == "L2" and other_map["speed"] == 0.0


def test_pose_changes_are_throttled_and_repeats_become_heartbeats() -> None:
    memory: dict[str, Any] = {}
    first = robot_state("r1", T)
    ms = first["unix_millis_time"]
    run(memory, fleet_state("f", {"r1": first}))
    step = at(first, ms + 500)
    step["location"] = {**step["location"], "x": step["location"]["x"] + 1.0}
    assert run(memory, fleet_state("f", {"r1": step})) == []  # moved, but within min_interval_ms
    step = at(step, ms + 1000)
    step["location"] = {**step["location"], "x": step["location"]["x"] + 1.0}
    [moved] = run(memory, fleet_state("f", {"r1": step}))
    assert moved["pose"]["x"] == pytest.approx(first["location"]["x"] + 2.0)
    assert moved["speed"] == pytest.approx(2.0)  # 1 m in the last 0.5 s
    assert run(memory, fleet_state("f", {"r1": at(step, ms + 2000)})) == []  # nothing changed
    assert run(memory, fleet_state("f", {"r1": at(step, ms + 10_999)})) == []
    [heartbeat] = run(memory, fleet_state("f", {"r1": at(step, ms + 11_000)}))
    assert heartbeat["occurred_at"] == ms + 11_000 and heartbeat["status"] == "IDLE"


def test_missing_fields_keep_the_last_known_values_and_time_falls_back_to_the_record() -> None:
    memory: dict[str, Any] = {}
    first = robot_state("r1", T, battery=0.5)
    run(memory, fleet_state("f", {"r1": first}))
    bare = {"name": "r1", "status": "charging"}
    [record] = run(memory, fleet_state("f", {"r1": bare}), received_ms=first["unix_millis_time"] + 5)
    assert record["battery"] == 0.5 and record["pose"]["x"] == first["location"]["x"]
    assert record["occurred_at"] == first["unix_millis_time"] + 5 and record["status"] == "CHARGING"


def test_event_ids_are_deterministic_so_a_replay_emits_the_same_records() -> None:
    message = fleet_state("f", {"r1": robot_state("r1", T), "r2": robot_state("r2", T)})
    first, again = run({}, message), run({}, message)
    assert first == again and len({r["event_id"] for r in first}) == 2


def test_the_step_keeps_one_sub_key_per_robot_and_writes_only_what_changed(harness: Any) -> None:
    h = harness(RmfIngestStep(CFG))
    message = fleet_state("f", {"r1": robot_state("r1", T), "r2": robot_state("r2", T)})
    out = h.send("fleet_state", "f", message, 0)
    assert [(o.topic, o.key) for o in out] == [
        ("robot.status", "r1"), ("timers", "rmf-ingest:offline:t1:f:r1"),
        ("robot.status", "r2"), ("timers", "rmf-ingest:offline:t1:f:r2"),
    ]  # fmt: skip
    h.checkpoint()
    stored = {r: h.stored("f", STATE_ROBOT_PREFIX + r) for r in ("r1", "r2")}
    assert all(stored.values()) and h.stored("f", STATE_ROBOT_PREFIX + "r3") is None
    assert h.send("fleet_state", "f", message, 0) == []  # a duplicate: nothing emitted, nothing changed
    h.checkpoint()
    assert {r: h.stored("f", STATE_ROBOT_PREFIX + r) for r in ("r1", "r2")} == stored
    assert h.send("fleet_state", "f", {"type": "fleet_log_update", "data": {}}, 0) == []
    with pytest.raises(RejectedRecord, match="does not match the fleet"):
        h.send("fleet_state", "g", message, 0)
    with pytest.raises(RejectedRecord, match=r"without data\.name"):
        h.send("fleet_state", "f", {"type": "fleet_state_update", "data": {"robots": {}}}, 0)


def test_config_refuses_empty_tenant_or_site() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        RmfIngestConfig(tenant_id="", site_id="s1")
    with pytest.raises(ValueError, match="heartbeat_ms"):
        RmfIngestConfig(tenant_id="t", site_id="s", heartbeat_ms=0)
    with pytest.raises(ValueError, match="offline_timeout_ms"):
        RmfIngestConfig(tenant_id="t", site_id="s", offline_timeout_ms=0)
