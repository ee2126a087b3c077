"""The RMF JSON codec validates against the vendored rmf_api_msgs schemas, replaying upstream samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas import rmf
from schemas.errors import SchemaDecodeError, SchemaEncodeError

VENDORED = Path(rmf.__file__).parent / "rmf_api_msgs"
#: The upstream copy the project shares (``../shared/rmf_api_msgs``), else the vendored one (identical).
SHARED = Path(__file__).resolve().parents[4] / "shared" / "rmf_api_msgs"
UPSTREAM = SHARED if SHARED.is_dir() else VENDORED
SAMPLES = UPSTREAM / "samples"


def _sample(kind: str) -> dict[str, Any]:
    return json.loads((SAMPLES / kind / "multi_dropoff_delivery.json").read_text())


FLEET_STATE = {
    "type": "fleet_state_update",
    "data": {
        "name": "tinyRobot",
        "robots": {
            "tinyRobot1": {
                "name": "tinyRobot1",
                "status": "working",
                "task_id": "delivery-1",
                "unix_millis_time": 1636388410000,
                "location": {"map": "L1", "x": 10.5, "y": -3.0, "yaw": 1.57},
                "battery": 0.82,
                "issues": [],
            }
        },
    },
}
DISPATCH = {
    "type": "dispatch_task_request",
    "request": {
        "category": "delivery",
        "description": {"pickup": {"place": "pantry", "handler": "coke_dispenser", "payload": []}},
        "unix_millis_earliest_start_time": 1636388400000,
    },
}
CANCEL = {"type": "cancel_task_request", "task_id": "delivery-1", "labels": ["operator"]}
FLEET_LOG = {
    "type": "fleet_log_update",
    "data": {"name": "tinyRobot", "log": [{"seq": 1, "tier": "info", "unix_millis_time": 1, "text": "hi"}]},
}


def test_vendored_copy_is_complete_with_license() -> None:
    assert len(rmf.schema_names()) == 49
    assert "Apache License" in (VENDORED / "LICENSE.md").read_text()
    assert "7915f6a9ea5440c5dd47f59ca40d2b3a4007df6a" in (VENDORED / "README.md").read_text()
    if SHARED.is_dir():  # byte-for-byte identical to the project's shared upstream copy, samples included
        upstream = sorted(p.relative_to(SHARED) for p in SHARED.rglob("*.json"))
        assert upstream == sorted(p.relative_to(VENDORED) for p in VENDORED.rglob("*.json"))
        for rel in upstream:
            assert (VENDORED / rel).read_bytes() == (SHARED / rel).read_bytes(), rel


@pytest.mark.parametrize("name", rmf.schema_names())
def test_every_schema_compiles_and_resolves_offline(name: str) -> None:
    validator = rmf.validator(name)
    list(validator.iter_errors({}))  # follows every $ref reachable from the root without fetching


def test_upstream_samples_validate() -> None:
    assert rmf.errors(_sample("task_state"), "task_state") == []
    assert rmf.errors(_sample("task_log"), "task_log") == []
    assert rmf.validate({"type": "task_state_update", "data": _sample("task_state")}) == "task_state_update"
    assert rmf.validate({"type": "task_log_update", "data": _sample("task_log")}) == "task_log_update"


def test_upstream_samples_replay_through_our_readers() -> None:
    """What the tasks topology makes of RMF's own sample: a task state without a status moves nothing;
    with one, it maps by the status table onto the task named by booking.id."""
    from gateway.rmf_ws import frame_key
    from topologies.tasks import from_rmf

    state = _sample("task_state")
    assert frame_key("task_state_update", state) == "delivery_2021:11:08:23:50"
    assert frame_key("task_log_update", _sample("task_log")) == _sample("task_log")["task_id"]
    assert from_rmf({"type": "task_state_update", "data": state}, 1) == []
    [observed] = from_rmf({"type": "task_state_update", "data": {**state, "status": "underway"}}, 1)
    assert (observed["task_id"], observed["observed"]) == ("delivery_2021:11:08:23:50", "EXECUTING")
    codec = rmf.RmfJsonCodec("rmf.task_states")
    message = {"type": "task_state_update", "data": state}
    assert codec.decode(codec.encode(message)) == message


@pytest.mark.parametrize("message", [FLEET_STATE, DISPATCH, CANCEL, FLEET_LOG], ids=lambda m: m["type"])
def test_messages_we_carry_validate(message: dict[str, Any]) -> None:
    assert rmf.validate(message) == message["type"]


def test_invalid_messages_are_refused_with_the_location() -> None:
    bad_battery = json.loads(json.dumps(FLEET_STATE))
    bad_battery["data"]["robots"]["tinyRobot1"]["battery"] = 1.5
    with pytest.raises(ValueError, match=r"data/robots/tinyRobot1/battery.*maximum"):
        rmf.validate(bad_battery)
    no_map = json.loads(json.dumps(FLEET_STATE))
    del no_map["data"]["robots"]["tinyRobot1"]["location"]["map"]
    with pytest.raises(ValueError, match="'map' is a required property"):
        rmf.validate(no_map)
    broken_state = {"type": "task_state_update", "data": {"booking": {}}}
    with pytest.raises(ValueError, match="'id' is a required property"):
        rmf.validate(broken_state)
    with pytest.raises(ValueError, match="type 'robot_dance'"):
        rmf.validate({"type": "robot_dance"})
    with pytest.raises(ValueError, match="'task_id' is a required property"):
        rmf.validate({"type": "cancel_task_request"})


def test_codec_round_trip_and_topic_restrictions() -> None:
    codec = rmf.RmfJsonCodec("rmf.task_states")
    message = {"type": "task_state_update", "data": _sample("task_state")}
    data = codec.encode(message)
    assert isinstance(data, bytes)
    assert codec.decode(data) == message
    assert codec.encode(None) is None and codec.decode(None) is None
    with pytest.raises(SchemaEncodeError, match=r"does not belong on rmf\.task_states"):
        codec.encode(FLEET_STATE)
    with pytest.raises(SchemaDecodeError, match="does not belong"):
        codec.decode(orjson.dumps(FLEET_STATE))
    logs = rmf.RmfJsonCodec("rmf.logs")
    assert logs.decode(orjson.dumps(FLEET_LOG)) == FLEET_LOG
    assert logs.decode(orjson.dumps({"type": "task_log_update", "data": _sample("task_log")}))["type"] == (
        "task_log_update"
    )
    with pytest.raises(KeyError):
        rmf.RmfJsonCodec("robot.telemetry")


@pytest.mark.parametrize("garbage", [b"", b"{", b"\x00\x00\x00\x00\x01abc", b"[1, 2]", b'"text"'])
def test_codec_malformed_bytes_raise_schema_decode_error(garbage: bytes) -> None:
    with pytest.raises(SchemaDecodeError):
        rmf.RmfJsonCodec("rmf.fleet_states").decode(garbage)
