"""Property tests of the traffic topology on random fleets on a grid (Hypothesis)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.sitegraph import SiteGraph
from tests.unit.topologies.test_traffic_support import (
    T0,
    Record,
    S,
    active_clashes,
    alerts,
    conflicts,
    decisions,
    feed,
    fresh,
    grid_map,
    status,
    task,
)
from topologies.traffic import STATUS, SiteState, SiteView, full_plan, remove_robot

WIDTH, HEIGHT = 5, 4
GRID = grid_map(WIDTH, HEIGHT)
MODEL = SiteView(SiteGraph(GRID))
NODES = sorted(MODEL.graph.ids)


@st.composite
def fleets(draw: st.DrawFn) -> list[Record]:
    """Statuses of 2..7 robots on distinct start nodes, each on a shortest route to a random goal."""
    count = draw(st.integers(2, 7))
    starts = draw(st.lists(st.sampled_from(NODES), min_size=count, max_size=count, unique=True))
    events: list[Record] = []
    for i, start in enumerate(starts):
        goal = draw(st.sampled_from([n for n in NODES if n != start]))
        found = MODEL.shortest_path(start, goal)
        assert found is not None
        path, _ = found
        delay = draw(st.integers(0, 6)) * 500
        route = [(node, (delay + 2000 * (k + 1)) / S) for k, node in enumerate(path[1:])]
        priority = draw(st.integers(0, 3))
        events.append(task(f"t{i}", priority))
        events.append(status(f"r{i}", start, route, task_id=f"t{i}"))
    return events


def _describe(events: list[Record]) -> str:
    lines = []
    for e in events:
        if e.kind == STATUS:
            route = " ".join(f"{w['node_id']}@{(w['eta'] - T0) / S:g}" for w in e["route"])
            lines.append(f"{e['robot_id']} {e['task_id']} at {e['pose']['node_id']}: {route}")
        else:
            lines.append(f"task {e['task_id']} priority {e['spec']['priority']}")
    return "\n".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_after_resolution_no_two_active_reservations_conflict(events: list[Record]) -> None:
    state = fresh(GRID)
    out = feed(state, *events)
    unresolved = {a["subject_id"] for a in alerts(out)}
    left = [c for c in active_clashes(state) if not unresolved & set(c[1:3])]
    assert left == [], _describe(events)
    if not unresolved:  # everything was resolved: held robots' reservations do not conflict either
        assert active_clashes(state, include_held=True) == [], _describe(events)


def _leave_when_done(state: SiteState, now: int) -> None:
    """Robots that reached the end of their route a while ago drive off the grid (as a robot that stands
    at its goal does once it is given its next task): a robot standing at its goal is a reservation
    without an end, and whoever must pass it waits for it to leave."""
    for rid, entry in sorted(state.robots.items()):
        plan, _current = full_plan(entry)
        if not entry.get("hold") and (not plan or plan[-1][1] <= now - 5 * S):
            remove_robot(state, rid)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_every_held_robot_is_eventually_resumed_or_rerouted(events: list[Record]) -> None:
    state = fresh(GRID)
    out = feed(state, *events)
    held_once = {d["robot_id"] for d in decisions(out, "HOLD")}
    for k in range(1, 61):
        _leave_when_done(state, T0 + k * 5 * S)
        out.extend(feed(state, None, at=T0 + k * 5 * S))
    unresolved = {a["subject_id"] for a in alerts(out)}
    unresolved |= {r for c in conflicts(out) if c["resolution"] == "NONE" for r in c["robot_ids"]}
    stuck = set(unresolved)  # and whoever waits, directly or not, on a robot in an unresolved conflict
    while True:
        more = {r for r in state.held - stuck if any(w[0] in stuck for w in state.robots[r]["hold"]["waits"])}
        if not more:
            break
        stuck |= more
    assert state.held <= stuck, f"still held, nothing unresolved: {state.held - stuck}\n" + _describe(events)
    released = {d["robot_id"] for d in decisions(out) if d["kind"] in {"RESUME", "REROUTE"}}
    assert held_once - stuck <= released
    # no flapping: every HOLD of a robot is followed by its release before the next HOLD
    for robot in held_once:
        kinds = [d["kind"] for d in decisions(out) if d["robot_id"] == robot]
        holding = False
        for kind in kinds:
            if kind == "HOLD":
                holding = True
            elif kind in {"RESUME", "REROUTE"}:
                holding = False
        assert not holding or robot in stuck


def test_identical_inputs_give_identical_outputs() -> None:
    events = [
        status("a", "n0_0", [("n1_0", 2), ("n2_0", 4), ("n3_0", 6)], task_id="x"),
        status("b", "n3_0", [("n2_0", 2), ("n1_0", 4), ("n0_0", 6)], task_id="y"),
    ]
    runs = []
    for _ in range(2):
        state = fresh(GRID)
        out = feed(state, *events) + feed(state, None, at=T0 + 20 * S)
        runs.append([(o.topic, o.key, o.value) for o in out])
    assert runs[0] == runs[1]
    assert runs[0]
