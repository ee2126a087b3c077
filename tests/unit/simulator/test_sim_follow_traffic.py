"""The simulator's side of traffic control: HOLD / RESUME / REROUTE as the traffic topology means them,
robots that go home when idle, and a start delay that is reported in the route."""

from __future__ import annotations

from typing import Any

from pipelines.simulator import FleetConfig, FleetSim, apply_decision
from tests.unit.simulator.test_sim_fleet import T0, run


def _decision(kind: str, robot_id: str, nodes: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "kind": kind,
        "robot_id": robot_id,
        "site_id": "demo",
        "route": [{"node_id": n, "eta": T0} for n in nodes],
    }


def _sim(site_map: dict[str, Any], **kw: Any) -> FleetSim:
    return FleetSim(site_map, FleetConfig(robots=2, autonomous=False, **kw), T0)


def test_a_hold_stops_at_the_last_node_of_its_route(site_map: dict[str, Any]) -> None:
    sim = _sim(site_map)
    robot = sim.robot_ids[0]
    sim.assign(robot, "t", ["DROP5"])
    path = sim.view(robot).path
    assert apply_decision(sim, _decision("HOLD", robot, path[:5]))
    run(sim, 60, T0)
    assert sim.view(robot).node_id == path[4] and sim.view(robot).held


def test_a_hold_on_a_node_passed_twice_stops_at_the_visit_meant(site_map: dict[str, Any]) -> None:
    # Out to the pickup spur and back: the junction is on the path twice.
    sim = _sim(site_map)
    robot = sim.robot_ids[0]
    sim.assign(robot, "t", ["PICK3", "DROP1"])
    path = list(sim.view(robot).path)
    k = path.index("PICK3")
    junction = path[k - 1]
    assert path[k + 1] == junction
    sim.hold(robot, junction, path[: k + 2])  # the way there: the second visit
    run(sim, 120, T0)
    view = sim.view(robot)
    assert view.node_id == junction and view.held and "PICK3" not in view.path


def test_a_hold_past_its_node_stops_at_the_next_node_and_lasts_through_a_new_route(
    site_map: dict[str, Any],
) -> None:
    sim = _sim(site_map)
    robot = sim.robot_ids[0]
    sim.assign(robot, "t", ["DROP5"])
    run(sim, 10, T0)
    behind = "no-such-node-ahead"
    sim.hold(robot, behind)
    run(sim, 10)
    stop = sim.view(robot).node_id
    assert stop is not None and sim.view(robot).held
    sim.assign(robot, "t2", ["DROP1"])  # dispatch gives it another task: it keeps holding
    run(sim, 10)
    assert sim.view(robot).node_id == stop and sim.view(robot).held
    assert apply_decision(sim, _decision("RESUME", robot))
    run(sim, 5)
    assert sim.view(robot).node_id != stop


def test_a_reroute_ends_a_hold_and_skips_the_nodes_already_passed(site_map: dict[str, Any]) -> None:
    sim = _sim(site_map)
    robot = sim.robot_ids[0]
    sim.assign(robot, "t", ["DROP5"])
    run(sim, 10, T0)
    sim.hold(robot)
    run(sim, 5)
    view = sim.view(robot)
    here = view.node_id
    assert here is not None and view.held
    # sent a moment ago, from the node before this one: its first node is behind the robot now
    behind = sim.graph.shortest_path(here, "DROP1")
    assert apply_decision(sim, _decision("REROUTE", robot, ("W00", *behind)))
    assert not sim.view(robot).held and sim.view(robot).path[0] != "W00"
    run(sim, 120)
    assert sim.view(robot).node_id == "DROP1"


def test_idle_robots_go_home_after_a_while_and_say_so(site_map: dict[str, Any]) -> None:
    sim = _sim(site_map, return_home_ms=2_000, work_ms=1_000)
    robot = sim.robot_ids[0]
    home = sim.view(robot).node_id
    sim.assign(robot, "t", ["DROP2"])
    records = [r for r in run(sim, 120, T0) if r["robot_id"] == robot]
    assert sim.view(robot).node_id == home and sim.view(robot).activity == "IDLE"
    homeward = [r for r in records if r["task_id"] is None and r["route"]]
    assert homeward and homeward[0]["route"][-1]["node_id"] == home  # reported like any other route


def test_a_start_delay_is_reported_as_the_first_waypoint(site_map: dict[str, Any]) -> None:
    sim = _sim(site_map, start_delay_ms=3_000)
    robot = sim.robot_ids[0]
    here = sim.view(robot).node_id
    run(sim, 5, T0)
    sim.assign(robot, "t", ["DROP2"])
    [first] = [r for r in sim.step(sim.now_ms + 500) if r["robot_id"] == robot]
    assert first["route"][0]["node_id"] == here and first["speed"] == 0.0
    assert first["route"][0]["eta"] == sim.now_ms + 2_500
    run(sim, 2)
    assert sim.view(robot).anchor == here  # still waiting
    run(sim, 1)
    assert sim.view(robot).anchor != here  # set off: on the lane to the next node
