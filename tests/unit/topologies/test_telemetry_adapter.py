"""The thin Quix adapter (``TelemetryStep``): state load/store, rejection before state, a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from schemas.errors import RejectedRecord
from topologies.telemetry import (
    ALERTS,
    STATE_ROBOT,
    STATUS,
    TIMERS,
    SiteBounds,
    TelemetryConfig,
    TelemetryStep,
)

T0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)


class JsonState:
    """A key's state that stores JSON bytes, like Quix's stores do (so state must survive JSON)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return orjson.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.data[key] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        self.writes += 1
        self.data.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.data


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def step(clock: FakeClock) -> TelemetryStep:
    bounds = {("acme", "s1"): SiteBounds(1, 0.0, 0.0, 10.0, 10.0)}
    return TelemetryStep(TelemetryConfig(), lambda t, s: bounds.get((t, s)), clock)


def call(step: TelemetryStep, state: JsonState, kind: str, value: Any, key: str = "r1") -> list:
    return step.apply(kind, value, key, state)


def test_registration_then_telemetry_then_timer(step: TelemetryStep, clock: FakeClock):
    state = JsonState()
    assert call(step, state, "registration", registration()) == []
    assert state.get(STATE_ROBOT)["registration"] == {
        "tenant_id": "acme",
        "fleet_id": "f1",
        "active": True,
        "managed_by": "FLEETSTREAM",
    }
    out = call(step, state, "telemetry", telemetry(1, T0))
    assert [o.topic for o in out] == [STATUS, TIMERS]
    assert state.get(STATE_ROBOT)["runtime"]["seq"] == 1
    clock.now = T0 + 10_000
    out = call(step, state, "timer", out[1].value)
    assert [(o.topic, o.value.get("kind") or o.value.get("status")) for o in out][:2] == [
        (STATUS, "OFFLINE"),
        (ALERTS, "ROBOT_OFFLINE"),
    ]
    assert state.get(STATE_ROBOT)["runtime"]["status"] == "OFFLINE"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (telemetry(1, T0, battery=1.5), "battery 1.5 outside 0..1"),
        (telemetry(1, T0, pose={"x": 99.0, "y": 1.0}), "pose (99, 1) off the map of site 's1' v1"),
        (telemetry(1, T0 + 6_000), "occurred_at"),
        (telemetry(1, T0, robot_id="r2"), "record key 'r1' does not match robot_id 'r2'"),
    ],
)
def test_rejections_leave_state_untouched(step: TelemetryStep, value: dict[str, Any], reason: str):
    state = JsonState()
    call(step, state, "registration", registration())
    writes = state.writes
    with pytest.raises(RejectedRecord) as info:
        call(step, state, "telemetry", value)
    assert reason in info.value.reason
    assert state.writes == writes and state.get(STATE_ROBOT)["runtime"] is None


def test_unknown_robot_is_rejected(step: TelemetryStep):
    with pytest.raises(RejectedRecord, match="unknown robot 'r1'"):
        call(step, JsonState(), "telemetry", telemetry(1, T0))


def test_future_check_follows_the_injected_clock(step: TelemetryStep, clock: FakeClock):
    state = JsonState()
    call(step, state, "registration", registration())
    with pytest.raises(RejectedRecord, match="in the future"):
        call(step, state, "telemetry", telemetry(1, T0 + 60_000))
    clock.now = T0 + 58_000
    assert call(step, state, "telemetry", telemetry(1, T0 + 60_000))


def test_duplicates_write_nothing(step: TelemetryStep):
    state = JsonState()
    call(step, state, "registration", registration())
    call(step, state, "telemetry", telemetry(3, T0))
    writes = state.writes
    assert call(step, state, "telemetry", telemetry(3, T0)) == []
    assert call(step, state, "telemetry", telemetry(2, T0)) == []
    assert state.writes == writes


def test_registry_tombstone_forgets_the_robot(step: TelemetryStep):
    state = JsonState()
    call(step, state, "registration", registration())
    call(step, state, "registration", None)
    with pytest.raises(RejectedRecord, match="unknown robot"):
        call(step, state, "telemetry", telemetry(1, T0))


def test_registration_with_mismatched_key_is_rejected(step: TelemetryStep):
    state = JsonState()
    with pytest.raises(RejectedRecord, match="does not match robot_id"):
        call(step, state, "registration", registration(robot_id="r9"))
    assert state.writes == 0


def test_state_survives_json_across_a_long_run(step: TelemetryStep, clock: FakeClock):
    state = JsonState()
    call(step, state, "registration", registration())
    topics = []
    for i in range(1, 200):
        clock.now = T0 + i * 1_000
        topics += [
            o.topic for o in call(step, state, "telemetry", telemetry(i, T0 + i * 1_000, speed=0.3 * (i % 3)))
        ]
    assert topics.count(TIMERS) == 1
    assert topics.count("robot.telemetry.1m") == 3


def test_the_quix_callback_takes_the_kind_from_the_topic(clock: FakeClock):
    from contextvars import copy_context

    from quixstreams.context import set_message_context
    from quixstreams.models import MessageContext

    step = TelemetryStep(TelemetryConfig(), lambda t, s: None, clock, {"p.robot.registry": "registration"})
    state = JsonState()

    def in_a_record_context() -> list:  # as Quix runs each record: in a copy, so nothing leaks to later tests
        set_message_context(MessageContext(topic="p.robot.registry", partition=0, offset=0, size=0))
        return step(registration(), "r1", 0, None, state)

    assert copy_context().run(in_a_record_context) == []
    assert state.get(STATE_ROBOT)["registration"]["tenant_id"] == "acme"


def test_one_state_read_and_one_write_per_accepted_sample(step: TelemetryStep):
    state = JsonState()
    call(step, state, "registration", registration())
    writes = state.writes
    call(step, state, "telemetry", telemetry(1, T0))
    call(step, state, "telemetry", telemetry(2, T0 + 1000))
    assert state.writes == writes + 2
