"""``TelemetryStep`` over real Quix RocksDB store transactions (no broker): the per-transaction cache,
write-through and write-behind, and the ``StateFlush`` checkpoint hook."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from quixstreams.state.rocksdb import RocksDBStore

from topologies.telemetry import STATE_ROBOT, StateFlush, TelemetryConfig, TelemetryStep

from .test_telemetry_adapter import FakeClock, JsonState, registration, telemetry

T0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)
ROBOTS = ("r1", "r2", "r3")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RocksDBStore]:
    store = RocksDBStore("default", "telemetry", str(tmp_path))
    store.assign_partition(0)
    yield store
    store.close()


def make_step(clock: FakeClock | None = None) -> TelemetryStep:
    return TelemetryStep(TelemetryConfig(), lambda t, s: None, clock or FakeClock(T0 + 10_000_000))


def sample(robot: str, seq: int, **overrides: Any) -> dict[str, Any]:
    return telemetry(seq, T0 + seq * 1000, robot_id=robot, **overrides)


def stored(store: RocksDBStore, robot: str) -> dict[str, Any] | None:
    """What a fresh transaction reads for ``robot`` (the committed store)."""
    return store.start_partition_transaction(0).as_state(prefix=robot.encode()).get(STATE_ROBOT)


def commit(step: TelemetryStep, transaction: Any) -> None:
    """What Quix does at a checkpoint: sinks flushed (our hook), then the state prepared and written."""
    StateFlush(step).flush()
    transaction.prepare()
    transaction.flush()


def test_write_through_stores_every_change_at_once(store: RocksDBStore):
    step = make_step()
    transaction = store.start_partition_transaction(0)
    state = transaction.as_state(prefix=b"r1")
    step.apply("registration", registration("r1"), "r1", state)
    step.apply("telemetry", sample("r1", 1), "r1", state)
    # Another reader of the same transaction sees the write immediately.
    assert transaction.as_state(prefix=b"r1").get(STATE_ROBOT)["runtime"]["seq"] == 1
    assert step.flush() == 0  # nothing was held back


def test_write_behind_stores_once_per_key_at_the_checkpoint_hook(store: RocksDBStore):
    step = make_step()
    hook = StateFlush(step)
    hook.setup()  # Quix starts the sink: write behind from now on
    assert step.write_behind
    transaction = store.start_partition_transaction(0)
    for robot in ROBOTS:
        step.apply("registration", registration(robot), robot, transaction.as_state(prefix=robot.encode()))
    for seq in range(1, 6):
        for robot in ROBOTS:
            step.apply("telemetry", sample(robot, seq), robot, transaction.as_state(prefix=robot.encode()))
    # Nothing reached the transaction yet; the step answers from memory.
    assert transaction.as_state(prefix=b"r1").get(STATE_ROBOT) is None
    assert step.apply("telemetry", sample("r1", 5), "r1", transaction.as_state(prefix=b"r1")) == []  # dup
    assert step.flush() == len(ROBOTS)
    assert transaction.as_state(prefix=b"r2").get(STATE_ROBOT)["runtime"]["seq"] == 5
    assert step.flush() == 0  # stored once
    transaction.prepare()
    transaction.flush()
    assert {robot: stored(store, robot)["runtime"]["seq"] for robot in ROBOTS} == dict.fromkeys(ROBOTS, 5)


def test_a_new_transaction_reads_the_store_again(store: RocksDBStore):
    step = make_step()
    StateFlush(step).setup()
    first = store.start_partition_transaction(0)
    step.apply("registration", registration("r1"), "r1", first.as_state(prefix=b"r1"))
    step.apply("telemetry", sample("r1", 1), "r1", first.as_state(prefix=b"r1"))
    commit(step, first)
    # Between checkpoints the store changes under the step (as a recovery or another owner would do it).
    second = store.start_partition_transaction(0)
    other = make_step()
    other.apply("telemetry", sample("r1", 7), "r1", second.as_state(prefix=b"r1"))
    second.prepare()
    second.flush()
    third = store.start_partition_transaction(0)
    # The step sees seq 7 from the store, not its own seq 1: seq 5 is stale (were it new, the status
    # change would be emitted), seq 8 is new.
    assert step.apply("telemetry", sample("r1", 5, mode="MOVING"), "r1", third.as_state(prefix=b"r1")) == []
    out = step.apply("telemetry", sample("r1", 8, mode="MOVING"), "r1", third.as_state(prefix=b"r1"))
    assert [(o.value["seq"], o.value["status"]) for o in out] == [(8, "MOVING")]
    commit(step, third)
    assert stored(store, "r1")["runtime"]["seq"] == 8


def test_flush_skips_a_transaction_quix_already_prepared(store: RocksDBStore):
    step = make_step()
    StateFlush(step).setup()
    transaction = store.start_partition_transaction(0)
    step.apply("registration", registration("r1"), "r1", transaction.as_state(prefix=b"r1"))
    transaction.prepare()  # an abandoned checkpoint: its records will be processed again
    assert step.flush() == 0


def test_a_paused_checkpoint_forgets_what_the_step_kept(store: RocksDBStore):
    step = make_step()
    hook = StateFlush(step)
    hook.setup()
    transaction = store.start_partition_transaction(0)
    step.apply("registration", registration("r1"), "r1", transaction.as_state(prefix=b"r1"))
    hook.on_paused()  # another sink refused the checkpoint
    assert step.flush() == 0
    with pytest.raises(AssertionError):
        hook.add(None, None, 0, [], "t", 0, 0)


@pytest.mark.parametrize("write_behind", [False, True])
def test_cached_steps_emit_exactly_what_an_uncached_one_does(store: RocksDBStore, write_behind: bool):
    """A long run with a checkpoint every 37 records: the same outputs and final state as a step that
    reads and writes JSON state for every record."""
    clock = FakeClock(T0 + 10_000_000)
    cached, plain = make_step(clock), make_step(clock)
    if write_behind:
        StateFlush(cached).setup()
    plain_states = {robot: JsonState() for robot in ROBOTS}
    transaction = store.start_partition_transaction(0)
    inputs: list[tuple[str, str, dict[str, Any]]] = [
        ("registration", robot, registration(robot)) for robot in ROBOTS
    ]
    for seq in range(1, 400):
        for i, robot in enumerate(ROBOTS):
            if (seq + i) % 11 == 0:
                continue  # gaps
            speed = 0.4 * ((seq // (5 + i)) % 2)
            battery = abs(((seq + 40 * i) % 200) - 100) / 100
            inputs.append(("telemetry", robot, sample(robot, seq, speed=speed, battery=battery)))
            if seq % 13 == 0:
                inputs.append(("telemetry", robot, sample(robot, seq - 1)))  # stale
    timers_seen: dict[str, dict[str, Any]] = {}
    for n, (kind, robot, value) in enumerate(inputs):
        got = cached.apply(kind, value, robot, transaction.as_state(prefix=robot.encode()))
        want = plain.apply(kind, value, robot, plain_states[robot])
        assert [(o.topic, o.value) for o in got] == [(o.topic, o.value) for o in want], n
        for o in want:
            if o.topic == "timers":
                timers_seen[robot] = o.value
        if n % 37 == 36:
            commit(cached, transaction)
            transaction = store.start_partition_transaction(0)
        if n % 101 == 100 and robot in timers_seen:  # a due offline timer now and then
            timer = timers_seen.pop(robot)
            got = cached.apply("timer", timer, robot, transaction.as_state(prefix=robot.encode()))
            want = plain.apply("timer", timer, robot, plain_states[robot])
            assert [(o.topic, o.value) for o in got] == [(o.topic, o.value) for o in want], n
    commit(cached, transaction)
    for robot in ROBOTS:
        assert orjson.dumps(stored(store, robot)) == orjson.dumps(plain_states[robot].get(STATE_ROBOT))
