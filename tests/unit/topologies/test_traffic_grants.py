"""Traffic control by grants: exclusive nodes, released behind robots, planned so the fleet keeps moving.

Scenarios run in a small discrete world of robots that obey their grants (``traffic_world``); the
property test feeds the traffic step arbitrary inputs, obedient or not, and checks that no node is ever
granted to two robots.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.sitegraph import SiteGraph
from tests.unit.topologies.traffic_world import T0, World, grid_map
from topologies.traffic import TrafficConfig
from topologies.traffic.coordinate import Coordinator
from topologies.traffic.grants import GrantTable, Mover
from topologies.traffic.site import MAP, STATUS, TrafficSite, step


def _mover(table: GrantTable, rid: str, *nodes: str) -> Mover:
    m = Mover(robot_id=rid, tenant_id="t", site_id="s")
    table.movers[rid] = m
    idx = [table.graph.index[n] for n in nodes]
    m.held = [idx[0]]
    table.owner[idx[0]] = rid
    for n in idx[1:]:
        assert table.extend(m, n)
    return m


def test_a_node_is_granted_to_one_robot_and_released_behind_it() -> None:
    g = SiteGraph(grid_map(1, 5))
    table = GrantTable(g)
    a = _mover(table, "a", "r0c0", "r0c1", "r0c2")
    b = _mover(table, "b", "r0c4")
    assert not table.extend(b, g.index["r0c2"])  # not adjacent to b
    assert not table.extend(b, g.index["r0c3"]) or table.owner[g.index["r0c3"]] == "b"
    assert not table.extend(a, g.index["r0c3"])  # b has it now
    # on the lane into r0c1: it keeps r0c0 (it may still be on it) and r0c1
    assert table.advance(a, None, g.index["r0c1"]) == []
    # at r0c2: r0c0 and r0c1 are free again
    assert table.advance(a, g.index["r0c2"], None) == [g.index["r0c0"], g.index["r0c1"]]
    assert a.held == [g.index["r0c2"]]
    table.check()


def test_a_robot_reported_where_another_holds_is_contested_not_granted() -> None:
    g = SiteGraph(grid_map(1, 4))
    table = GrantTable(g)
    _mover(table, "a", "r0c1", "r0c2")
    b = _mover(table, "b", "r0c3")
    table.advance(b, g.index["r0c2"], None)  # b says it is at r0c2, which a holds
    assert table.owner[g.index["r0c2"]] == "a" and table.contested[g.index["r0c2"]] == ["b"]
    assert not table.free(g.index["r0c2"]) and table.free(g.index["r0c3"])
    table.check()
    # a drives on past r0c2 and gives it up: it is b's, nobody else's
    a = table.movers["a"]
    table.advance(a, g.index["r0c1"], None)
    freed = table.remove("a")
    assert g.index["r0c2"] not in freed and table.owner[g.index["r0c2"]] == "b"
    table.check()


def test_robots_in_a_corridor_follow_each_other_without_meeting() -> None:
    w = World(grid_map(1, 8))
    w.add("a", "r0c0", ["r0c7"])
    w.add("b", "r0c1", ["r0c6"])  # in front of a, going the same way, stopping short
    w.run(20)
    assert w.collisions == []
    assert w.bots["b"].arrived == ["r0c6"]
    # b reached its goal first; a, behind it in a dead end, came as close to its own as b's place allows
    assert {w.bots["a"].node, w.bots["b"].node} == {"r0c6", "r0c7"}


def test_a_robot_leaving_a_dead_end_and_one_coming_in_pass_each_other() -> None:
    # A dock (spur) off a corridor: d1 works in it and wants out, d2 waits at its mouth to get in.
    w = World(grid_map(1, 5, spurs=[("DOCK", (0, 2))]))
    w.add("d1", "DOCK", ["r0c0"])
    w.add("d2", "r0c2", ["DOCK"])
    w.run(25)
    assert w.collisions == []
    assert w.bots["d1"].arrived == ["r0c0"] and w.bots["d2"].arrived == ["DOCK"]


def test_a_head_on_in_a_one_lane_corridor_is_solved_through_a_siding() -> None:
    # r0: a corridor; r1c2 a siding below its middle. a goes east, b west.
    w = World(grid_map(2, 5, missing=[(1, 0), (1, 1), (1, 3), (1, 4)]))
    w.add("a", "r0c0", ["r0c4"])
    w.add("b", "r0c4", ["r0c0"])
    w.run(30)
    assert w.collisions == []
    assert w.bots["a"].arrived == ["r0c4"] and w.bots["b"].arrived == ["r0c0"]


def test_an_idle_robot_in_the_way_is_moved_aside() -> None:
    w = World(grid_map(2, 4))
    w.add("idle", "r0c2")
    w.add("a", "r0c0", ["r0c3"])
    w.run(12)
    assert w.collisions == [] and w.bots["a"].arrived == ["r0c3"]


def test_an_offline_robot_keeps_what_it_holds_and_the_others_go_round() -> None:
    w = World(grid_map(3, 5))
    w.add("x", "r1c2")
    off = w.bots["x"]
    w.run(1)
    off.offline = True
    w.feed(STATUS, w.status(off))
    w.add("a", "r1c0", ["r1c4"])
    w.run(15)
    coordinator = w.site.coordinator
    assert coordinator is not None
    assert coordinator.table.owner[w.graph.index["r1c2"]] == "x"
    assert w.collisions == [] and w.bots["a"].arrived == ["r1c4"]


def test_many_robots_on_a_small_grid_all_reach_their_goals() -> None:
    w = World(grid_map(5, 6, spurs=[("P1", (0, 1)), ("P2", (0, 4))]))
    starts = ["r0c0", "r0c5", "r4c0", "r4c5", "r2c2", "r2c3", "P1", "P2"]
    goals = ["r4c5", "r4c0", "r0c5", "r0c0", "P2", "P1", "r2c3", "r2c2"]
    for k, (s, g) in enumerate(zip(starts, goals, strict=True)):
        w.add(f"m{k}", s, [g])
    w.run(80)
    assert w.collisions == []
    assert {rid: b.arrived for rid, b in w.bots.items()} == {f"m{k}": [g] for k, g in enumerate(goals)}


def test_a_robot_beside_a_dead_end_station_is_granted_into_it_first() -> None:
    """Its route goes into the spur and back out past where it stands: the spur is its goal, not the end."""
    w = World(grid_map(1, 4, spurs=[("P", (0, 1))]))
    w.add("a", "r0c1", ["P", "r0c3"])
    w.run(8)
    first = next(g for g in w.grants if g["robot_id"] == "a")
    assert [n["node_id"] for n in first["route"][: first["granted"]]] == ["r0c1", "P"]
    w.run(10)
    assert w.collisions == [] and w.bots["a"].arrived == ["P", "r0c3"]


def _merge_into_a_stream(stall_weight: float) -> tuple[int, int]:
    """A robot that has just finished work in a pocket off a one-way aisle, and a stream of 12 older robots
    passing it: (the tick it leaves the pocket, how many of the stream went by before it)."""
    cols = 40
    site_map = grid_map(
        1, cols, spurs=[("p", (0, 12))], one_way=[((0, c), (0, c + 1)) for c in range(cols - 1)]
    )
    config = TrafficConfig(
        speed_mps=1.5,
        round_ms=1_000,
        lookahead_ms=2_000,
        stall_weight=stall_weight,
        max_lane_density=1.0,
        turn_after_ms=0,  # the stall weight alone
    )
    w = World(site_map, config)
    for i in range(12):
        w.add(f"s{i:02d}", f"r0c{i}", [f"r0c{cols - 12 + i}"])
    x = w.add("x", "p", ["r0c30"])
    x.status = "WORKING"  # its age starts when it is done
    for tick in range(60):
        if tick == 6:
            x.status = "IDLE"
        w.tick()
        if x.node != "p":
            assert w.collisions == []
            return tick, sum(
                1 for b in w.bots.values() if b.robot_id != "x" and int(b.node.split("c")[1]) > 12
            )
    raise AssertionError("the robot never left its pocket")


def test_a_robot_merging_into_a_stream_gets_its_turn_within_a_bounded_wait() -> None:
    """By age alone the younger robot waits for the whole stream; counting its wait as age lets it in."""
    alone_tick, alone_passed = _merge_into_a_stream(0.0)
    tick, passed = _merge_into_a_stream(1.0)
    assert alone_passed == 12  # the whole stream went first
    assert passed < 6 and tick < alone_tick - 10


def _bound_for_one_goal(turn_after_ms: int) -> dict[str, list[str]]:
    """Two robots bound for the dead end W: x has waited 30 s for its next node at the far end of the
    aisle, y has just arrived beside W. One planning round: the nodes each is granted."""
    g = SiteGraph(grid_map(1, 10, spurs=[("W", (0, 5))]))
    coordinator = Coordinator(g, TrafficConfig(speed_mps=1.5, turn_after_ms=turn_after_ms))
    now = T0 + 60_000
    coordinator.next_round = now
    x = _mover(coordinator.table, "x", "r0c0")
    x.goal, x.since, x.granted_at = g.index["W"], now - 40_000, now - 30_000
    y = _mover(coordinator.table, "y", "r0c5")
    y.goal, y.since, y.granted_at = g.index["W"], now - 5_000, now - 1_000
    grants = coordinator.plan(now)
    return {
        d.value["robot_id"]: [w["node_id"] for w in d.value["route"][: d.value["granted"]]] for d in grants
    }


def test_a_goal_is_kept_for_the_robot_that_has_waited_longest_for_it() -> None:
    """Robots arriving nearer a busy workstation would otherwise take it, one after another, ahead of a
    robot waiting farther off."""
    granted = _bound_for_one_goal(20_000)
    assert "y" not in granted  # beside W, but not its turn
    assert granted["x"][:2] == ["r0c0", "r0c1"]
    assert _bound_for_one_goal(0)["y"] == ["r0c5", "W"]  # off: the nearer robot takes it


def test_robots_standing_idle_on_the_lanes_do_not_keep_a_parked_robot_back() -> None:
    """Flow control counts the robots on their way: once the others stand idle, the parked one sets off."""
    w = World(grid_map(1, 12, spurs=[("p", (0, 2))]))
    for i in range(4):
        w.add(f"s{i}", f"r0c{i + 4}", [f"r0c{i + 8}"])  # 4 robots on 12 lane nodes: over 20%
    x = w.add("x", "p", ["r0c0"])
    w.run(30)
    assert w.collisions == []
    assert x.arrived == ["r0c0"] and all(b.arrived for b in w.bots.values())


def test_a_new_map_version_keeps_what_robots_hold() -> None:
    w = World(grid_map(1, 6))
    w.add("a", "r0c0", ["r0c5"])
    w.run(2)
    coordinator = w.site.coordinator
    assert coordinator is not None
    held = [coordinator.graph.ids[n] for n in coordinator.table.movers["a"].held]
    w.feed(MAP, {**grid_map(1, 6, version=2), "event_id": "map-2"})
    after = w.site.coordinator
    assert after is not None and after is not coordinator
    assert [after.graph.ids[n] for n in after.table.movers["a"].held] == held
    w.graph = after.graph
    w.run(10)
    assert w.collisions == [] and w.bots["a"].arrived == ["r0c5"]


# -- property: whatever the inputs, no node is granted to two robots -----------------------------------

_MAP = grid_map(3, 4, spurs=[("P", (0, 1))], one_way=[((2, 0), (2, 1))])
_NODES = sorted(n["id"] for n in _MAP["nodes"])
_ROBOTS = ["r1", "r2", "r3", "r4"]

_input = st.one_of(
    st.tuples(
        st.just("status"),
        st.sampled_from(_ROBOTS),
        st.one_of(st.none(), st.sampled_from(_NODES)),  # where it says it is (None: on a lane)
        st.lists(st.sampled_from(_NODES), max_size=5),  # the route it reports
        st.sampled_from(["MOVING", "IDLE", "WORKING", "OFFLINE", "ERROR"]),
    ),
    st.tuples(st.just("obey"), st.sampled_from(_ROBOTS)),  # it drives one node of its grant and reports
    st.tuples(st.just("map"), st.sampled_from([1, 2, 3])),
    st.tuples(st.just("wait"), st.integers(min_value=0, max_value=3_000)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_input, min_size=1, max_size=60))
def test_no_input_sequence_grants_a_node_to_two_robots(inputs: list[tuple[Any, ...]]) -> None:
    config = TrafficConfig(speed_mps=1.5, round_ms=200, lookahead_ms=3_000)
    site = TrafficSite.new(config, "s", "t")
    now, seqs = T0, dict.fromkeys(_ROBOTS, 0)
    granted: dict[str, list[str]] = {}  # robot -> the base of its latest GRANT
    where: dict[str, str] = {}
    maps = {1: _MAP, 2: {**grid_map(3, 4, missing=[(1, 1)], spurs=[("P", (0, 1))]), "version": 2},
            3: {**grid_map(3, 4, spurs=[("P", (0, 1))]), "version": 3}}  # fmt: skip

    def feed(kind: str, record: dict[str, Any] | None) -> None:
        for out in step(site, kind, record, now):
            value = out.value
            if value.get("kind") == "GRANT":
                base = [w["node_id"] for w in value["route"][: value["granted"]]]
                granted[value["robot_id"]] = base
        coordinator = site.coordinator
        if coordinator is None:
            return
        coordinator.table.check()
        # Every base granted to a robot lies in what the table says it holds, so bases never overlap.
        ids = coordinator.graph.ids
        held = {rid: {ids[n] for n in m.held} for rid, m in coordinator.table.movers.items()}
        owners: dict[str, str] = {}
        for rid, nodes in held.items():
            for node in nodes:
                assert (
                    owners.setdefault(node, rid) == rid
                    or rid in coordinator.table.contested.get(coordinator.graph.index[node], ())
                    or owners[node] in coordinator.table.contested.get(coordinator.graph.index[node], ())
                )

    def status(rid: str, node: str | None, route: list[str], state: str) -> dict[str, Any]:
        seqs[rid] += 1
        return {
            "event_id": f"{rid}{seqs[rid]}", "tenant_id": "t", "site_id": "s", "occurred_at": now,
            "robot_id": rid, "fleet_id": "f", "status": state, "reason": "CHANGE", "battery": 0.9,
            "pose": {"x": 1.0, "y": 1.0, "yaw": 0.0, "node_id": node}, "speed": 1.0,
            "task_id": None, "route": [{"node_id": n, "eta": now} for n in route], "seq": seqs[rid],
            "last_seen_at": now,
        }  # fmt: skip

    feed(MAP, _MAP)
    version = 1
    for item in inputs:
        now += 100
        if item[0] == "status":
            _, rid, node, route, state = item
            feed(STATUS, status(rid, node, route, state))
            if node is not None:
                where[rid] = node
        elif item[0] == "obey" and item[1] in where and item[1] in granted:
            rid = item[1]
            base = granted[rid]
            if where[rid] in base and base.index(where[rid]) + 1 < len(base):
                where[rid] = base[base.index(where[rid]) + 1]
                feed(
                    STATUS,
                    status(rid, where[rid], base[base.index(where[rid]) + 1 :] or [where[rid]], "MOVING"),
                )
        elif item[0] == "map" and item[1] > version:
            version = item[1]
            feed(MAP, {**maps[version], "event_id": f"m{version}"})
        elif item[0] == "wait":
            now += item[1]
            feed("tick", None)
