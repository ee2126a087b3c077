"""Write-behind state (``pipelines/writebehind.py``) over Quix's real store transactions: pinned to the
Quix version whose checkpoint order it relies on; entries stored once per checkpoint; nothing kept of an
abandoned one; the telemetry step gives exactly the same outputs and stored state with it as without."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import copy_context
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import quixstreams
from quixstreams.context import set_message_context
from quixstreams.models import MessageContext

from pipelines.writebehind import QUIX_VERSION, WriteBehind, WriteBehindSink
from topologies.kernel import run_step
from topologies.kernel.testing import Backend, open_store
from topologies.telemetry import REGISTRATION, STATE_ROBOT, TELEMETRY, TIMER, TelemetryConfig, TelemetryStep

T0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)


def test_pinned_to_the_quix_version_whose_checkpoint_order_it_relies_on() -> None:
    assert quixstreams.__version__ == QUIX_VERSION, (
        "Quix Streams changed: check that Checkpoint.commit still flushes every sink before it prepares the "
        "state transactions, and calls on_paused() of the sinks when it gives a checkpoint up "
        "(quixstreams/checkpointing/checkpoint.py), then move QUIX_VERSION"
    )


def _in_partition(call: Callable[[], Any], partition: int = 0) -> Any:
    def run() -> Any:
        set_message_context(MessageContext(topic="t", partition=partition, offset=0, size=0))
        return call()

    return copy_context().run(run)


class Checkpoints:
    """A store with one open transaction per checkpoint, committed as Quix does it: sinks flushed first."""

    def __init__(self, backend: Backend, path: Path, sink: WriteBehindSink | None) -> None:
        self.store = open_store(backend, path)
        self.sink = sink
        self.open = self.store.start_partition_transaction(0)

    def state(self, key: str) -> Any:
        return self.open.as_state(prefix=key)

    def commit(self) -> None:
        if self.sink is not None:
            self.sink.flush()
        self.open.prepare()
        self.open.flush()
        self.open = self.store.start_partition_transaction(0)

    def abandon(self) -> None:
        if self.sink is not None:
            self.sink.on_paused()
        self.open = self.store.start_partition_transaction(0)

    def stored(self, key: str, sub: str) -> Any:
        return self.store.start_partition_transaction(0).as_state(prefix=key).get(sub)


def test_entries_are_stored_once_per_checkpoint_and_forgotten_after(backend: Backend, tmp_path: Path) -> None:
    states = WriteBehind()
    c = Checkpoints(backend, tmp_path, WriteBehindSink(states))
    for n in range(5):
        view = _in_partition(lambda: states.view(c.state("k"), "k"))
        view.set("n", n)
    view.delete("gone")
    assert view.get("n") == 4 and c.state("k").get("n") is None  # nothing reached the transaction yet
    c.commit()
    assert c.stored("k", "n") == 4
    c.state("k").set("n", 99)  # another writer between checkpoints: the next checkpoint reads the store
    view = _in_partition(lambda: states.view(c.state("k"), "k"))
    assert view.get("n") == 99 and not view.exists("gone")


def test_an_abandoned_checkpoint_leaves_nothing(backend: Backend, tmp_path: Path) -> None:
    states = WriteBehind()
    c = Checkpoints(backend, tmp_path, WriteBehindSink(states))
    _in_partition(lambda: states.view(c.state("k"), "k")).set("n", 1)
    c.abandon()
    c.commit()
    assert c.stored("k", "n") is None
    with pytest.raises(AssertionError):
        WriteBehindSink(states).add(None)


def _registration(robot: str) -> dict[str, Any]:
    return {"tenant_id": "acme", "site_id": "s1", "robot_id": robot, "fleet_id": "f1", "active": True}


def _sample(robot: str, seq: int, **overrides: Any) -> bytes:
    return orjson.dumps({
        "event_id": f"{robot}-{seq}", "tenant_id": "acme", "site_id": "s1", "occurred_at": T0 + seq * 1000,
        "robot_id": robot, "fleet_id": "f1", "seq": seq, "pose": {"x": 1.0, "y": 1.0, "yaw": 0.0, "node_id": None,
        "map_name": None}, "battery": 0.5, "speed": 0.0, "mode": "IDLE", "error_code": None, "task_id": None,
        "task_phase": "NONE", "route": [], **overrides,
    })  # fmt: skip


def test_the_telemetry_step_gives_the_same_outputs_and_state_with_write_behind(
    backend: Backend, tmp_path: Path
) -> None:
    """A long run with a checkpoint every 37 records and one abandoned now and then (its records come again):
    the same outputs and the same stored state as a step writing through to the store."""
    step = TelemetryStep(TelemetryConfig(), decode=orjson.loads)
    states = WriteBehind()
    behind = Checkpoints(backend, tmp_path / "behind", WriteBehindSink(states))
    through = Checkpoints(backend, tmp_path / "through", None)
    robots = ("r1", "r2", "r3")
    inputs: list[tuple[str, str, Any]] = [(REGISTRATION, r, _registration(r)) for r in robots]
    for seq in range(1, 300):
        for i, robot in enumerate(robots):
            if (seq + i) % 11 == 0:
                continue
            mode = ("IDLE", "MOVING", "WORKING")[(seq // (5 + i)) % 3]
            inputs.append(
                (
                    TELEMETRY,
                    robot,
                    _sample(robot, seq, mode=mode, battery=abs(((seq + 40 * i) % 200) - 100) / 100),
                )
            )
            if seq % 13 == 0:
                inputs.append((TELEMETRY, robot, _sample(robot, seq - 1)))  # stale
    timers: dict[str, Any] = {}
    now = T0 + 10_000_000  # "now" for the future check: after every sample

    def apply(kind: str, robot: str, event: Any, n: int) -> None:
        got = _in_partition(
            lambda: run_step(step, states.view(behind.state(robot), robot), robot, kind, event, now)
        )
        want = run_step(step, through.state(robot), robot, kind, event, now)
        assert got == want, n
        for out in want:
            if out.topic == "timers":
                timers[robot] = out.value

    for n, (kind, robot, event) in enumerate(inputs):
        apply(kind, robot, event, n)
        if n % 101 == 100 and robot in timers:  # a due offline timer now and then
            apply(TIMER, robot, timers.pop(robot), n)
        if n % 37 == 36:
            behind.commit()
            through.commit()
    behind.commit()
    through.commit()
    for robot in robots:
        assert behind.stored(robot, STATE_ROBOT) == through.stored(robot, STATE_ROBOT)
