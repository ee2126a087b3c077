"""Orders as the spec builds them: sequenceIds, base/horizon, and stitching of order updates."""

from __future__ import annotations

import pytest

from schemas import vda
from schemas.errors import RejectedRecord
from topologies.vda5050 import orders as ords

from .support import MODEL


def _order(route: list[str], release_all: bool, stops: list | None = None, kind: str = "task") -> ords.Order:
    return ords.new_order(order_id="o1", kind=kind, route=route, stops=stops or [(route[-1], [])],
                          release_all=release_all, model=MODEL)  # fmt: skip


def _issue(order: ords.Order, major: str = "2", **kw: object) -> dict:
    return ords.issue(order, model=MODEL, map_id="s1", major=major, **kw)  # type: ignore[arg-type]


def _valid(body: dict, version: str = "2.1.0") -> None:
    message = {"headerId": 0, "timestamp": "2026-01-01T00:00:00.000Z", "version": version,
               "manufacturer": "m", "serialNumber": "s", **body}  # fmt: skip
    assert vda.problems("order", message, version) == []


def test_a_new_order_numbers_nodes_even_and_edges_odd_and_releases_everything() -> None:
    body = _issue(_order(["a0", "a1", "a2", "b2"], release_all=True))
    _valid(body)
    assert [(n["nodeId"], n["sequenceId"], n["released"]) for n in body["nodes"]] == [
        ("a0", 0, True), ("a1", 2, True), ("a2", 4, True), ("b2", 6, True)]  # fmt: skip
    assert [(e["edgeId"], e["sequenceId"], e["startNodeId"], e["endNodeId"]) for e in body["edges"]] == [
        ("a0-a1", 1, "a0", "a1"), ("a1-a2", 3, "a1", "a2"), ("a2-b2", 5, "a2", "b2")]  # fmt: skip
    assert body["orderUpdateId"] == 0 and body["nodes"][1]["nodePosition"] == {
        "x": 3.0,
        "y": 0.0,
        "mapId": "s1",
    }


def test_a_lane_driven_twice_gets_a_unique_edge_id() -> None:
    body = _issue(_order(["a0", "a1", "b1", "a1", "a2"], release_all=True))
    assert [e["edgeId"] for e in body["edges"]] == ["a0-a1", "a1-b1", "a1-b1@5", "a1-a2"]


def test_version_3_edges_have_no_start_and_end_node() -> None:
    body = _issue(_order(["a0", "a1"], release_all=True), major="3")
    _valid(body, "3.0.0")
    assert "startNodeId" not in body["edges"][0] and "endNodeId" not in body["edges"][0]


def test_route_gaps_are_filled_and_off_map_nodes_rejected() -> None:
    assert _order(["a0", "a3"], True)["nodes"] == ["a0", "a1", "a2", "a3"]
    with pytest.raises(RejectedRecord, match="not on the map"):
        _order(["a0", "zz"], True)


def test_stops_carry_their_actions_on_the_right_visit() -> None:
    pick = ords.action("o1", 0, "pick")
    drop = ords.action("o1", 1, "drop")
    order = _order(["a0", "a1", "b1", "a1", "a2"], True, stops=[("b1", [pick]), ("a1", [drop])])
    body = _issue(order)
    actions = [[a["actionType"] for a in n["actions"]] for n in body["nodes"]]
    # the drop is on the second visit of a1 (after the pick), not the first
    assert actions == [[], [], ["pick"], ["drop"], []]
    assert order["nodes"] == ["a0", "a1", "b1", "a1", "a2"]


def test_a_stop_off_the_route_gets_a_leg() -> None:
    order = _order(["a0", "a1"], True, stops=[("b2", [ords.action("o1", 0, "drop")])])
    assert order["nodes"] == ["a0", "a1", "a2", "b2"] or order["nodes"] == ["a0", "a1", "b1", "b2"]
    assert order["stops"][0]["index"] == 3


def test_grants_extend_the_base_with_stitched_updates() -> None:
    order = _order(["a0", "a1", "a2", "a3", "a4"], release_all=False)
    first = _issue(order)
    assert [(n["nodeId"], n["released"]) for n in first["nodes"]] == [
        ("a0", True), ("a1", False), ("a2", False), ("a3", False), ("a4", False)]  # fmt: skip
    assert [e["released"] for e in first["edges"]] == [False] * 4
    ords.apply_grant(order, ["a0", "a1", "a2", "a3", "a4"], 3, 0, MODEL)
    second = _issue(order)
    _valid(second)
    # the decision point (a0) comes first, exactly as it was sent, then a1, a2 released, then the horizon
    assert second["nodes"][0] == first["nodes"][0]
    assert [(n["nodeId"], n["sequenceId"], n["released"]) for n in second["nodes"]] == [
        ("a0", 0, True), ("a1", 2, True), ("a2", 4, True), ("a3", 6, False), ("a4", 8, False)]  # fmt: skip
    assert [(e["sequenceId"], e["released"]) for e in second["edges"]] == [
        (1, True),
        (3, True),
        (5, False),
        (7, False),
    ]
    # the vehicle has passed a1: traffic's next grant starts there
    ords.apply_grant(order, ["a1", "a2", "a3", "a4"], 4, 1, MODEL)
    third = _issue(order)
    assert third["orderUpdateId"] == 2
    assert third["nodes"][0] == second["nodes"][2]  # stitched on a2, unchanged
    assert [(n["nodeId"], n["sequenceId"], n["released"]) for n in third["nodes"]] == [
        ("a2", 4, True), ("a3", 6, True), ("a4", 8, True)]  # fmt: skip


