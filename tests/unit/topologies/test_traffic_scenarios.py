"""Scenario tests of the traffic topology on small crafted maps: the conflicts found and how they resolve."""

from __future__ import annotations

import pytest

from tests.unit.topologies.test_traffic_support import (
    T0,
    S,
    active_clashes,
    alerts,
    conflicts,
    decisions,
    feed,
    fresh,
    site_map,
    status,
    task,
)
from topologies.traffic import TrafficConfig, conflict_id

# A corridor W0..W3 between a west hub (spurs WS, WA) and an east hub (spurs ES, EA). Lanes are 2 m.
CORRIDOR = site_map(
    {
        "WS": (-2, 2),
        "WA": (-2, -2),
        "WH": (-2, 0),
        "W0": (0, 0),
        "W1": (2, 0),
        "W2": (4, 0),
        "W3": (6, 0),
        "EH": (8, 0),
        "ES": (8, 2),
        "EA": (8, -2),
    },
    [
        ("WS", "WH"),
        ("WA", "WH"),
        ("WH", "W0"),
        ("W0", "W1"),
        ("W1", "W2"),
        ("W2", "W3"),
        ("W3", "EH"),
        ("EH", "ES"),
        ("EH", "EA"),
    ],
)
EAST = [("WH", 2), ("W0", 4), ("W1", 6), ("W2", 8), ("W3", 10), ("EH", 12), ("EA", 14)]
WEST = [("EH", 2), ("W3", 4), ("W2", 6), ("W1", 8), ("W0", 10), ("WH", 12), ("WA", 14)]


class TestCorridorHeadOn:
    def setup_method(self) -> None:
        self.state = fresh(CORRIDOR)
        feed(self.state, task("t-hi", 8), task("t-lo", 3))
        feed(self.state, status("r1", "WS", EAST, task_id="t-hi"))
        self.out = feed(self.state, status("r2", "ES", WEST, task_id="t-lo"))

    def test_one_edge_conflict_resolved_by_holding_the_lower_priority_robot(self) -> None:
        [c] = conflicts(self.out)
        assert c["kind"] == "EDGE"
        assert c["lane_id"] == "W1-W2"
        assert c["robot_ids"] == ["r1", "r2"]
        assert (c["window_start"], c["window_end"]) == (T0 + 6 * S, T0 + 8 * S)
        assert c["resolution"] == "HOLD"
        assert c["resolved_robot_id"] == "r2"
        assert c["conflict_id"] == conflict_id("EDGE", ["r1", "r2"], "lane:W1-W2", T0 + 6 * S, 10_000)

    def test_the_hold_is_at_the_last_uncontested_node_before_the_corridor(self) -> None:
        # W2, W3 and EH all lie on r1's way after r2 would pass them: r2 waits on its spur ES.
        [hold] = decisions(self.out, "HOLD")
        assert hold["robot_id"] == "r2"
        assert hold["route"] == []  # stay at the node it is at
        assert "r2" in self.state.held
        assert self.state.robots["r2"]["hold"]["node"] == "ES"
        assert not decisions(self.out, "REROUTE")
        assert active_clashes(self.state, include_held=True) == []

    def test_resumed_only_once_the_winner_cleared_the_way(self) -> None:
        # At +9.5 s r1 has left the lane, but would still meet r2 at EH: no flapping RESUME.
        assert decisions(feed(self.state, None, at=T0 + 9_500)) == []
        out = feed(self.state, None, at=T0 + 15 * S)
        [resume] = decisions(out, "RESUME")
        assert resume["robot_id"] == "r2"
        assert [w["node_id"] for w in resume["route"]] == [n for n, _ in WEST]
        assert resume["route"][0]["eta"] >= T0 + 15 * S
        assert "r2" not in self.state.held
        assert active_clashes(self.state, include_held=True) == []

    def test_the_same_conflict_is_emitted_once(self) -> None:
        again = feed(self.state, status("r1", "WS", EAST, seq=2, task_id="t-hi"))
        assert conflicts(again) == []
        assert decisions(again) == []


