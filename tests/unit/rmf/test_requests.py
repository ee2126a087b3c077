"""The messages the RMF sink builds validate against the vendored rmf_api_msgs schemas."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from gateway.rmf_ws import FRAME_TOPICS, _FastValidators, frame_key
from schemas import rmf
from sinks.rmf import requests as rq
from topologies.tasks import RMF_TASK_LABEL, from_rmf

SAMPLES = Path(rmf.RMF_SCHEMA_DIR).parent / "samples"
NOW = 1_760_000_000_000


def spec(**overrides: object) -> dict[str, object]:
    return {
        "category": "delivery",
        "priority": 5,
        "pickup_node": "A",
        "dropoff_node": "B",
        "labels": {},
    } | overrides


def test_task_label_is_the_one_the_tasks_topology_reads() -> None:
    assert rq.TASK_LABEL == RMF_TASK_LABEL


@pytest.mark.parametrize(
    ("given", "category", "key"),
    [
        (spec(), "delivery", "pickup"),
        (spec(category="patrol"), "patrol", "places"),
        (spec(category="patrol", payload_json='{"places": ["X", "Y"], "rounds": 3}'), "patrol", "rounds"),
        (
            spec(category="compose", payload_json='{"category": "clean", "phases": [{"activity": {}}]}'),
            "compose",
            "phases",
        ),
        (
            spec(
                category="pick", payload_json='{"rmf": {"category": "clean", "description": {"zone": "z"}}}'
            ),
            "clean",
            "zone",
        ),
    ],
)
def test_dispatch_request_per_category(given: dict[str, object], category: str, key: str) -> None:
    msg = rq.dispatch_request("t-1", given, "tinyRobot", attempt=2, now_ms=NOW)
    rmf.validate(msg, "dispatch_task_request")
    req = msg["request"]
    assert req["category"] == category
    assert key in req["description"]
    assert req["fleet_name"] == "tinyRobot"
    assert req["labels"][:2] == ["fleetstream_task_id=t-1", "fleetstream_attempt=2"]


def test_delivery_description_and_priority() -> None:
    msg = rq.dispatch_request(
        "t",
        spec(priority=9, labels={"rmf_pickup_handler": "coke_dispenser", "team": "x"}),
        "f",
        attempt=1,
        now_ms=NOW,
    )
    req = msg["request"]
    assert req["description"]["pickup"] == {"place": "A", "handler": "coke_dispenser", "payload": []}
    assert req["priority"] == {"type": "binary", "value": 1}
    assert "team=x" in req["labels"] and not any(lbl.startswith("rmf_") for lbl in req["labels"])


@pytest.mark.parametrize(
    "bad",
    [
        spec(category="charge"),
        spec(pickup_node=None),
        spec(category="patrol", pickup_node=None, dropoff_node=None),
        spec(category="compose"),
        spec(payload_json="[1]"),
        spec(payload_json="{nope"),
    ],
)
def test_unsupported_specs_are_refused_with_a_reason(bad: dict[str, object]) -> None:
    with pytest.raises(rq.UnsupportedTask) as info:
        rq.dispatch_request("t", bad, "f", attempt=1, now_ms=NOW)
    assert info.value.reason


def test_cancel_request_validates() -> None:
    msg = rq.cancel_request("delivery.dispatch-3", "t-1")
    assert rmf.errors(msg, "cancel_task_request") == []
    assert msg["task_id"] == "delivery.dispatch-3"


def test_refusal_state_fails_our_task_in_the_tasks_topology() -> None:
    errors = [{"code": 2, "category": "Unknown fleet", "detail": "no fleet named [x]"}]
    msg = rq.refusal_state("t-9", "delivery", errors, attempt=1, now_ms=NOW)
    assert rmf.errors(msg, "task_state_update") == []
    assert msg["data"]["dispatch"]["errors"] == errors
    [inp] = from_rmf(msg, NOW)
    assert (inp["task_id"], inp["observed"]) == ("t-9", "FAILED")
    assert rq.error_text(errors) == "Unknown fleet: no fleet named [x] (2)"


def test_linked_state_carries_our_label_and_rmf_id() -> None:
    state = {"booking": {"id": "delivery.dispatch-0"}, "dispatch": {"status": "queued"}}
    msg = rq.linked_state(state, "t-2")
    [inp] = from_rmf(msg, NOW)
    assert (inp["task_id"], inp["external_id"], inp["observed"]) == (
        "t-2",
        "delivery.dispatch-0",
        "DISPATCHED",
    )
    assert (
        rq.linked_state(msg["data"], "t-2")["data"]["booking"]["labels"].count("fleetstream_task_id=t-2") == 1
    )


@pytest.mark.parametrize("kind", ["task_state", "task_log"])
def test_upstream_samples_validate_and_ingest(kind: str) -> None:
    data = json.loads((SAMPLES / kind / "multi_dropoff_delivery.json").read_text())
    assert rmf.errors(data, kind) == []
    frame = {"type": f"{kind}_update", "data": data}
    assert _FastValidators().error(orjson.loads(orjson.dumps(frame)), frame["type"]) is None
    assert FRAME_TOPICS[frame["type"]] == ("rmf.task_states" if kind == "task_state" else "rmf.logs")
    expected = data["booking"]["id"] if kind == "task_state" else data["task_id"]
    assert frame_key(frame["type"], data) == expected


def test_fast_and_reference_validators_agree() -> None:
    v = _FastValidators()
    good = {"type": "fleet_state_update", "data": {"name": "f", "robots": {"r": {"battery": 0.5}}}}
    bad = {"type": "fleet_state_update", "data": {"name": "f", "robots": {"r": {"battery": 1.5}}}}
    assert v.error(good, "fleet_state_update") is None
    reason = v.error(bad, "fleet_state_update")
    assert reason is not None and "battery" in reason and "1.5" in reason
