"""The cost function and the batch assignment (greedy vs optimal) on crafted cases."""

from __future__ import annotations

import math

import pytest

from schemas.sitegraph import SiteGraph
from tests.unit.topologies.test_dispatch_support import T0, line_map, site_map
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.policy import CostModel, RobotView, TaskView, greedy, optimal

CFG = DispatchConfig(age_weight=0.0)


def _model(site: dict | None = None, config: DispatchConfig = CFG) -> CostModel:
    return CostModel(SiteGraph(site or line_map(6)), config, T0)


def test_cost_is_travel_plus_battery_minus_urgency() -> None:
    m = _model()
    r = RobotView("r1", "N0", battery=0.7)
    t = TaskView("t1", priority=2, pickup="N1", dropoff="N3", queued_at=T0)
    travel = 10.0 + 20.0
    energy = travel * CFG.battery_per_s
    expected = (
        travel + CFG.battery_weight_s * energy / (0.7 - CFG.battery_reserve) - 2 * CFG.priority_weight_s
    )
    assert m.pair(r, t) == pytest.approx(expected)


def test_capabilities_must_be_a_subset() -> None:
    m = _model()
    t = TaskView("t1", pickup="N1", dropoff="N2", required=frozenset({"lift"}))
    assert m.pair(RobotView("r1", "N0", 0.9, frozenset({"tow"})), t) is None
    assert m.pair(RobotView("r2", "N0", 0.9, frozenset({"lift", "tow"})), t) is not None


def test_trip_crossing_the_reserve_is_infeasible() -> None:
    cfg = DispatchConfig(battery_per_s=0.01, battery_reserve=0.2)
    m = _model(config=cfg)
    t = TaskView("t1", pickup="N1", dropoff="N3")  # 30 s -> 0.3 of charge
    assert m.pair(RobotView("r1", "N0", 0.49), t) is None
    assert m.pair(RobotView("r1", "N0", 0.51), t) is not None
    assert m.pair(RobotView("r1", "N0", 0.1), TaskView("t0")) is None  # below the reserve: nothing


def test_pins_to_fleet_and_robot() -> None:
    m = _model()
    assert m.pair(RobotView("r1", "N0", 0.9, fleet_id="a"), TaskView("t", pickup="N1", fleet_id="b")) is None
    assert m.pair(RobotView("r1", "N0", 0.9), TaskView("t", pickup="N1", robot_id="r2")) is None
    assert m.pair(RobotView("r2", "N0", 0.9), TaskView("t", pickup="N1", robot_id="r2")) is not None


def test_unknown_pickup_is_infeasible() -> None:
    assert _model().pair(RobotView("r1", "N0", 0.9), TaskView("t", pickup="nowhere")) is None


def test_lateness_makes_the_faster_robot_cheaper_by_more_than_travel() -> None:
    m = _model()
    t = TaskView("t", pickup="N5", deadline=T0 + 20_000)
    near = m.pair(RobotView("near", "N4", 0.9), t)  # 10 s, on time
    far = m.pair(RobotView("far", "N0", 0.9), t)  # 50 s, 30 s late
    assert near is not None and far is not None
    assert far - near > 40.0 + CFG.lateness_weight * 30.0 - 1.0


def test_urgency_orders_priority_then_deadline_then_age() -> None:
    m = CostModel(SiteGraph(line_map(3)), DispatchConfig(), T0 + 60_000)
    tasks = [
        TaskView("low", priority=1, queued_at=T0 + 60_000),
        TaskView("high", priority=9, queued_at=T0 + 60_000),
        TaskView("due", priority=1, deadline=T0 + 90_000, queued_at=T0 + 60_000),
        TaskView("old", priority=1, queued_at=T0),
    ]
    table = m.table([RobotView("r", "N0", 0.9)], tasks)
    assert [t.task_id for t in table.tasks] == ["high", "due", "old", "low"]


def test_ties_break_by_priority_created_task_id_then_robot_id() -> None:
    m = _model()
    tasks = [
        TaskView("b", pickup="N3", created_at=T0),
        TaskView("a", pickup="N3", created_at=T0),
        TaskView("z", pickup="N3", created_at=T0 - 1),
    ]
    robots = [RobotView("r2", "N2", 0.9), RobotView("r1", "N4", 0.9), RobotView("r3", "N2", 0.9)]
    got = greedy(m.table(robots, tasks))
    # z is oldest; r1, r2, r3 are all 10 s away: smallest robot id first.
    assert [(a.task_id, a.robot_id) for a in got] == [("z", "r1"), ("a", "r2"), ("b", "r3")]