def test_corridor_with_a_bypass_reroutes_when_the_wait_is_long() -> None:
    # Same corridor plus a bypass B1-B2 from WH to EH; r1 crawls (long occupancy) so waiting costs more.
    site = site_map(
        {**{n["id"]: (n["x"], n["y"]) for n in CORRIDOR["nodes"]}, "B1": (0, -4), "B2": (6, -4)},
        [(lane["from_node"], lane["to_node"]) for lane in CORRIDOR["lanes"]]
        + [("WH", "B1"), ("B1", "B2"), ("B2", "EH")],
    )
    state = fresh(site)
    feed(state, task("t-hi", 8), task("t-lo", 3))
    slow_east = [("WH", 2), ("W0", 4), ("W1", 6), ("W2", 30), ("W3", 32), ("EH", 34), ("EA", 36)]
    feed(state, status("r1", "WS", slow_east, task_id="t-hi"))
    out = feed(state, status("r2", "ES", WEST, task_id="t-lo"))
    [c] = conflicts(out)
    assert c["resolution"] == "REROUTE" and c["resolved_robot_id"] == "r2"
    [reroute] = decisions(out, "REROUTE")
    assert [w["node_id"] for w in reroute["route"]] == ["EH", "B2", "B1", "WH", "WA"]
    assert reroute["conflict_id"] == c["conflict_id"]
    assert active_clashes(state, include_held=True) == []


# A four-way intersection C with arms of two nodes each.
CROSS = site_map(
    {
        "C": (0, 0),
        "N1": (0, 2),
        "N2": (0, 4),
        "S1": (0, -2),
        "S2": (0, -4),
        "E1": (2, 0),
        "E2": (4, 0),
        "W1": (-2, 0),
        "W2": (-4, 0),
    },
    [
        ("C", "N1"),
        ("N1", "N2"),
        ("C", "S1"),
        ("S1", "S2"),
        ("C", "E1"),
        ("E1", "E2"),
        ("C", "W1"),
        ("W1", "W2"),
    ],
)


