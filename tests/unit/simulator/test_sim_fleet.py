from __future__ import annotations

import itertools
import math
from collections import defaultdict
from typing import Any

import pytest

from pipelines.simulator import FleetConfig, FleetSim, apply_decision, demo_site
from pipelines.simulator.geometry import distance
from schemas.ids import uuid7_time_ms
from schemas.models import RobotRegistration, RobotTelemetry
from schemas.sitegraph import SiteGraph

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TICK = 500


def run(sim: FleetSim, seconds: float, start: int | None = None) -> list[dict[str, Any]]:
    """Step sim every TICK ms for `seconds` after `start` (default: its current time); all records."""
    t = sim.now_ms if start is None else start
    out: list[dict[str, Any]] = []
    for _ in range(round(seconds * 1000 / TICK)):
        t += TICK
        out.extend(sim.step(t))
    return out


def by_robot(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[r["robot_id"]].append(r)
    return out


def line_map() -> dict[str, Any]:
    """P1 - A - B - C - P2 along y=0, 3 m apart, plus a charger off B."""
    xs = {"P1": 0, "A": 3, "B": 6, "C": 9, "P2": 12}
    nodes = [
        {"id": n, "x": float(x), "y": 0.0, "kind": "PARKING" if n.startswith("P") else "AISLE", "name": None}
        for n, x in xs.items()
    ]
    nodes.append({"id": "CH", "x": 6.0, "y": 3.0, "kind": "CHARGER", "name": None})
    pairs = [("P1", "A"), ("A", "B"), ("B", "C"), ("C", "P2"), ("B", "CH")]
    return {
        "site_id": "line",
        "version": 1,
        "nodes": nodes,
        "lanes": [
            {"id": f"{a}-{b}", "from_node": a, "to_node": b, "bidirectional": True, "speed_limit": None}
            for a, b in pairs
        ],
        "zones": [],
        "chargers": [{"id": "CHG", "node_id": "CH"}],
    }


def manual(robots: int = 2, **kw: Any) -> FleetConfig:
    return FleetConfig(robots=robots, autonomous=False, self_charge=False, initial_battery=(0.8, 0.8), **kw)


# -- start ----------------------------------------------------------------------------------------------


def test_robots_start_on_distinct_parking_spots(site_map: dict[str, Any], graph: SiteGraph) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=25), T0)
    starts = [sim.view(r).node_id for r in sim.robot_ids]
    assert len(set(starts)) == 25
    assert all(n is not None and graph.kind(n) == "PARKING" for n in starts)


def test_more_robots_than_parking_spots_still_start_on_distinct_nodes(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=60), T0)
    starts = [sim.view(r).node_id for r in sim.robot_ids]
    assert len(set(starts)) == 60
    assert sum(1 for n in starts if n is not None and n.startswith("P")) == 30
    with pytest.raises(ValueError, match="do not fit"):
        FleetSim(site_map, FleetConfig(robots=500), T0)


def test_registrations_describe_every_robot(site_map: dict[str, Any], avro_roundtrip) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=6, tenant_id="globex", fleet_id="f1"), T0)
    regs = sim.registrations()
    assert [r["robot_id"] for r in regs] == sim.robot_ids
    for reg in regs:
        assert (reg["tenant_id"], reg["site_id"], reg["fleet_id"], reg["occurred_at"]) == (
            "globex",
            "demo",
            "f1",
            T0,
        )
        assert reg["managed_by"] == "FLEETSTREAM" and reg["active"] is True
        assert "tote" in reg["capabilities"]
        assert avro_roundtrip("RobotRegistration", reg) == reg
        RobotRegistration.model_validate(reg)
    assert any("lift" in r["capabilities"] for r in regs) and any(
        "lift" not in r["capabilities"] for r in regs
    )


# -- telemetry records ----------------------------------------------------------------------------------


def test_one_record_per_robot_per_tick_with_seq_increasing_by_one(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=5), T0)
    ticks = [T0 + k * TICK for k in range(40)]
    per_tick = [sim.step(t) for t in ticks]
    assert all(len(recs) == 5 for recs in per_tick)
    for t, recs in zip(ticks, per_tick, strict=True):
        assert {r["occurred_at"] for r in recs} == {t}
    for recs in by_robot([r for tick in per_tick for r in tick]).values():
        seqs = [r["seq"] for r in recs]
        assert seqs == list(range(seqs[0], seqs[0] + 40))
    assert seqs[0] == T0  # default seq_start: the start time, so a restarted simulator keeps seq increasing


