"""The traffic adapter on the kernel (``TrafficStep``), over Quix's memory and RocksDB stores: sub-key state,
O(1) writes per status, model rebuilds, and a model dropped when a step raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas.errors import RejectedRecord
from tests.unit.topologies.test_traffic_support import SITE, T0, grid_map, status, task
from topologies.kernel import GENERATION, KeyState, run_step
from topologies.kernel.testing import StepHarness
from topologies.traffic import DECISIONS, TrafficConfig, TrafficStep
from topologies.traffic.builder import STATE_META, STATE_ROBOTS
from topologies.traffic.machine import MAP, STATUS, TASK

Harness = Callable[[Any], StepHarness]

GRID = grid_map(6, 6)
EAST = [("n1_2", 2), ("n2_2", 4), ("n3_2", 6), ("n4_2", 8)]  # from n0_2
SOUTH = [("n2_3", 2), ("n2_2", 4), ("n2_1", 6), ("n2_0", 8)]  # from n2_4: crosses EAST at n2_2


class Writes:
    """Records the sub-keys a step writes to a key's real Quix state (and passes every call on)."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.written: list[str] = []

    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.written.append(key)
        self.state.set(key, value)

    def delete(self, key: str) -> None:
        self.written.append(key)
        self.state.delete(key)

    def exists(self, key: str) -> bool:
        return bool(self.state.exists(key))


def _run(h: StepHarness, kind: str, value: dict[str, Any]) -> list[Any]:
    return h.send(kind, SITE, value, value["occurred_at"])


def _setup(h: StepHarness) -> list[Any]:
    out = _run(h, MAP, GRID)
    out += _run(h, TASK, task("hi", 9))
    out += _run(h, STATUS, status("a", "n0_2", EAST, task_id="hi"))
    out += _run(h, STATUS, status("b", "n2_4", SOUTH, task_id="lo"))
    return out


def test_state_lives_in_sub_keys_and_survives_json(harness: Harness) -> None:
    h = harness(TrafficStep(TrafficConfig()))
    out = _setup(h)
    assert [o.value["robot_id"] for o in out if o.topic == DECISIONS] == ["b"]
    assert all(o.key == o.value["robot_id"] for o in out if o.topic == DECISIONS)
    h.checkpoint()
    assert h.stored(SITE, STATE_ROBOTS) == ["a", "b"]
    assert h.stored(SITE, "robot:b")["hold"]["node"] == "n2_3"
    assert h.stored(SITE, "task:hi") == 9
    assert h.stored(SITE, "map")["version"] == 1
    assert h.stored(SITE, STATE_META)["site_id"] == SITE


def test_a_status_writes_only_meta_and_the_entries_it_changed(harness: Harness) -> None:
    step = TrafficStep(TrafficConfig())
    h = harness(step)
    _setup(h)
    for i in range(20):  # unrelated robots far away, one status each
        _run(h, STATUS, status(f"x{i:02d}", f"n{i % 6}_5", [], task_id=None))
    writes = Writes(h.state(SITE))
    later = status("x03", "n3_5", [("n3_4", 2)], seq=2)
    run_step(step, writes, SITE, STATUS, later, later["occurred_at"])
    assert sorted(writes.written) == [GENERATION, "meta", "robot:x03"]  # not the map, index, others


def test_duplicates_and_stale_statuses_write_nothing(harness: Harness) -> None:
    step = TrafficStep(TrafficConfig())
    h = harness(step)
    _setup(h)
    writes = Writes(h.state(SITE))
    again = status("a", "n0_2", EAST, task_id="hi")
    assert run_step(step, writes, SITE, STATUS, again, again["occurred_at"]) == []
    assert writes.written == []


def test_a_fresh_process_rebuilds_the_site_and_carries_on_identically(harness: Harness) -> None:
    config = TrafficConfig()
    warm, cold = harness(TrafficStep(config)), harness(TrafficStep(config))
    _setup(warm)
    _setup(cold)
    restarted = TrafficStep(config)
    cold.restart(restarted)  # a new process: empty memory, the stored state kept
    later = status("c", "n5_5", [("n5_4", 2)], at=T0 + 20_000, task_id=None)
    out_warm = _run(warm, STATUS, later)
    out_cold = _run(cold, STATUS, later)
    assert [o.value for o in out_warm] == [o.value for o in out_cold]
    assert any(o.value["kind"] == "RESUME" and o.value["robot_id"] == "b" for o in out_cold)
    assert restarted.sites.loads == 1


def test_a_stale_model_is_detected_by_the_generation_token(harness: Harness) -> None:
    config = TrafficConfig()
    first = TrafficStep(config)
    h = harness(first)
    _setup(h)
    h.step = TrafficStep(config)  # the partition moved to another process and back
    _run(h, STATUS, status("b", "n2_4", SOUTH, seq=2, task_id="lo"))  # it loads and advances the site
    h.step = first
    out = _run(h, STATUS, status("c", "n5_5", [], at=T0 + 20_000))
    assert any(o.value.get("kind") == "RESUME" for o in out)  # first reloaded: it knows b is held
    assert first.sites.loads == 2


def test_a_record_of_another_site_is_rejected_before_state(harness: Harness) -> None:
    h = harness(TrafficStep(TrafficConfig()))
    with pytest.raises(RejectedRecord):
        _run(h, STATUS, {**status("a", "n0_2", EAST), "site_id": "elsewhere"})
    h.checkpoint()
    assert h.stored(SITE, STATE_META) is None


def test_a_step_that_raises_drops_its_half_updated_model(harness: Harness) -> None:
    step = TrafficStep(TrafficConfig())
    h = harness(step)
    _setup(h)
    bad = status("z", "n0_0", [("n1_0", 2)], task_id=None)
    bad = {**bad, "pose": {**bad["pose"], "x": "oops"}, "speed": 1.0}  # the machine fails half way
    with pytest.raises(ValueError):
        _run(h, STATUS, bad)
    model = step.sites.get(KeyState(h.state(SITE), SITE))
    assert step.sites.loads == 2 and "z" not in model.robots  # rebuilt from what was stored
