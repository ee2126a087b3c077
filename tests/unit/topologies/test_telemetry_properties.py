"""Properties of the telemetry topology's dedupe and restart arithmetic (hypothesis), for any order of
samples a robot and the network may produce: duplicates, stale and reordered samples, reboots."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topologies.telemetry import STATUS, TelemetryConfig, classify_order, on_telemetry

from .test_telemetry_machine import T0, sample

CFG = TelemetryConfig(restart_gap_ms=2_000, heartbeat_ms=30_000, offline_timeout_ms=10_000)

#: One sample: (seq, ms after the previous sample's time, mode). A seq below the last one is a robot
#: that rebooted (if far enough in time) or a duplicate/stale sample.
_samples = st.lists(
    st.tuples(st.integers(1, 30), st.integers(-3_000, 5_000), st.sampled_from(["IDLE", "MOVING", "ERROR"])),
    min_size=1,
    max_size=60,
)


def _stream(ops: list[tuple[int, int, str]]) -> list[dict[str, Any]]:
    at, out = T0, []
    for seq, gap, mode in ops:
        at = max(T0, at + gap)
        out.append(sample(seq, at, mode=mode, battery=0.5))
    return out


def _run(records: list[dict[str, Any]]) -> tuple[Any, list[tuple[str, Any]], list[str]]:
    state: Any = None
    outputs: list[tuple[str, Any]] = []
    classes: list[str] = []
    for record in records:
        classes.append(classify_order(state, record, CFG))
        new, out = on_telemetry(state, record, CFG)
        if new is state:
            assert out == [], "a dropped sample emits nothing"
        state = new
        outputs += [(o.topic, o.value) for o in out]
    return state, outputs, classes


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_samples)
def test_statuses_carry_a_strictly_increasing_seq_whatever_the_robot_sends(
    ops: list[tuple[int, int, str]],
) -> None:
    _, outputs, _ = _run(_stream(ops))
    seqs = [value["seq"] for topic, value in outputs if topic == STATUS]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_samples)
def test_a_sample_is_applied_exactly_when_classified_new_or_restart(ops: list[tuple[int, int, str]]) -> None:
    state: Any = None
    for record in _stream(ops):
        kind = classify_order(state, record, CFG)
        new, _ = on_telemetry(state, record, CFG)
        assert (new is not state) == (kind in ("new", "restart")), kind
        if kind == "restart":  # the seq began again: counted on from the last accepted one
            assert new is not None and state is not None
            assert new["seq"] == state["seq"] + 1 + record["seq"] and new["seq_base"] == state["seq"] + 1
            assert new["session_at"] == record["occurred_at"]
        state = new


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_samples)
def test_repeating_any_sample_at_once_changes_nothing(ops: list[tuple[int, int, str]]) -> None:
    state: Any = None
    for record in _stream(ops):
        state, _ = on_telemetry(state, record, CFG)
        again, out = on_telemetry(state, dict(record), CFG)
        assert again is state and out == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_samples)
def test_replaying_the_same_samples_gives_the_same_records(ops: list[tuple[int, int, str]]) -> None:
    records = _stream(ops)
    first, again = _run(records), _run([dict(r) for r in records])
    assert first[1] == again[1] and first[0] == again[0]
    ids = [value["event_id"] for _, value in first[1]]
    assert len(ids) == len(set(ids))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_samples, st.integers(1, 5))
def test_samples_from_before_a_reboot_are_stale_after_it(ops: list[tuple[int, int, str]], back: int) -> None:
    records = _stream(ops)
    state, _, classes = _run(records)
    if state is None or "restart" not in classes:
        return
    old = [r for r in records if r["occurred_at"] < state["session_at"]]
    for record in old[-back:]:
        kind = classify_order(state, record, CFG)
        assert kind in ("stale", "duplicate", "restart")
        if kind != "restart":
            assert on_telemetry(state, record, CFG) == (state, [])
