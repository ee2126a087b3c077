"""The telemetry step on the kernel, over Quix's memory and RocksDB stores: state load/store, rejection
before state, the Kafka timestamp as "now", accepted samples forwarded as they came, site bounds through
the site directory."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas.errors import RejectedRecord
from topologies.kernel import Envelope
from topologies.kernel.testing import StepHarness
from topologies.telemetry import (
    ACCEPTED,
    ALERTS,
    INBOX,
    REGISTRATION,
    SITE_BOUNDS,
    SITE_JOIN,
    SITE_MAP,
    STATE_ROBOT,
    STATUS,
    TELEMETRY,
    TIMER,
    TIMERS,
    TelemetryConfig,
    TelemetryStep,
    site_key,
)
from topologies.telemetry.sitemaps import map_message

T0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)
Harness = Callable[[Any], StepHarness]


def registration(robot_id: str = "r1", **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": "reg",
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": T0 - 60_000,
        "robot_id": robot_id,
        "fleet_id": "f1",
        "name": "Robbie",
        "model": None,
        "capabilities": [],
        "max_payload_kg": None,
        "managed_by": "FLEETSTREAM",
        "active": True,
        **overrides,
    }


def telemetry(seq: int, at: int, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{seq}",
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": at,
        "robot_id": "r1",
        "fleet_id": "f1",
        "seq": seq,
        "pose": {"x": 1.0, "y": 1.0, "yaw": 0.0, "node_id": None, "map_name": None},
        "battery": 0.8,
        "speed": 0.0,
        "mode": "IDLE",
        "error_code": None,
        "task_id": None,
        "task_phase": "NONE",
        "route": [],
        **overrides,
    }


def raw(record: dict[str, Any]) -> bytes:
    """The bytes of a sample as the step receives them (JSON here: the decoder is injected)."""
    return orjson.dumps(record)


@pytest.fixture
def h(harness: Harness) -> StepHarness:
    return harness(TelemetryStep(TelemetryConfig(), decode=orjson.loads))


def sample(h: StepHarness, record: dict[str, Any], now: int | None = None, key: str = "r1") -> list[Any]:
    return h.send(TELEMETRY, key, raw(record), record["occurred_at"] if now is None else now)


def test_registration_then_telemetry_then_timer(h: StepHarness) -> None:
    out = h.send(REGISTRATION, "r1", registration(), T0)
    assert [(o.topic, o.key, o.value.kind) for o in out] == [(INBOX, site_key("s1"), SITE_JOIN)]
    assert h.state("r1").get(STATE_ROBOT)["registration"] == {
        "tenant_id": "acme",
        "fleet_id": "f1",
        "active": True,
        "managed_by": "FLEETSTREAM",
    }
    out = sample(h, telemetry(1, T0))
    assert [o.topic for o in out] == [ACCEPTED, STATUS, TIMERS]
    assert out[0].value == raw(telemetry(1, T0)) and out[0].key == "r1"  # the sample as it came
    assert h.state("r1").get(STATE_ROBOT)["runtime"]["seq"] == 1
    out = h.send(TIMER, "r1", out[2].value, T0 + 10_000)
    assert [(o.topic, o.value.get("kind") or o.value.get("status")) for o in out][:2] == [
        (STATUS, "OFFLINE"),
        (ALERTS, "ROBOT_OFFLINE"),
    ]
    h.checkpoint()
    assert h.stored("r1", STATE_ROBOT)["runtime"]["status"] == "OFFLINE"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (telemetry(1, T0, battery=1.5), "battery 1.5 outside 0..1"),
        (telemetry(1, T0, pose={"x": 99.0, "y": 1.0}), "pose (99, 1) off the map of site 's1' v1"),
        (telemetry(1, T0 + 6_000), "occurred_at"),
        (telemetry(1, T0, robot_id="r2"), "record key 'r1' does not match robot_id 'r2'"),
    ],
)
def test_rejections_leave_state_untouched(h: StepHarness, value: dict[str, Any], reason: str) -> None:
    h.send(REGISTRATION, "r1", registration(), T0)
    h.send(SITE_BOUNDS, "r1", {"tenant_id": "acme", "site_id": "s1", "bounds": [1, 0.0, 0.0, 10.0, 10.0]}, T0)
    h.checkpoint()
    before = h.stored("r1", STATE_ROBOT)
    with pytest.raises(RejectedRecord) as info:
        sample(h, value, now=T0)
    assert reason in info.value.reason
    h.checkpoint()
    assert h.stored("r1", STATE_ROBOT) == before and before.get("runtime") is None


def test_unknown_robot_is_rejected(h: StepHarness) -> None:
    with pytest.raises(RejectedRecord, match="unknown robot 'r1'"):
        sample(h, telemetry(1, T0))


def test_the_future_check_uses_the_records_kafka_timestamp(h: StepHarness) -> None:
    h.send(REGISTRATION, "r1", registration(), T0)
    with pytest.raises(RejectedRecord, match="60000 ms in the future"):
        sample(h, telemetry(1, T0 + 60_000), now=T0)
    assert sample(h, telemetry(1, T0 + 60_000), now=T0 + 58_000)  # produced 2 s before it says


def test_duplicates_are_neither_stored_nor_accepted(h: StepHarness) -> None:
    h.send(REGISTRATION, "r1", registration(), T0)
    sample(h, telemetry(3, T0))
    h.checkpoint()
    before = h.stored("r1", STATE_ROBOT)
    assert sample(h, telemetry(3, T0)) == []
    assert sample(h, telemetry(2, T0)) == []
    h.checkpoint()
    assert h.stored("r1", STATE_ROBOT) == before


def test_registry_tombstone_forgets_the_robot(h: StepHarness) -> None:
    h.send(REGISTRATION, "r1", registration(), T0)
    h.send(REGISTRATION, "r1", None, T0)
    with pytest.raises(RejectedRecord, match="unknown robot"):
        sample(h, telemetry(1, T0))


def test_registration_with_mismatched_key_is_rejected(h: StepHarness) -> None:
    with pytest.raises(RejectedRecord, match="does not match robot_id"):
        h.send(REGISTRATION, "r1", registration(robot_id="r9"), T0)
    h.checkpoint()
    assert h.stored("r1", STATE_ROBOT) is None


def test_state_survives_json_across_a_long_run_with_checkpoints(h: StepHarness) -> None:
    h.send(REGISTRATION, "r1", registration(), T0)
    topics = []
    for i in range(1, 200):
        topics += [o.topic for o in sample(h, telemetry(i, T0 + i * 1_000, speed=0.3 * (i % 3)))]
        if i % 17 == 0:
            h.checkpoint()
    # the offline timer never fires here: armed at 1 s, then again whenever the pending one is a whole
    # timeout overdue (21 s, 41 s, ... 181 s)
    assert topics.count(TIMERS) == 10 and topics.count(ACCEPTED) == 199
    assert topics.count("robot.telemetry.1m") == 3


def test_a_robot_gets_the_bounds_of_its_sites_map_through_the_site_directory(h: StepHarness) -> None:
    site_map = {"tenant_id": "acme", "site_id": "s1", "version": 4, "nodes": [{"id": "a", "x": 0.0, "y": 0.0},
                {"id": "b", "x": 10.0, "y": 10.0}], "lanes": [], "zones": []}  # fmt: skip
    [(key, message)] = map_message(site_map, "s1")  # type: ignore[arg-type]
    assert h.send(SITE_MAP, key, message, T0) == []
    [join] = h.send(REGISTRATION, "r1", registration(), T0)
    assert isinstance(join.value, Envelope)
    [answer] = h.send(join.value.kind, join.key, join.value.payload, T0)  # the site key answers
    assert (answer.topic, answer.key, answer.value.kind) == (INBOX, "r1", SITE_BOUNDS)
    h.send(SITE_BOUNDS, "r1", answer.value.payload, T0)
    with pytest.raises(RejectedRecord, match="off the map of site 's1' v4"):
        sample(h, telemetry(1, T0, pose={"x": 50.0, "y": 1.0}))
    # the robot shows up at another site: accepted unchecked, and it joins that site's directory
    out = sample(h, telemetry(1, T0, site_id="s2", pose={"x": 50.0, "y": 1.0}))
    assert [(o.topic, o.key) for o in out][-1] == (INBOX, site_key("s2"))
    bounds = {"tenant_id": "acme", "site_id": "s1", "bounds": [5, 0.0, 0.0, 1.0, 1.0]}
    h.send(SITE_BOUNDS, "r1", bounds, T0)  # a late answer about its old site: not its site any more
    assert h.state("r1").get(STATE_ROBOT)["bounds"] is None