def test_records_carry_ids_and_fit_the_avro_schema(site_map: dict[str, Any], avro_roundtrip) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=4, tenant_id="globex", fleet_id="f1"), T0)
    records = run(sim, 30, T0)
    assert len({r["event_id"] for r in records}) == len(records)
    for rec in records[::7]:
        assert uuid7_time_ms(rec["event_id"]) == rec["occurred_at"]
        assert (rec["tenant_id"], rec["site_id"], rec["fleet_id"]) == ("globex", "demo", "f1")
        assert avro_roundtrip("RobotTelemetry", rec) == rec
        RobotTelemetry.model_validate(rec)


def test_same_seed_same_records_other_seed_other_records(site_map: dict[str, Any]) -> None:
    def records(seed: int) -> list[dict[str, Any]]:
        return run(FleetSim(site_map, FleetConfig(robots=8, seed=seed), T0), 60, T0)

    assert records(7) == records(7)
    a, b = records(7), records(8)
    assert [r["pose"] for r in a] != [r["pose"] for r in b]


def test_time_only_moves_forward(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=1), T0)
    sim.step(T0 + 1000)
    with pytest.raises(ValueError, match="forward"):
        sim.step(T0 + 999)


# -- motion ---------------------------------------------------------------------------------------------


def test_robots_drive_along_lanes_at_about_1_2_m_per_s(site_map: dict[str, Any], graph: SiteGraph) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=10, seed=3), T0)
    records = run(sim, 180, T0)
    segments = [(graph.position(a["from_node"]), graph.position(a["to_node"])) for a in site_map["lanes"]]
    moving_speeds = set()
    for recs in by_robot(records).values():
        for prev, cur in itertools.pairwise(recs):
            step = distance((prev["pose"]["x"], prev["pose"]["y"]), (cur["pose"]["x"], cur["pose"]["y"]))
            assert step <= 1.2 * TICK / 1000 + 1e-3
        for rec in recs:
            p = (rec["pose"]["x"], rec["pose"]["y"])
            assert any(_on_segment(p, a, b) for a, b in segments), rec["pose"]
            if rec["pose"]["node_id"]:
                assert distance(p, graph.position(rec["pose"]["node_id"])) <= 0.6 + 1e-6
            if rec["mode"] == "MOVING" and rec["speed"] > 0:
                moving_speeds.add(rec["speed"])
    assert moving_speeds <= {1.2, 0.6} and 1.2 in moving_speeds
    modes = {r["mode"] for r in records}
    assert {"MOVING", "IDLE"} <= modes


def _on_segment(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    ab, ap = (b[0] - a[0], b[1] - a[1]), (p[0] - a[0], p[1] - a[1])
    length = math.hypot(*ab)
    cross = abs(ab[0] * ap[1] - ab[1] * ap[0]) / length
    along = (ab[0] * ap[0] + ab[1] * ap[1]) / length
    return cross <= 2e-3 and -2e-3 <= along <= length + 2e-3


def test_routes_follow_lanes_with_increasing_etas_and_are_driven_to_the_end(
    site_map: dict[str, Any], graph: SiteGraph
) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=6, seed=5), T0)
    records = run(sim, 240, T0)
    destinations_reached = 0
    for recs in by_robot(records).values():
        for i, rec in enumerate(recs):
            route = rec["route"]
            if not route:
                continue
            nodes = [w["node_id"] for w in route]
            etas = [w["eta"] for w in route]
            assert all(graph.has_lane(a, b) for a, b in itertools.pairwise(nodes))
            assert etas == sorted(etas) and etas[0] >= rec["occurred_at"]
            if i + 1 < len(recs) and not recs[i + 1]["route"]:
                # The route just ended: the robot stands on its last node.
                assert recs[i + 1]["pose"]["node_id"] == nodes[-1]
                destinations_reached += 1
    assert destinations_reached >= 6