def crafted_case() -> tuple[CostModel, list[RobotView], list[TaskView]]:
    """Greedy gives the urgent task to the nearest robot and strands the other task far away."""
    nodes = {"A": (0, 0), "B": (10, 0), "C": (20, 0), "D": (120, 0)}
    site = site_map(nodes, [("A", "B"), ("B", "C"), ("C", "D")])
    model = CostModel(SiteGraph(site), CFG, T0)
    # urgent at C: r1 (at B) is 10 s away, r2 (at D) 100 s; other at A: r1 10 s, r2 120 s.
    # greedy: urgent -> r1, other -> r2 = 130 s; optimal: urgent -> r2, other -> r1 = 110 s.
    robots = [RobotView("r1", "B", 0.9), RobotView("r2", "D", 0.9)]
    tasks = [TaskView("urgent", priority=9, pickup="C"), TaskView("other", priority=5, pickup="A")]
    return model, robots, tasks


def test_optimal_beats_greedy_on_the_crafted_case() -> None:
    model, robots, tasks = crafted_case()
    table = model.table(robots, tasks)
    g = greedy(table)
    o = optimal(table)
    assert {(a.task_id, a.robot_id) for a in g} == {("urgent", "r1"), ("other", "r2")}
    assert {(a.task_id, a.robot_id) for a in o} == {("urgent", "r2"), ("other", "r1")}
    assert sum(a.travel_s for a in o) < sum(a.travel_s for a in g)
    assert sum(a.cost for a in o) < sum(a.cost for a in g)


def test_optimal_drops_infeasible_pairs_and_never_double_books() -> None:
    m = _model()
    robots = [RobotView("r1", "N0", 0.9), RobotView("r2", "N5", 0.9, frozenset({"lift"}))]
    tasks = [
        TaskView(f"t{i}", pickup=f"N{i}", required=frozenset({"lift"}) if i % 2 else frozenset())
        for i in range(5)
    ]
    got = optimal(m.table(robots, tasks))
    assert len({a.robot_id for a in got}) == len(got) == 2
    assert all(math.isfinite(a.cost) for a in got)
    assert next(a for a in got if a.robot_id == "r1").task_id in {"t0", "t2", "t4"}


def test_travel_is_the_same_computed_from_the_robots_or_to_the_tasks() -> None:
    """Many free robots and one task (trees to the task) or one robot and many tasks (trees from the
    robot): the same travel times, one-way lanes respected."""
    nodes = {f"N{i}": (i * 10.0, 0.0) for i in range(6)} | {"S": (25.0, 10.0)}
    lanes = [(f"N{i}", f"N{i + 1}") for i in range(5)] + [("N1", "S", False), ("S", "N4", False)]
    model = CostModel(SiteGraph(site_map(nodes, lanes)), CFG, T0)
    robots = [RobotView(f"r{i}", f"N{i}", 0.9) for i in range(6)]
    tasks = [TaskView(f"t{i}", pickup=f"N{5 - i}") for i in range(6)]
    full = model.table(robots, tasks).travel  # 6 robots on 6 nodes, 6 targets: trees from the robots
    for k, task in enumerate(model.table(robots, tasks).tasks):
        column = model.table(robots, [task]).travel[:, 0]  # 1 target: one tree to it
        assert column == pytest.approx(full[:, k])
    for i, robot in enumerate(robots):
        row = model.table([robot], tasks).travel[0]
        assert row == pytest.approx(full[i])
    # one-way lanes: N4 reaches S only through N1 (N1 -> S -> N4 is one way), S reaches N4 directly
    leg = math.dist((10, 0), (25, 10))
    there = model.table([RobotView("r", "S", 0.9)], [TaskView("t", pickup="N4")]).travel[0, 0]
    back = model.table([RobotView("r1", "N4", 0.9), RobotView("r2", "N5", 0.9)], [TaskView("t", pickup="S")])
    assert there == pytest.approx(leg) and back.travel[:, 0] == pytest.approx([30.0 + leg, 40.0 + leg])
