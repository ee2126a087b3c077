"""The Quix adapter: O(1) state I/O per update, rebuild from sub-keys, cache invalidation."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from schemas.errors import RejectedRecord
from tests.unit.topologies.test_dispatch_support import T0, line_map, queued_task, registration, spec, status
from topologies.dispatch.builder import GEN, INDEX_ROBOTS, DispatchStep, decision_key, load_site
from topologies.dispatch.config import DispatchConfig


class JsonState:
    """A key's state that stores JSON bytes, like Quix's stores; counts reads and writes."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads = 0
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return orjson.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.data[key] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        self.writes += 1
        self.data.pop(key, None)


def _fleet(n: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [line_map(10, chargers={"c1": "N0"})]
    for i in range(n):
        events += [registration(f"r{i:03d}"), status(f"r{i:03d}", f"N{i % 10}", 0.9, "MOVING")]
    return events


def test_one_update_costs_constant_state_io_whatever_the_fleet_size() -> None:
    for n in (10, 200):
        state, step = JsonState(), DispatchStep(DispatchConfig())
        for e in _fleet(n):
            step.apply(e, "s1", state)
        state.reads = state.writes = 0
        step.apply(status("r005", "N6", 0.85, "MOVING", at=T0 + 1), "s1", state)
        assert (state.reads, state.writes) == (1, 2)  # gen; the robot entry and gen


def test_model_rebuilt_from_sub_keys_matches_the_cached_one() -> None:
    state, step = JsonState(), DispatchStep(DispatchConfig())
    events = [*_fleet(5), *queued_task("t1", spec("N3")), status("r002", "N2", 0.9, "IDLE", at=T0 + 2)]
    decisions = [d for e in events for d in step.apply(e, "s1", state)]
    assert [(d["kind"], d["task_id"], d["robot_id"]) for d in decisions] == [("ASSIGN", "t1", "r002")]
    rebuilt = load_site(state, DispatchConfig())
    cached = step._sites["s1"][1]
    assert rebuilt.robots == cached.robots and rebuilt.tasks == cached.tasks
    assert rebuilt.free == cached.free and rebuilt.ready == cached.ready
    assert orjson.loads(state.data[INDEX_ROBOTS]) == [f"r{i:03d}" for i in range(5)]


def test_a_new_instance_or_foreign_write_rebuilds_and_continues_identically() -> None:
    events = [*_fleet(4), *queued_task("t1", spec("N3")), *queued_task("t2", spec("N8"))]
    tail = [status("r001", "N1", 0.9, "IDLE", at=T0 + 5), status("r003", "N3", 0.9, "IDLE", at=T0 + 6)]

    state, step = JsonState(), DispatchStep(DispatchConfig())
    for e in events:
        step.apply(e, "s1", state)
    expected = [d for e in tail for d in step.apply(e, "s1", state)]

    state2, step2 = JsonState(), DispatchStep(DispatchConfig())
    for e in events:
        step2.apply(e, "s1", state2)
    other = DispatchStep(DispatchConfig())  # another instance owned the partition for a while
    got = [d for d in other.apply(tail[0], "s1", state2)]
    state2.set(GEN, "changed-elsewhere")
    got += step2.apply(tail[1], "s1", state2)  # the stale cache is detected and rebuilt
    assert got == expected and len(got) == 2
    assert step2.rebuilds == 2  # the first message and the foreign write


def test_rejected_record_leaves_state_untouched() -> None:
    state, step = JsonState(), DispatchStep(DispatchConfig())
    step.apply(line_map(3), "s1", state)
    before = dict(state.data)
    with pytest.raises(RejectedRecord):
        step.apply({**registration("r1"), "tenant_id": "other"}, "s1", state)
    with pytest.raises(RejectedRecord):
        step.apply({"tenant_id": "acme", "site_id": "s1", "occurred_at": T0}, "s1", state)
    assert state.data == before


def test_decision_key_is_task_then_robot() -> None:
    assert decision_key({"task_id": "t1", "robot_id": "r1"}) == "t1"
    assert decision_key({"task_id": None, "robot_id": "r1"}) == "r1"