def test_pose_has_no_node_in_the_middle_of_a_long_lane(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=10, seed=1), T0)
    records = run(sim, 120, T0)
    moving = [r for r in records if r["mode"] == "MOVING" and r["speed"] > 0]
    assert any(r["pose"]["node_id"] is None for r in moving)
    assert any(r["pose"]["node_id"] is not None for r in moving)


# -- battery --------------------------------------------------------------------------------------------


def test_battery_drains_while_moving_and_slowly_while_idle() -> None:
    sim = FleetSim(line_map(), manual(robots=1), T0)
    robot = sim.robot_ids[0]
    idle = run(sim, 10, T0)
    assert idle[-1]["battery"] == pytest.approx(0.8 - 10 * 0.00002, abs=1e-6)
    sim.reroute(robot, ["P2"] if sim.view(robot).anchor == "P1" else ["P1"])
    before = sim.view(robot).battery
    moving = run(sim, 5)
    assert all(r["mode"] == "MOVING" for r in moving)
    assert before - sim.view(robot).battery == pytest.approx(5 * 0.0002, rel=1e-6)


def test_low_battery_robots_charge_at_distinct_chargers_up_to_95_percent(
    site_map: dict[str, Any], graph: SiteGraph
) -> None:
    chargers = len(site_map["chargers"])
    cfg = FleetConfig(robots=chargers + 3, seed=2, initial_battery=(0.2, 0.24))
    sim = FleetSim(site_map, cfg, T0)
    records = run(sim, 400, T0)
    charging_at: dict[int, set[str]] = defaultdict(set)
    for rec in records:
        if rec["mode"] == "CHARGING":
            node = rec["pose"]["node_id"]
            assert node is not None and graph.kind(node) == "CHARGER"
            assert node not in charging_at[rec["occurred_at"]], "two robots on one charger"
            charging_at[rec["occurred_at"]].add(node)
    assert max(len(v) for v in charging_at.values()) == chargers  # every charger busy at some point
    for recs in by_robot(records).values():
        charging = [r for r in recs if r["mode"] == "CHARGING"]
        assert charging, "every robot charged"
        a, b = charging[0], charging[min(10, len(charging) - 1)]
        rate = (b["battery"] - a["battery"]) / ((b["occurred_at"] - a["occurred_at"]) / 1000)
        assert rate == pytest.approx(0.01, rel=0.02)
        assert max(r["battery"] for r in recs) == pytest.approx(0.95, abs=1e-4)
        after = recs[recs.index(charging[-1]) + 1 :]
        assert after and after[0]["mode"] != "CHARGING"  # leaves the charger when full


def test_a_robot_with_an_empty_battery_stops_with_an_error() -> None:
    cfg = FleetConfig(robots=1, autonomous=False, self_charge=False, initial_battery=(0.0005, 0.0005))
    sim = FleetSim(line_map(), cfg, T0)
    robot = sim.robot_ids[0]
    sim.reroute(robot, ["P2"] if sim.view(robot).anchor == "P1" else ["P1"])
    last = run(sim, 10, T0)[-1]
    assert (last["mode"], last["error_code"], last["battery"], last["speed"]) == (
        "ERROR",
        "BATTERY_EMPTY",
        0.0,
        0.0,
    )


# -- hooks for decisions --------------------------------------------------------------------------------


def test_non_autonomous_robots_stay_where_they_are(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=5, autonomous=False), T0)
    starts = {r: sim.view(r).node_id for r in sim.robot_ids}
    records = run(sim, 60, T0)
    assert {r["mode"] for r in records} == {"IDLE"}
    assert {r: sim.view(r).node_id for r in sim.robot_ids} == starts


def test_assign_drives_through_the_waypoints_then_works_and_completes(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=3, autonomous=False, work_ms=2000), T0)
    robot = sim.robot_ids[0]
    sim.assign(robot, "task-1", ["PICK1", "DROP2"])
    recs = [r for r in run(sim, 150, T0) if r["robot_id"] == robot]
    phases = [r["task_phase"] for r in recs]
    assert phases[0] == "STARTED" and phases.count("STARTED") == 1
    assert phases.count("COMPLETED") == 1
    done = phases.index("COMPLETED")
    assert set(phases[1:done]) == {"IN_PROGRESS"}
    assert all(r["task_id"] == "task-1" for r in recs[: done + 1])
    assert all(r["task_id"] is None and r["task_phase"] == "NONE" for r in recs[done + 1 :])
    visited = [r["pose"]["node_id"] for r in recs[:done]]
    assert "PICK1" in visited and visited.index("PICK1") < visited.index("DROP2")
    working = [r for r in recs if r["mode"] == "WORKING"]
    assert working and all(r["pose"]["node_id"] == "DROP2" for r in working)
    assert 3 <= len(working) <= 5  # 2 s of work at 2 Hz
    assert recs[-1]["mode"] == "IDLE" and recs[-1]["pose"]["node_id"] == "DROP2"