class TestIntersection:
    def test_vertex_conflict_at_the_center_ties_broken_by_robot_id(self) -> None:
        state = fresh(CROSS)
        feed(state, status("r1", "W2", [("W1", 2), ("C", 4), ("E1", 6), ("E2", 8)], task_id="a"))
        out = feed(state, status("r2", "S2", [("S1", 2), ("C", 4), ("N1", 6), ("N2", 8)], task_id="b"))
        [c] = conflicts(out)
        assert (c["kind"], c["node_id"], c["resolved_robot_id"]) == ("VERTEX", "C", "r2")
        [hold] = decisions(out, "HOLD")
        assert hold["robot_id"] == "r2"
        assert [w["node_id"] for w in hold["route"]] == ["S1"]  # drive up to the junction, stop before it
        # r1's window at C ends at +5.5 s; with 1 s of hysteresis r2 goes at +6.5 s, not before.
        assert decisions(feed(state, None, at=T0 + 6 * S)) == []
        [resume] = decisions(feed(state, None, at=T0 + 7 * S), "RESUME")
        assert [w["node_id"] for w in resume["route"]] == ["C", "N1", "N2"]
        assert active_clashes(state, include_held=True) == []

    def test_higher_task_priority_wins_over_robot_id(self) -> None:
        state = fresh(CROSS)
        feed(state, task("urgent", 9), task("routine", 2))
        feed(state, status("r1", "W2", [("W1", 2), ("C", 4), ("E1", 6)], task_id="routine"))
        out = feed(state, status("r2", "S2", [("S1", 2), ("C", 4), ("N1", 6)], task_id="urgent"))
        [hold] = decisions(out, "HOLD")
        assert hold["robot_id"] == "r1"
        assert conflicts(out)[0]["resolved_robot_id"] == "r1"

    def test_following_too_close_holds_the_follower_at_the_lane_entry(self) -> None:
        state = fresh(CROSS)
        feed(state, status("lead", "W2", [("W1", 2), ("C", 4), ("E1", 6), ("E2", 8)], task_id="a"))
        # 2.5 s behind: node windows do not overlap, lane entries are closer than the 3 s headway.
        out = feed(state, status("tail", "W2", [("W1", 4.5), ("C", 6.5), ("E1", 8.5)], task_id="z", at=T0))
        kinds = {c["kind"] for c in conflicts(out)}
        assert "FOLLOWING" in kinds
        [hold] = decisions(out, "HOLD")
        assert hold["robot_id"] == "tail"
        assert active_clashes(state) == []

    def test_swapping_ends_of_one_lane_on_a_ring_holds_one_and_sends_the_other_round(self) -> None:
        ring = site_map(
            {"p": (0, 0), "q": (2, 0), "r": (2, 2), "s": (0, 2)},
            [("p", "q"), ("q", "r"), ("r", "s"), ("s", "p")],
        )
        state = fresh(ring)
        feed(state, status("r1", "p", [("q", 2), ("r", 4)], task_id="a"))
        out = feed(state, status("r2", "q", [("p", 2), ("s", 4)], task_id="b"))
        first = conflicts(out)[0]
        assert (first["kind"], first["lane_id"], first["resolved_robot_id"]) == ("EDGE", "p-q", "r2")
        assert (first["window_start"], first["window_end"]) == (T0, T0 + 2 * S)
        # r2 now stands on q, which r1 cannot pass: r1 yields to the stationary robot and goes round.
        [reroute] = decisions(out, "REROUTE")
        assert reroute["robot_id"] == "r1"
        assert [w["node_id"] for w in reroute["route"]] == ["s", "r"]
        assert active_clashes(state, include_held=True) == []
        [resume] = decisions(feed(state, None, at=T0 + 10 * S), "RESUME")
        assert resume["robot_id"] == "r2"
        assert state.held == set()

    def test_swapping_ends_of_one_lane_without_a_way_round_one_steps_aside(self) -> None:
        state = fresh(CROSS)
        feed(state, status("r1", "W1", [("C", 2), ("N1", 4)], task_id="a"))
        out = feed(state, status("r2", "C", [("W1", 2), ("W2", 4)], task_id="b"))
        assert [c["kind"] for c in conflicts(out)] == ["EDGE", "VERTEX"]  # r2 waits on C, r1 before C
        assert state.held == {"r1", "r2"} and alerts(out) == []
        # Once r1 has left the lane, r2 would go but r1 stands on W1: both wait on each other for good,
        # and there is no way round. r2 (lower rank) makes room: into the free arm E1 and back once r1 passed.
        out = feed(state, None, at=T0 + 5 * S)
        [dead] = conflicts(out)
        assert (dead["kind"], dead["robot_ids"], dead["resolution"]) == ("DEADLOCK", ["r1", "r2"], "REROUTE")
        assert dead["resolved_robot_id"] == "r2" and "steps aside to E1" in dead["detail"]
        [reroute] = decisions(out, "REROUTE")
        assert [w["node_id"] for w in reroute["route"]] == ["E1", "C", "W1", "W2"]
        [hold] = decisions(out, "HOLD")
        assert (hold["robot_id"], [w["node_id"] for w in hold["route"]]) == ("r2", ["E1"])
        assert alerts(out) == []
        [first] = decisions(feed(state, None, at=T0 + 10 * S), "RESUME")
        [second] = decisions(feed(state, None, at=T0 + 15 * S), "RESUME")
        assert (first["robot_id"], second["robot_id"]) == ("r1", "r2")
        assert state.held == set()
        assert active_clashes(state, include_held=True) == []

    def test_head_on_in_a_corridor_without_a_pocket_is_an_unresolved_deadlock(self) -> None:
        # Each waits where it stands for the other; in a corridor there is no room to step aside.
        line = site_map(
            {"a": (0, 0), "b": (2, 0), "c": (4, 0), "d": (6, 0)}, [("a", "b"), ("b", "c"), ("c", "d")]
        )
        state = fresh(line)
        feed(state, status("r1", "a", [("b", 2), ("c", 4), ("d", 6)], task_id="x"))
        out = feed(state, status("r2", "d", [("c", 2), ("b", 4), ("a", 6)], task_id="y"))
        assert {d["robot_id"] for d in decisions(out, "HOLD")} == {"r1", "r2"} and alerts(out) == []
        # no member can break the cycle: it is tried again at every scan, and reported once both robots
        # have been held deadlock_grace_ms
        out = feed(state, None, at=T0 + 5 * S)
        assert conflicts(out) == [] and alerts(out) == []
        out = feed(state, None, at=T0 + 31 * S)
        [dead] = conflicts(out)
        assert (dead["kind"], dead["robot_ids"], dead["resolution"]) == ("DEADLOCK", ["r1", "r2"], "NONE")
        assert [a["kind"] for a in alerts(out)] == ["CONFLICT_UNRESOLVED"]

    def test_swapping_places_through_a_junction_one_backs_into_a_spur(self) -> None:
        # r1 wants E1 where r2 stands, r2 wants W1 where r1 stands: no way round on a tree. Both wait,
        # then r2 (lower rank) backs into the free spur E2 to let r1 through.
        state = fresh(CROSS)
        feed(state, status("r1", "W1", [("C", 2), ("E1", 4)], task_id="a"))
        out = feed(state, status("r2", "E1", [("C", 2), ("W1", 4)], task_id="b"))
        assert [c["kind"] for c in conflicts(out)] == ["VERTEX", "VERTEX"] and state.held == {"r1", "r2"}
        out = feed(state, None, at=T0 + S)
        [dead] = conflicts(out)
        assert (dead["kind"], dead["resolution"], dead["resolved_robot_id"]) == ("DEADLOCK", "REROUTE", "r2")
        [reroute] = decisions(out, "REROUTE")
        assert [w["node_id"] for w in reroute["route"]] == ["E2", "E1", "C", "W1"]
        [hold] = decisions(out, "HOLD")
        assert (hold["robot_id"], [w["node_id"] for w in hold["route"]]) == ("r2", ["E2"])
        assert alerts(out) == []


