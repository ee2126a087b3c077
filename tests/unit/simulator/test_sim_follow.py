"""The closed-loop parts of the simulator that need no broker: task creation, switching robots off,
speed scaling. (`DecisionFeed` consumes Kafka: tests/integration/loop covers it.)"""

from __future__ import annotations

from pipelines.simulator import FleetConfig, FleetSim, TaskFeeder, apply_decision, demo_site
from schemas.ids import task_id_for
from schemas.models import TaskCommand

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _sim(**kw: object) -> FleetSim:
    site = demo_site("s1", "t1", 0, occurred_at=T0)
    return FleetSim(site, FleetConfig(tenant_id="t1", robots=3, autonomous=False, **kw), T0)  # type: ignore[arg-type]


def test_tasks_come_at_the_rate_up_to_the_limit_as_valid_commands() -> None:
    sim = _sim()
    feeder = TaskFeeder(sim, per_minute=30, limit=5, seed=3)
    assert len(feeder.due(T0)) == 1  # the first one at once
    assert feeder.due(T0 + 1_999) == []
    assert len(feeder.due(T0 + 2_000)) == 1  # every 2 s
    rest = feeder.due(T0 + 60_000)
    assert len(rest) == 3 and feeder.done and feeder.due(T0 + 120_000) == []
    for key, command in rest:
        TaskCommand.model_validate(command)  # the record the gateway produces
        assert key == command["task_id"] == task_id_for("t1", command["idempotency_key"])
        assert command["spec"]["pickup_node"].startswith("PICK")
        assert command["spec"]["dropoff_node"].startswith("DROP")


def test_tasks_are_the_same_for_the_same_seed_and_differ_across_seeds() -> None:
    def ids(seed: int) -> list[str]:
        return [k for k, _ in TaskFeeder(_sim(), per_minute=60, limit=4, seed=seed).due(T0 + 10_000)]

    assert ids(1) == ids(1)
    assert set(ids(1)).isdisjoint(ids(2))


def test_a_robot_switched_off_stops_reports_nothing_and_ignores_decisions() -> None:
    sim = _sim()
    rid = sim.robot_ids[0]
    assert apply_decision(sim, {"site_id": "s1", "kind": "ASSIGN", "robot_id": rid, "task_id": "t",
                                "route": [{"node_id": "DROP1", "eta": 0}]})  # fmt: skip
    sim.step(T0 + 5_000)
    sim.power_off(rid)
    where = (sim.view(rid).x, sim.view(rid).y)
    records = sim.step(T0 + 10_000)
    assert rid not in {r["robot_id"] for r in records} and len(records) == 2
    assert (sim.view(rid).x, sim.view(rid).y) == where
    assert not apply_decision(sim, {"site_id": "s1", "kind": "RESUME", "robot_id": rid, "route": []})
    sim.power_on(rid)
    assert sim.view(rid).task_id is None, "a robot switched back on has forgotten its task"
    after = [r for r in sim.step(T0 + 10_500) if r["robot_id"] == rid]
    assert [r["seq"] for r in after] == [1], "a rebooted robot counts its seq from 1 again"


def test_speed_scale_makes_the_same_trip_faster_for_the_same_energy() -> None:
    def trip(scale: float) -> tuple[int, float]:
        sim = _sim(speed_scale=scale)
        rid = sim.robot_ids[0]
        before = sim.view(rid).battery
        sim.assign(rid, "t", ["DROP3"])
        t = T0
        while sim.view(rid).activity != "WORK":
            t += 100
            sim.step(t)
        return t - T0, before - sim.view(rid).battery

    slow_ms, slow_used = trip(1.0)
    fast_ms, fast_used = trip(4.0)
    assert fast_ms < slow_ms / 3
    assert abs(fast_used - slow_used) < 0.25 * slow_used  # drive energy per metre is the same