def test_hold_stops_at_the_next_node_and_resume_drives_on(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=2, autonomous=False), T0)
    robot = sim.robot_ids[0]
    sim.assign(robot, "t", ["DROP5"])
    run(sim, 7.3, T0)
    assert sim.view(robot).node_id is None or sim.view(robot).path  # on its way
    sim.hold(robot)
    run(sim, 5)
    held = [r for r in run(sim, 10) if r["robot_id"] == robot]
    poses = {(r["pose"]["x"], r["pose"]["y"], r["pose"]["node_id"]) for r in held}
    assert len(poses) == 1 and next(iter(poses))[2] is not None  # standing on a node
    assert all(r["speed"] == 0 and r["mode"] == "MOVING" and r["route"] for r in held)
    sim.resume(robot)
    after = [r for r in run(sim, 120) if r["robot_id"] == robot]
    assert after[0]["speed"] > 0
    assert after[-1]["pose"]["node_id"] == "DROP5"


def test_hold_at_a_node_further_on_stops_there(site_map: dict[str, Any], graph: SiteGraph) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=1, autonomous=False), T0)
    robot = sim.robot_ids[0]
    sim.assign(robot, "t", ["DROP5"])
    stop_at = sim.view(robot).path[6]
    sim.hold(robot, at_node=stop_at)
    run(sim, 60, T0)
    view = sim.view(robot)
    assert view.node_id == stop_at and view.held


def test_reroute_replaces_the_remaining_route(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=1, autonomous=False), T0)
    robot = sim.robot_ids[0]
    sim.assign(robot, "t", ["DROP5"])
    run(sim, 3.2, T0)
    sim.reroute(robot, ["PICK3"])
    rec = run(sim, 0.5)[-1]
    assert rec["route"][-1]["node_id"] == "PICK3" and rec["task_id"] == "t"
    records = run(sim, 120)
    assert all(r["pose"]["node_id"] != "DROP5" for r in records)
    assert records[-1]["pose"]["node_id"] == "PICK3" and records[-1]["task_phase"] == "NONE"


def test_send_to_charger_and_unassign() -> None:
    sim = FleetSim(line_map(), manual(robots=1), T0)
    robot = sim.robot_ids[0]
    assert sim.send_to_charger(robot)
    recs = run(sim, 60, T0)
    charging = [r for r in recs if r["mode"] == "CHARGING"]
    assert charging and {r["pose"]["node_id"] for r in charging} == {"CH"}
    assert recs[-1]["mode"] == "IDLE" and recs[-1]["pose"]["node_id"] == "CH"  # full, waits for orders
    sim.assign(robot, "t2", ["P1"])
    run(sim, 1)
    sim.unassign(robot)
    last = run(sim, 10)[-1]
    assert last["task_id"] is None and last["mode"] == "IDLE" and last["pose"]["node_id"] in {"B", "A"}


# -- ground truth ---------------------------------------------------------------------------------------


def _two_robots_at_both_ends(**kw: Any) -> tuple[FleetSim, str, str]:
    sim = FleetSim(line_map(), manual(robots=2, **kw), T0)
    a, b = sim.robot_ids
    assert {sim.view(a).node_id, sim.view(b).node_id} == {"P1", "P2"}
    return (sim, a, b) if sim.view(a).node_id == "P1" else (sim, b, a)


