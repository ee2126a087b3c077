"""The traffic adapter on the kernel (``TrafficStep``), over Quix's memory and RocksDB stores: sub-key state,
O(1) writes per status, model rebuilds, and a model dropped when a step raises; for monitored (Open-RMF)
robots and for the robots it coordinates by grants."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from schemas.catalog import TIMERS
from schemas.errors import RejectedRecord
from tests.unit.topologies.test_traffic_support import SITE, T0, TENANT, grid_map, task
from tests.unit.topologies.test_traffic_support import status as _status
from topologies.kernel import GENERATION, KeyState, run_step
from topologies.kernel.testing import StepHarness
from topologies.timers import TIMER
from topologies.traffic import DECISIONS, TrafficConfig, TrafficStep
from topologies.traffic.builder import STATE_META, STATE_MOVERS, STATE_ROBOTS
from topologies.traffic.site import MAP, REGISTRATION, STATUS, TASK

Harness = Callable[[Any], StepHarness]

GRID = grid_map(6, 6)
EAST = [("n1_2", 2), ("n2_2", 4), ("n3_2", 6), ("n4_2", 8)]  # from n0_2
SOUTH = [("n2_3", 2), ("n2_2", 4), ("n2_1", 6), ("n2_0", 8)]  # from n2_4: crosses EAST at n2_2


def status(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """A RobotStatus of an Open-RMF robot: one traffic monitors (HOLD / RESUME), not one it grants."""
    return {**_status(*args, **kwargs), "reason": "RMF"}


def own(robot_id: str, node: str, route: list[str], *, at: int, seq: int) -> dict[str, Any]:
    """A RobotStatus of a robot fleetstream coordinates, standing at ``node`` and bound along ``route``."""
    return _status(robot_id, node, [(n, 2 * (i + 1)) for i, n in enumerate(route)], at=at, seq=seq)


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
    assert step.sites.loads == 2 and "z" not in model.monitor.robots  # rebuilt from what was stored


def _grants(out: list[Any]) -> list[tuple[str, list[str], int]]:
    return [
        (o.value["robot_id"], [w["node_id"] for w in o.value["route"]], o.value["granted"])
        for o in out
        if o.topic == DECISIONS and o.value["kind"] == "GRANT"
    ]


def _drive(h: StepHarness, start: int, seconds: int) -> list[Any]:
    """Robots a (west to east along row 2) and b (north to south along column 3) report once a second."""
    out: list[Any] = []
    for t in range(seconds):
        at = start + t * 1000
        out += _run(h, STATUS, own("a", "n0_2", ["n1_2", "n2_2", "n3_2", "n4_2", "n5_2"], at=at, seq=t + 1))
        out += _run(h, STATUS, own("b", "n3_4", ["n3_3", "n3_2", "n3_1", "n3_0"], at=at + 1, seq=t + 1))
    return out


def test_coordinated_robots_get_exclusive_grants_stored_per_robot(harness: Harness) -> None:
    h = harness(TrafficStep(TrafficConfig()))
    _run(h, MAP, GRID)
    out = _drive(h, T0, 8)  # past the warm-up
    grants = _grants(out)
    assert {rid for rid, _, _ in grants} == {"a", "b"}
    held = {rid: route[:granted] for rid, route, granted in grants}  # the last grant of each
    assert not set(held["a"]) & set(held["b"])  # n3_2, where their ways cross, is one robot's at most
    h.checkpoint()
    assert h.stored(SITE, STATE_MOVERS) == ["a", "b"]
    assert h.stored(SITE, "mover:a")["held"] == held["a"]
    assert h.stored(SITE, STATE_ROBOTS) is None  # neither is monitored


def test_a_coordinated_status_writes_only_meta_and_its_own_entry(harness: Harness) -> None:
    step = TrafficStep(TrafficConfig())
    h = harness(step)
    _run(h, MAP, GRID)
    _drive(h, T0, 8)
    writes = Writes(h.state(SITE))
    later = own("a", "n0_2", ["n1_2", "n2_2"], at=T0 + 8_000, seq=9)  # no round is due: no grant
    run_step(step, writes, SITE, STATUS, later, later["occurred_at"] - 1)
    assert sorted(writes.written) == [GENERATION, "meta", "mover:a"]


def test_a_fresh_process_grants_exactly_what_the_old_one_would_have(harness: Harness) -> None:
    config = TrafficConfig()
    warm, cold = harness(TrafficStep(config)), harness(TrafficStep(config))
    for h in (warm, cold):
        _run(h, MAP, GRID)
        _drive(h, T0, 4)  # still warming up: no grant yet
    restarted = TrafficStep(config)
    cold.restart(restarted)
    out_warm = _drive(warm, T0 + 4_000, 6)
    out_cold = _drive(cold, T0 + 4_000, 6)
    assert _grants(out_warm) and [o.value for o in out_warm] == [o.value for o in out_cold]
    assert restarted.sites.loads == 1


def test_robots_that_stand_waiting_are_granted_on_the_sites_planning_tick(harness: Harness) -> None:
    """Standing robots send no new status: the timer the step armed runs the round that grants them."""
    h = harness(TrafficStep(TrafficConfig()))
    _run(h, MAP, GRID)
    out = _drive(h, T0, 1)  # their first statuses, then silence: the warm-up is not over yet
    assert not _grants(out)
    armed = [o.value for o in out if o.topic == TIMERS]
    assert len(armed) == 1 and armed[0]["target_key"] == SITE and armed[0]["owner"] == "traffic"
    tick = armed[0]
    early = {**tick, "due_at": tick["due_at"] - 1}  # not the timer armed (re-armed since): ignored
    assert h.send(TIMER, SITE, early, early["due_at"]) == []
    while not _grants(out):  # each tick runs a round if one is due and arms the next one
        tick = next(o.value for o in out if o.topic == TIMERS)
        assert tick["due_at"] <= T0 + TrafficConfig().warmup_ms + 1_000
        out = h.send(TIMER, SITE, tick, tick["due_at"])
    assert {rid for rid, _, _ in _grants(out)} == {"a", "b"}


def test_robots_that_fall_silent_stop_the_planning_ticks(harness: Harness) -> None:
    """Telemetry's OFFLINE status carries the seq of the robot's last sample: traffic takes it as news (the
    robot keeps what it holds and is planned round) and arms no tick for robots nobody can move."""
    h = harness(TrafficStep(TrafficConfig()))
    _run(h, MAP, GRID)
    out = _drive(h, T0, 8)
    assert _grants(out) and any(o.topic == TIMERS for o in out)
    h.checkpoint()
    held = {rid: h.stored(SITE, f"mover:{rid}")["held"] for rid in ("a", "b")}
    last = T0 + 7_000
    silent = [
        {**own("a", "n0_2", [], at=last + 30_000, seq=8), "status": "OFFLINE", "speed": 0.0},
        {**own("b", "n3_4", [], at=last + 30_001, seq=8), "status": "OFFLINE", "speed": 0.0},
    ]
    _run(h, STATUS, silent[0])  # b can still move: a tick may be armed for it
    out = _run(h, STATUS, silent[1])
    assert not [o for o in out if o.topic == TIMERS]  # nobody left who can move: no tick
    h.checkpoint()
    for rid in ("a", "b"):
        mover = h.stored(SITE, f"mover:{rid}")
        assert mover["mode"] == "OFFLINE" and mover["held"] == held[rid]  # keeps what it holds
    tick = {"owner": "traffic", "timer_id": f"traffic:{SITE}", "target_key": SITE, "tenant_id": TENANT,
            "site_id": SITE, "due_at": last + 40_000, "occurred_at": last + 40_000, "payload": {}}  # fmt: skip
    assert not [o for o in h.send(TIMER, SITE, tick, tick["due_at"]) if o.topic == TIMERS]


def test_a_robot_registered_as_managed_by_its_own_system_is_monitored_not_granted(harness: Harness) -> None:
    h = harness(TrafficStep(TrafficConfig()))
    _run(h, MAP, GRID)
    registration = {"event_id": "reg-b", "tenant_id": TENANT, "site_id": SITE, "occurred_at": T0,
                    "robot_id": "b", "fleet_id": "f1", "name": "b", "model": None, "capabilities": [],
                    "max_payload_kg": None, "managed_by": "SELF", "active": True}  # fmt: skip
    _run(h, REGISTRATION, registration)
    out = _drive(h, T0, 8)
    assert {rid for rid, _, _ in _grants(out)} == {"a"}
    h.checkpoint()
    assert h.stored(SITE, "monitored") == ["b"] and h.stored(SITE, STATE_MOVERS) == ["a"]
    assert h.stored(SITE, "robot:b") is not None  # the monitor follows it
