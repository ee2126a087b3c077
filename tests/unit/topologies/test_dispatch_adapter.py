"""The dispatch step on the kernel, over Quix's memory and RocksDB stores: O(1) state I/O per update, the
site model rebuilt from sub-keys, the model cache invalidated by a foreign write, nothing kept of a
rejected record."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas.errors import RejectedRecord
from tests.unit.topologies.test_dispatch_support import (
    T0,
    Record,
    line_map,
    queued_task,
    registration,
    spec,
    status,
    tagged,
)
from topologies.dispatch import REGISTRATION, DispatchConfig, DispatchStep, decision_key
from topologies.dispatch.builder import INDEX_ROBOTS, META, load_site
from topologies.kernel import GENERATION, KeyState, run_step
from topologies.kernel.testing import StepHarness

Harness = Callable[[Any], StepHarness]


class Counting:
    """Counts the calls a step makes on a key's real Quix state (and passes them on)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.reads = 0
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return self.state.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.state.set(key, value)

    def delete(self, key: str) -> None:
        self.writes += 1
        self.state.delete(key)

    def exists(self, key: str) -> bool:
        self.reads += 1
        return bool(self.state.exists(key))


def send(h: StepHarness, event: Record, key: str = "s1") -> list[dict[str, Any]]:
    return [o.value for o in h.send(event.kind, key, event, event["occurred_at"])]


def _fleet(n: int) -> list[Record]:
    events: list[Record] = [line_map(10, chargers={"c1": "N0"})]
    for i in range(n):
        events += [registration(f"r{i:03d}"), status(f"r{i:03d}", f"N{i % 10}", 0.9, "MOVING")]
    return events


@pytest.mark.parametrize("robots", [10, 200])
def test_one_update_costs_constant_state_io_whatever_the_fleet_size(harness: Harness, robots: int) -> None:
    step = DispatchStep(DispatchConfig())
    h = harness(step)
    for e in _fleet(robots):
        send(h, e)
    counting = Counting(h.state("s1"))
    update = status("r005", "N6", 0.85, "MOVING", at=T0 + 1)
    run_step(step, counting, "s1", update.kind, update, T0 + 1)
    assert (counting.reads, counting.writes) == (1, 3)  # gen; the robot entry, meta (clock) and gen


def test_model_rebuilt_from_sub_keys_matches_the_cached_one(harness: Harness) -> None:
    step = DispatchStep(DispatchConfig())
    h = harness(step)
    events = [*_fleet(5), *queued_task("t1", spec("N3")), status("r002", "N2", 0.9, "IDLE", at=T0 + 2)]
    decisions = [d for e in events for d in send(h, e)]
    assert [(d["kind"], d["task_id"], d["robot_id"]) for d in decisions] == [("ASSIGN", "t1", "r002")]
    h.checkpoint()
    rebuilt = load_site(KeyState(h.state("s1"), "s1"), DispatchConfig())
    cached = step.sites.get(KeyState(h.state("s1"), "s1"))
    assert step.sites.loads == 1  # the cached model is still the one built at the start
    assert rebuilt.robots == cached.robots and rebuilt.tasks == cached.tasks
    assert rebuilt.free == cached.free and rebuilt.ready == cached.ready and rebuilt.clock == cached.clock
    assert h.stored("s1", INDEX_ROBOTS) == [f"r{i:03d}" for i in range(5)]
    assert h.stored("s1", META)["clock"] == T0 + 2


def test_a_new_instance_or_foreign_write_rebuilds_and_continues_identically(harness: Harness) -> None:
    events = [*_fleet(4), *queued_task("t1", spec("N3")), *queued_task("t2", spec("N8"))]
    tail = [status("r001", "N1", 0.9, "IDLE", at=T0 + 5), status("r003", "N3", 0.9, "IDLE", at=T0 + 6)]

    h = harness(DispatchStep(DispatchConfig()))
    for e in events:
        send(h, e)
    expected = [d for e in tail for d in send(h, e)]

    first = DispatchStep(DispatchConfig())
    h2 = harness(first)
    for e in events:
        send(h2, e)
    h2.step = DispatchStep(DispatchConfig())  # another instance owned the partition for a while
    got = send(h2, tail[0])
    h2.step = first
    h2.state("s1").set(GENERATION, "changed-elsewhere")
    got += send(h2, tail[1])  # the stale cache is detected and the model rebuilt
    assert got == expected and len(got) == 2
    assert first.sites.loads == 2  # the first message and the foreign write


def test_a_rejected_record_leaves_state_untouched(harness: Harness) -> None:
    step = DispatchStep(DispatchConfig())
    h = harness(step)
    send(h, line_map(3))
    h.checkpoint()
    with pytest.raises(RejectedRecord):
        send(h, tagged(REGISTRATION, {**registration("r1"), "tenant_id": "other"}))
    with pytest.raises(RejectedRecord, match="no input of kind 'mystery'"):
        h.send("mystery", "s1", {"tenant_id": "acme", "site_id": "s1", "occurred_at": T0}, T0)
    h.checkpoint()
    assert h.stored("s1", "robot:r1") is None and h.stored("s1", INDEX_ROBOTS) is None


def test_decision_key_is_task_then_robot() -> None:
    assert decision_key({"task_id": "t1", "robot_id": "r1"}) == "t1"
    assert decision_key({"task_id": None, "robot_id": "r1"}) == "r1"