# Deadlock: A (prio 1) yields to C at N and waits at a0; B must pass a0 so waits at b0; C must pass b0
# so waits at N: A -> C -> B -> A. Only A has a way round (via X).
RING = site_map(
    {
        "a0": (0, 0),
        "N": (2, 0),
        "gA": (4, 0),
        "b0": (0, 2),
        "gB": (-2, 0),
        "c0": (2, -2),
        "gC": (-2, 2),
        "X": (2, 3),
    },
    [
        ("a0", "N"),
        ("N", "gA"),
        ("c0", "N"),
        ("N", "b0"),
        ("b0", "gC"),
        ("b0", "a0"),
        ("a0", "gB"),
        ("a0", "X"),
        ("X", "gA"),
    ],
)


class TestDeadlock:
    def setup_method(self) -> None:
        self.state = fresh(RING)
        feed(self.state, task("ta", 1), task("tb", 5), task("tc", 9))
        self.out = feed(
            self.state,
            status("A", "a0", [("N", 4), ("gA", 6)], task_id="ta"),
            status("C", "c0", [("N", 4), ("b0", 6), ("gC", 8)], task_id="tc"),
            status("B", "b0", [("a0", 2), ("gB", 4)], task_id="tb"),
        )

    def test_cycle_detected_and_broken_by_rerouting_its_lowest_ranked_member(self) -> None:
        holds = {d["robot_id"] for d in decisions(self.out, "HOLD")}
        assert holds == {"A", "B", "C"}
        [dead] = [c for c in conflicts(self.out) if c["kind"] == "DEADLOCK"]
        assert dead["robot_ids"] == ["A", "B", "C"]
        assert (dead["resolution"], dead["resolved_robot_id"]) == ("REROUTE", "A")
        [reroute] = decisions(self.out, "REROUTE")
        assert reroute["robot_id"] == "A"
        assert [w["node_id"] for w in reroute["route"]] == ["X", "gA"]
        assert self.state.held == {"B", "C"}
        assert alerts(self.out) == []

    def test_the_others_resume_in_turn_as_time_advances(self) -> None:
        [resume_b] = decisions(feed(self.state, None, at=T0 + 10 * S), "RESUME")
        assert resume_b["robot_id"] == "B"
        assert "C" in self.state.held  # B still stands on b0 at +10 s
        [resume_c] = decisions(feed(self.state, None, at=T0 + 20 * S), "RESUME")
        assert resume_c["robot_id"] == "C"
        assert self.state.held == set()
        assert active_clashes(self.state, include_held=True) == []

    def test_without_a_way_round_a_member_steps_aside(self) -> None:
        closed = site_map(
            {n["id"]: (n["x"], n["y"]) for n in RING["nodes"]},
            [(lane["from_node"], lane["to_node"]) for lane in RING["lanes"] if "X" not in lane["id"]],
        )
        state = fresh(closed)
        feed(state, task("ta", 1), task("tb", 5), task("tc", 9))
        out = feed(
            state,
            status("A", "a0", [("N", 4), ("gA", 6)], task_id="ta"),
            status("C", "c0", [("N", 4), ("b0", 6), ("gC", 8)], task_id="tc"),
            status("B", "b0", [("a0", 2), ("gB", 4)], task_id="tb"),
        )
        # A, the lowest-ranked, makes room for B: into the free spur c0 and back. (C, on its way out of
        # c0 into N, then blocks A's way back: that second cycle has no member with room to move.)
        [dead] = [c for c in conflicts(out) if c["kind"] == "DEADLOCK"]
        assert (dead["resolution"], dead["resolved_robot_id"]) == ("REROUTE", "A")
        assert "A steps aside to c0" in dead["detail"]
        [reroute] = decisions(out, "REROUTE")
        assert [w["node_id"] for w in reroute["route"]] == ["N", "c0", "N", "gA"]
        assert alerts(out) == []


