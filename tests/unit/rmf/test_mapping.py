"""RMF fleet states -> RobotStatus records."""

from __future__ import annotations

from typing import Any

from pipelines.rmf import fleet_state, robot_state
from pipelines.rmf.mapping import RMF_ROBOT_STATUS, robot_statuses
from schemas import rmf
from schemas.models import RobotState, RobotStatus


def run(memory: dict[str, Any], message: dict[str, Any]) -> list[dict[str, Any]]:
    return robot_statuses(memory, message, tenant_id="t1", site_id="s1", received_ms=0)


def test_maps_every_rmf_status_onto_a_robot_state() -> None:
    assert set(RMF_ROBOT_STATUS) == set(rmf.validator("robot_state").schema["properties"]["status"]["enum"])
    assert set(RMF_ROBOT_STATUS.values()) <= {s.value for s in RobotState}


def test_robot_states_become_valid_robot_status_records() -> None:
    message = fleet_state(
        "tinyRobot", {"r1": robot_state("r1", 100.0, battery=0.42, status="charging", task_id="x")}
    )
    rmf.validate(message)
    [record] = run({}, message)
    RobotStatus.model_validate(record)
    assert (record["robot_id"], record["fleet_id"], record["status"]) == ("r1", "tinyRobot", "CHARGING")
    assert record["battery"] == 0.42 and record["task_id"] == "x" and record["reason"] == "RMF"
    assert record["pose"]["map_name"] == "L1" and record["seq"] == 100_000 == record["occurred_at"]


def test_duplicates_stale_and_unchanged_repeats_are_dropped() -> None:
    memory: dict[str, Any] = {}
    first = fleet_state("f", {"r1": robot_state("r1", 100.0)})
    assert len(run(memory, first)) == 1
    assert run(memory, first) == []  # re-sent on reconnect
    assert run(memory, fleet_state("f", {"r1": robot_state("r1", 99.0, status="error")})) == []  # older
    same = fleet_state("f", {"r1": {**robot_state("r1", 100.0), "unix_millis_time": 101_000}})
    assert run(memory, same) == []  # newer, nothing changed
    [changed] = run(memory, fleet_state("f", {"r1": robot_state("r1", 102.0, status="working")}))
    assert (changed["status"], changed["previous_status"]) == ("WORKING", "IDLE")