def test_a_grant_may_change_the_horizon_but_not_the_base() -> None:
    order = _order(["a0", "a1", "a2", "a3"], release_all=False, kind="move")
    _issue(order)
    ords.apply_grant(order, ["a0", "a1", "a2", "a3"], 2, 0, MODEL)
    _issue(order)
    ords.apply_grant(order, ["a1", "b1", "b2", "b3"], 2, 1, MODEL)  # a new way on from a1
    body = _issue(order)
    assert [(n["nodeId"], n["released"]) for n in body["nodes"]] == [("a1", True), ("b1", True), ("b2", False),
                                                                     ("b3", False)]  # fmt: skip
    with pytest.raises(RejectedRecord, match="does not continue the released base"):
        ords.apply_grant(order, ["a0", "a1", "a2"], 3, 0, MODEL)


def test_a_task_keeps_its_destination_beyond_the_plan_of_a_grant() -> None:
    drop = ords.action("o1", 0, "drop")
    order = _order(["a0", "a1", "a2", "a3"], release_all=False, stops=[("a3", [drop])])
    _issue(order)
    ords.apply_grant(order, ["a0", "a1", "b1"], 2, 0, MODEL)  # a plan to b1 first
    body = _issue(order)
    assert [n["nodeId"] for n in body["nodes"]][:3] == ["a0", "a1", "b1"]
    assert body["nodes"][-1]["nodeId"] == "a3" and body["nodes"][-1]["actions"] == [drop]


def test_a_smaller_grant_releases_nothing_more() -> None:
    order = _order(["a0", "a1", "a2", "a3"], release_all=False)
    _issue(order)
    ords.apply_grant(order, ["a0", "a1", "a2", "a3"], 3, 0, MODEL)
    _issue(order)
    ords.apply_grant(order, ["a0", "a1", "a2", "a3"], 2, 0, MODEL)
    assert not ords.needs_update(order)


def test_the_body_of_the_latest_update_is_rebuilt_identically() -> None:
    order = _order(["a0", "a1", "a2", "a3"], release_all=False)
    _issue(order)
    ords.apply_grant(order, ["a0", "a1", "a2", "a3"], 2, 0, MODEL)
    sent = _issue(order)
    again = ords.body(order, order["update_id"], model=MODEL, map_id="s1", major="2")
    assert again == sent


def test_a_catch_up_update_stitches_on_the_last_update_the_vehicle_has() -> None:
    order = _order(["a0", "a1", "a2", "a3", "a4", "a5"], release_all=False)
    _issue(order)  # 0: a0
    ords.apply_grant(order, ["a0", "a1", "a2", "a3", "a4", "a5"], 2, 0, MODEL)
    _issue(order)  # 1: up to a1
    ords.apply_grant(order, ["a0", "a1", "a2", "a3", "a4", "a5"], 4, 0, MODEL)
    _issue(order)  # 2: up to a3 (lost)
    ords.apply_grant(order, ["a0", "a1", "a2", "a3", "a4", "a5"], 5, 0, MODEL)
    _issue(order)  # 3: up to a4 (lost)
    catch_up = _issue(order, from_update=1)
    assert catch_up["orderUpdateId"] == 4
    assert [(n["nodeId"], n["sequenceId"], n["released"]) for n in catch_up["nodes"]] == [
        ("a1", 2, True), ("a2", 4, True), ("a3", 6, True), ("a4", 8, True), ("a5", 10, False)]  # fmt: skip


def test_max_nodes_truncates_the_horizon_then_holds_releases_back() -> None:
    order = _order(["a0", "a1", "a2", "a3", "a4", "a5"], release_all=True)
    first = _issue(order, max_nodes=3)
    assert [n["nodeId"] for n in first["nodes"]] == ["a0", "a1", "a2"] and len(first["edges"]) == 2
    assert ords.needs_update(order)
    second = _issue(order, max_nodes=3)
    assert [n["nodeId"] for n in second["nodes"]] == ["a2", "a3", "a4"]


def test_a_hold_caps_the_release() -> None:
    order = _order(["a0", "a1", "a2", "a3"], release_all=True)
    order["hold"] = 1
    body = _issue(order)
    assert [(n["nodeId"], n["released"]) for n in body["nodes"]] == [("a0", True), ("a1", True), ("a2", False),
                                                                     ("a3", False)]  # fmt: skip
    order["hold"] = None
    assert ords.needs_update(order)
