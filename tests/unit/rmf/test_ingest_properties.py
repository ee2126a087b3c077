"""Properties of RMF ingest (hypothesis), for any interleaving of RMF robot states (re-sent, reordered,
changing status, task or place) and due offline timers: what it emits is valid, ordered in time, emitted
once, and an RMF robot goes OFFLINE at most once per silence."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.rmf import robot_state
from schemas.models import RobotStatus, Timer
from topologies.rmf import OUTPUT_TOPIC, TIMERS_TOPIC, RmfIngestConfig, robot_step, robot_timer

CFG = RmfIngestConfig(
    tenant_id="t1", site_id="s1", heartbeat_ms=5_000, min_interval_ms=1_000, offline_timeout_ms=4_000
)
T = 1_767_225_600.0

#: ("state", robot, seconds after T (RMF's clock), received delay ms, status) or ("timer", robot).
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("state"),
            st.sampled_from(["r1", "r2"]),
            st.integers(0, 40),
            st.integers(0, 3_000),
            st.sampled_from(["idle", "working", "charging", "offline"]),
        ),
        st.tuples(st.just("timer"), st.sampled_from(["r1", "r2"])),
    ),
    min_size=1,
    max_size=50,
)


def _drive(ops: list[tuple[Any, ...]]) -> list[tuple[str, dict[str, Any]]]:
    """Apply ``ops`` to memories as the processor would (states arrive in ``received`` order; a timer
    fires at its due time, if one is armed). Returns every output (topic, record) in order."""
    memories: dict[str, Any] = {}
    armed: dict[str, dict[str, Any]] = {}
    received = int(T * 1000)
    out: list[tuple[str, dict[str, Any]]] = []
    for op in ops:
        robot = op[1]
        if op[0] == "state":
            _, _, seconds, delay, status = op
            received += delay
            memory, outputs = robot_step(
                memories.get(robot),
                "fleet",
                robot,
                robot_state(robot, T + seconds, status=status),
                CFG,
                received,
            )
        else:
            timer = armed.get(robot)
            if timer is None:
                continue
            received = max(received, timer["due_at"])
            memory, outputs = robot_timer(memories.get(robot), "fleet", robot, timer, CFG)
        if memory is not None:
            memories[robot] = memory
        for o in outputs:
            if o.topic == TIMERS_TOPIC:
                armed[robot] = o.value
            out.append((o.topic, o.value))
    return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_every_output_is_a_valid_record_emitted_once(ops: list[tuple[Any, ...]]) -> None:
    out = _drive(ops)
    for topic, value in out:
        (RobotStatus if topic == OUTPUT_TOPIC else Timer).model_validate(value)
    statuses = [v for t, v in out if t == OUTPUT_TOPIC]
    assert len({s["event_id"] for s in statuses}) == len(statuses)
    assert _drive(ops) == out  # a replay emits the same records, ids included


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_a_robots_statuses_move_forward_in_time(ops: list[tuple[Any, ...]]) -> None:
    for robot in ("r1", "r2"):
        times = [v["occurred_at"] for t, v in _drive(ops) if t == OUTPUT_TOPIC and v["robot_id"] == robot]
        assert times == sorted(times) and len(set(times)) == len(times)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_offline_at_most_once_per_silence_and_only_after_the_timeout(ops: list[tuple[Any, ...]]) -> None:
    for robot in ("r1", "r2"):
        mine = [v for t, v in _drive(ops) if t == OUTPUT_TOPIC and v["robot_id"] == robot]
        for before, after in itertools.pairwise(mine):
            assert not (before["reason"] == "OFFLINE" and after["reason"] == "OFFLINE"), (
                "OFFLINE twice in a row"
            )
        for status in mine:
            if status["reason"] == "OFFLINE":
                assert status["occurred_at"] == status["last_seen_at"] + CFG.offline_timeout_ms


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_one_timer_per_robot_and_never_due_before_the_timeout(ops: list[tuple[Any, ...]]) -> None:
    timers = [v for t, v in _drive(ops) if t == TIMERS_TOPIC]
    assert {t["timer_id"] for t in timers} <= {f"rmf-ingest:offline:t1:fleet:{r}" for r in ("r1", "r2")}
    for timer in timers:
        assert (
            timer["due_at"] >= timer["occurred_at"] + CFG.offline_timeout_ms
            or timer["due_at"] > timer["occurred_at"]
        )
