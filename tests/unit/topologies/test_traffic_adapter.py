"""The thin Quix adapter (``TrafficStep``): sub-key state, O(1) writes per status, cache rebuilds."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest
from quixstreams import State

from schemas.errors import RejectedRecord
from tests.unit.topologies.test_traffic_support import SITE, T0, grid_map, status, task
from topologies.traffic import DECISIONS, SiteCache, TrafficConfig, TrafficStep
from topologies.traffic.builder import STATE_META, STATE_ROBOTS


class JsonState:
    """A key's state that stores JSON bytes, like Quix's stores do (so state must survive JSON)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        return orjson.loads(self.data[key]) if key in self.data else default

    def set(self, key: str, value: Any) -> None:
        self.writes.append(key)
        self.data[key] = orjson.dumps(value)

    def delete(self, key: str) -> None:
        self.writes.append(key)
        self.data.pop(key, None)

    def exists(self, key: str) -> bool:
        return key in self.data


GRID = grid_map(6, 6)
EAST = [("n1_2", 2), ("n2_2", 4), ("n3_2", 6), ("n4_2", 8)]  # from n0_2
SOUTH = [("n2_3", 2), ("n2_2", 4), ("n2_1", 6), ("n2_0", 8)]  # from n2_4: crosses EAST at n2_2


def _run(step: TrafficStep, state: JsonState, kind: str, value: dict[str, Any] | None) -> list[Any]:
    return step((kind, value), SITE, 0, None, cast(State, state))


def _setup(step: TrafficStep, state: JsonState) -> list[Any]:
    out = _run(step, state, "map", GRID)
    out += _run(step, state, "task", task("hi", 9))
    out += _run(step, state, "status", status("a", "n0_2", EAST, task_id="hi"))
    out += _run(step, state, "status", status("b", "n2_4", SOUTH, task_id="lo"))
    return out


def test_state_lives_in_sub_keys_and_survives_json() -> None:
    state, step = JsonState(), TrafficStep(TrafficConfig())
    out = _setup(step, state)
    assert [o.value["robot_id"] for o in out if o.topic == DECISIONS] == ["b"]
    assert state.get(STATE_ROBOTS) == ["a", "b"]
    assert state.get("robot:b")["hold"]["node"] == "n2_3"
    assert state.get("task:hi") == 9
    assert state.get("map")["version"] == 1
    assert state.get(STATE_META)["rev"] == 4


def test_a_status_writes_only_meta_and_the_entries_it_changed() -> None:
    state, step = JsonState(), TrafficStep(TrafficConfig())
    _setup(step, state)
    for i in range(20):  # unrelated robots far away, one status each
        _run(step, state, "status", status(f"x{i:02d}", f"n{i % 6}_5", [], task_id=None))
    state.writes.clear()
    _run(step, state, "status", status("x03", "n3_5", [("n3_4", 2)], seq=2))
    assert sorted(state.writes) == ["meta", "robot:x03"]  # not the map, not the index, not other robots


def test_duplicates_and_stale_statuses_write_nothing() -> None:
    state, step = JsonState(), TrafficStep(TrafficConfig())
    _setup(step, state)
    state.writes.clear()
    assert _run(step, state, "status", status("a", "n0_2", EAST, task_id="hi")) == []
    assert state.writes == []


def test_a_fresh_process_rebuilds_the_site_and_carries_on_identically() -> None:
    config = TrafficConfig()
    state_a, state_b = JsonState(), JsonState()
    warm = TrafficStep(config)
    _setup(warm, state_a)
    _setup(TrafficStep(config), state_b)
    # process B restarts: empty cache, same stored state
    restarted = TrafficStep(config, SiteCache())
    later = status("c", "n5_5", [("n5_4", 2)], at=T0 + 20_000, task_id=None)
    out_a = _run(warm, state_a, "status", later)
    out_b = _run(restarted, state_b, "status", later)
    assert [o.value for o in out_a] == [o.value for o in out_b]
    assert any(o.value["kind"] == "RESUME" and o.value["robot_id"] == "b" for o in out_b)


def test_a_stale_cache_is_detected_by_the_revision() -> None:
    config = TrafficConfig()
    state = JsonState()
    first, second = TrafficStep(config), TrafficStep(config)  # two processes, partition moved between
    _setup(first, state)
    _run(second, state, "status", status("b", "n2_4", SOUTH, seq=2, task_id="lo"))  # second loads, advances
    out = _run(first, state, "status", status("c", "n5_5", [], at=T0 + 20_000))
    assert any(o.value.get("kind") == "RESUME" for o in out)  # first reloaded: it knows b is held


def test_a_record_of_another_site_is_rejected_before_state() -> None:
    state, step = JsonState(), TrafficStep(TrafficConfig())
    with pytest.raises(RejectedRecord):
        _run(step, state, "status", {**status("a", "n0_2", EAST), "site_id": "elsewhere"})
    assert state.writes == []