def test_ground_truth_records_occupancy_and_a_vertex_collision() -> None:
    sim, a, b = _two_robots_at_both_ends(record_history=True)
    sim.reroute(a, ["P2"])
    sim.reroute(b, ["P1"])
    run(sim, 20, T0)
    gt = sim.ground_truth
    # Same speed, same distance: they meet on node B (and pass through each other there).
    assert (gt.vertex_collisions, gt.edge_collisions) == (1, 0)
    (hit,) = gt.collisions
    assert (hit.kind, hit.node_id, set(hit.robot_ids)) == ("VERTEX", "B", {a, b})
    occ = gt.occupancy_of(a)
    assert [o.node_id for o in occ] == ["P1", "A", "B", "C", "P2"]
    assert all(o.end_ms is not None and o.start_ms <= o.end_ms for o in occ[:-1])
    assert occ[-1].end_ms is None  # still standing at its destination
    # Passing through a node takes 2 * footprint / speed = 1 s; B is reached after 6 m at 1.2 m/s.
    assert (occ[2].start_ms, occ[2].end_ms) == (T0 + 4500, T0 + 5500)


def test_ground_truth_counts_a_head_on_meeting_on_a_lane() -> None:
    sim, a, b = _two_robots_at_both_ends(record_history=True)
    sim.reroute(a, ["P2"])
    run(sim, 1.5, T0)
    sim.reroute(b, ["P1"])
    run(sim, 20)
    gt = sim.ground_truth
    assert (gt.vertex_collisions, gt.edge_collisions) == (0, 1)
    assert gt.collisions[0].lane_id == "B-C"


def test_robots_following_each_other_do_not_collide() -> None:
    sim = FleetSim(line_map(), manual(robots=2), T0)
    a, b = sim.robot_ids
    first, second = (a, b) if sim.view(a).node_id == "P1" else (b, a)
    sim.reroute(second, ["C"])  # from P2 to C: out of the way
    run(sim, 5, T0)
    sim.reroute(first, ["B"])
    run(sim, 20)
    assert sim.ground_truth.vertex_collisions == 0 and sim.ground_truth.edge_collisions == 0


def test_demo_map_run_reports_collisions_without_traffic_control() -> None:
    sim = FleetSim(demo_site(), FleetConfig(robots=30, seed=4), T0)
    run(sim, 300, T0)
    assert sim.ground_truth.vertex_collisions > 0


# -- decisions ------------------------------------------------------------------------------------------


def _decision(kind: str, robot_id: str, nodes: tuple[str, ...] = (), **kw: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "robot_id": robot_id,
        "site_id": "demo",
        "route": [{"node_id": n, "eta": T0} for n in nodes],
        **kw,
    }


def test_decisions_drive_the_fleet(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=2, autonomous=False), T0)
    robot, other = sim.robot_ids
    assert apply_decision(sim, _decision("ASSIGN", robot, ("PICK2", "DROP1"), task_id="t-9"))
    assert sim.view(robot).task_id == "t-9" and sim.view(robot).path[-1] == "DROP1"
    run(sim, 3, T0)
    assert apply_decision(sim, _decision("HOLD", robot))
    run(sim, 5)
    assert sim.view(robot).node_id is not None and sim.view(robot).held
    assert apply_decision(sim, _decision("RESUME", robot))
    assert apply_decision(sim, _decision("REROUTE", robot, ("PICK3",)))
    assert sim.view(robot).path[-1] == "PICK3"
    assert apply_decision(sim, _decision("CHARGE", other))
    assert sim.view(other).charger in {node for _, node in sim.graph.chargers}
    assert apply_decision(sim, _decision("UNASSIGN", robot))
    assert sim.view(robot).task_id is None
    # Not for this fleet, or impossible: ignored.
    assert not apply_decision(sim, _decision("ASSIGN", "someone-else", ("PICK1",)))
    assert not apply_decision(sim, {**_decision("HOLD", robot), "site_id": "other-site"})
    assert not apply_decision(sim, _decision("REROUTE", robot, ("no-such-node",)))
    assert not apply_decision(sim, _decision("UNKNOWN", robot))


def test_a_held_idle_robot_does_not_wander_off(site_map: dict[str, Any]) -> None:
    sim = FleetSim(site_map, FleetConfig(robots=3), T0)
    robot = sim.robot_ids[0]
    sim.hold(robot)
    start = sim.view(robot).node_id
    run(sim, 30, T0)
    assert sim.view(robot).node_id == start and sim.view(robot).activity == "IDLE"
    sim.resume(robot)
    run(sim, 30)
    assert sim.view(robot).node_id != start