# A 3 x 3 grid (2 m) with a NO_GO square around the middle node m.
ZONED_NODES = {f"{c}{r}": (2.0 * i, 2.0 * j) for i, c in enumerate("abc") for j, r in enumerate("123")}
ZONED_LANES = [
    ("a1", "b1"),
    ("b1", "c1"),
    ("a2", "b2"),
    ("b2", "c2"),
    ("a3", "b3"),
    ("b3", "c3"),
    ("a1", "a2"),
    ("a2", "a3"),
    ("b1", "b2"),
    ("b2", "b3"),
    ("c1", "c2"),
    ("c2", "c3"),
]
BOX = [(1.5, 1.5), (2.5, 1.5), (2.5, 2.5), (1.5, 2.5)]


class TestNoGoZone:
    def test_route_through_a_no_go_node_is_rerouted_around_it(self) -> None:
        state = fresh(site_map(ZONED_NODES, ZONED_LANES, zones=[("z1", BOX)]))
        out = feed(state, status("r1", "a2", [("b2", 2), ("c2", 4)], task_id="t"))
        [c] = conflicts(out)
        assert (c["kind"], c["zone_id"], c["node_id"], c["robot_ids"]) == ("NO_GO_ZONE", "z1", "b2", ["r1"])
        assert c["resolution"] == "REROUTE"
        [reroute] = decisions(out, "REROUTE")
        nodes = [w["node_id"] for w in reroute["route"]]
        assert "b2" not in nodes and nodes[-1] == "c2" and len(nodes) == 4
        assert alerts(out) == []

    def test_a_lane_crossing_the_zone_counts_even_with_both_ends_outside(self) -> None:
        nodes = {"p": (0.0, 2.0), "q": (4.0, 2.0), "u": (0.0, 5.0), "v": (4.0, 5.0)}
        site = site_map(nodes, [("p", "q"), ("p", "u"), ("u", "v"), ("v", "q")], zones=[("z1", BOX)])
        state = fresh(site)
        out = feed(state, status("r1", "p", [("q", 4)], task_id="t"))
        [c] = conflicts(out)
        assert (c["kind"], c["lane_id"]) == ("NO_GO_ZONE", "p-q")
        [reroute] = decisions(out, "REROUTE")
        assert [w["node_id"] for w in reroute["route"]] == ["u", "v", "q"]

    def test_no_way_round_holds_before_the_zone_and_alerts(self) -> None:
        nodes = {"a": (0.0, 2.0), "b": (1.0, 2.0), "m": (2.0, 2.0), "c": (4.0, 2.0)}
        state = fresh(site_map(nodes, [("a", "b"), ("b", "m"), ("m", "c")], zones=[("z1", BOX)]))
        out = feed(state, status("r1", "a", [("b", 1), ("m", 2), ("c", 4)], task_id="t"))
        [hold] = decisions(out, "HOLD")
        assert [w["node_id"] for w in hold["route"]] == ["b"]
        [c] = conflicts(out)
        assert (c["kind"], c["resolution"]) == ("NO_GO_ZONE", "HOLD")
        [alert] = alerts(out)
        assert alert["kind"] == "CONFLICT_UNRESOLVED" and alert["subject_id"] == "r1"
        # The hold does not flap as time passes: the zone is still there.
        assert decisions(feed(state, None, at=T0 + 60 * S)) == []
        # A new map without the zone releases it.
        unzoned = site_map(nodes, [("a", "b"), ("b", "m"), ("m", "c")], version=2)
        [resume] = decisions(feed(state, unzoned, at=T0 + 61 * S), "RESUME")
        assert resume["robot_id"] == "r1"


def test_config_rejects_negative_margins() -> None:
    with pytest.raises(ValueError):
        TrafficConfig(node_margin_ms=-1)


def test_a_conflict_with_a_robot_standing_until_further_notice_carries_real_times() -> None:
    """Issue 15: a conflict whose window has no end (two robots that stand until further notice, reported at
    one node) was written with ``window_end = 1 << 62``, which wedged the Postgres sink. It now ends at the
    last instant known, is flagged ``open_ended`` and goes through the codec."""
    from io import BytesIO

    from fastavro import parse_schema, schemaless_writer

    from schemas.avsc import load_schema
    from schemas.codec import TimestampGuard

    state = fresh(CORRIDOR)
    feed(state, status("stuck", "W2", [], state="ERROR"))
    out = feed(state, status("r1", "W2", [], at=T0 + S, seq=1, state="OFFLINE"))
    open_ones = [c for c in conflicts(out) if c["open_ended"]]
    assert open_ones, conflicts(out)
    schema = load_schema("Conflict")
    for c in open_ones:
        assert T0 <= c["window_start"] <= c["window_end"] <= T0 + 60 * S
        assert TimestampGuard(schema).violation(c) is None
        schemaless_writer(BytesIO(), parse_schema(schema), c)  # fits the Avro record as it is


def test_an_unresolved_situation_raises_one_alert_and_one_clearing() -> None:
    """Issue 15 item 12: a conflict that stays unresolved raised an alert per conflict id (a new one every
    time bucket): ~920 a minute with 50 robots. Now one alert per robot and situation, cleared when it ends."""
    state = fresh(CORRIDOR)
    raised: list[tuple[int, str, str]] = []
    for k in range(24):  # two minutes of two robots that stand at one node until further notice
        at = T0 + k * 5 * S
        out = feed(
            state,
            status("stuck", "W2", [], at=at, seq=k + 1, state="ERROR"),
            status("r1", "W2", [], at=at, seq=k + 1, state="OFFLINE"),
        )
        raised += [(k, a["kind"], a["subject_id"]) for a in alerts(out)]
    assert raised == [(0, "CONFLICT_UNRESOLVED", "stuck")]
    # r1 is taken away; 30 s later the situation has ended: one CONFLICT_CLEARED
    for k in range(24, 34):
        at = T0 + k * 5 * S
        out = feed(
            state,
            status("stuck", "W2", [], at=at, seq=k + 1, state="ERROR"),
            status("r1", "WA", [], at=at, seq=k + 1, state="OFFLINE"),
        )
        raised += [(k, a["kind"], a["subject_id"]) for a in alerts(out)]
    assert [r[1:] for r in raised] == [("CONFLICT_UNRESOLVED", "stuck"), ("CONFLICT_CLEARED", "stuck")]


def test_a_site_sends_at_most_its_alert_budget_and_counts_the_rest() -> None:
    state = fresh(CORRIDOR, TrafficConfig(alerts_per_minute=3))
    sent = []
    nodes = ["WS", "WA", "WH", "W0", "W1", "W2", "W3", "EH", "ES", "EA"]
    for k, node in enumerate(nodes):  # ten pairs of robots stuck on one node each, all at once
        out = feed(
            state,
            status(f"a{k}", node, [], seq=1, state="ERROR"),
            status(f"b{k}", node, [], seq=1, state="OFFLINE"),
        )
        sent += alerts(out)
    assert len(sent) == 3
    # a minute later the budget is back: the next alert says how many were left out
    out = feed(state, status("late", "W1", [], at=T0 + 60 * S, seq=1, state="ERROR"))
    later = alerts(out)
    assert later and "7 more alert(s) of this site suppressed" in later[0]["message"], later
