"""The per-vehicle step: vehicles in, decisions out, and what the vehicle's states say about the orders."""

from __future__ import annotations

import pytest

from schemas import vda
from schemas.errors import RejectedRecord

from .support import T0, Harness, Vehicle, config, decision, node_states, records, sent

ROBOT = "acme-agv-1"


def _online(h: Harness, v: Vehicle, at: int = T0, node: str = "a0") -> None:
    h.inbound(v.topic("factsheet"), v.factsheet(at), at)
    h.inbound(v.topic("connection"), v.connection("ONLINE", at), at)
    h.inbound(v.topic("state"), v.state(at + 1, node), at + 1)


def _assign(route: list[str], at: int, task: str = "t1", pickup: str | None = None,
            dropoff: str | None = None, decision_id: str | None = None) -> dict:  # fmt: skip
    return decision("ASSIGN", route, at=at, task_id=task, pickup_node=pickup, dropoff_node=dropoff,
                    decision_id=decision_id)  # fmt: skip


@pytest.mark.parametrize("version", ["2.1.0", "2.0.0", "3.0.0"])
def test_assign_becomes_an_order_with_pick_and_drop_that_validates(version: str) -> None:
    h, v = Harness(config()), Vehicle(version=version)
    _online(h, v)
    out = h.decide(_assign(["a0", "a1", "a2", "b2"], T0 + 10, pickup="a1", dropoff="b2"))
    (order,) = sent(out, "order")
    assert order["orderId"] == f"assign-{T0 + 10}" and order["orderUpdateId"] == 0
    assert order["version"] == version and order["serialNumber"] == "agv-1"
    assert vda.problems("order", order, vda.schema_release(version)) == []
    actions = {n["nodeId"]: [a["actionType"] for a in n["actions"]] for n in order["nodes"]}
    assert actions == {"a0": [], "a1": ["pick"], "a2": [], "b2": ["drop"]}
    params = {p["key"]: p["value"] for p in order["nodes"][1]["actions"][0]["actionParameters"]}
    assert params == {"stationType": "floor", "loadType": "EPAL"}
    assert all(n["released"] for n in order["nodes"])
    topic = next(o.value["topic"] for o in out if o.topic == "vda5050.outbound")
    assert topic == v.topic("order")


def test_the_tasks_labels_become_the_pick_and_drop_parameters() -> None:
    h, v = Harness(config()), Vehicle()
    _online(h, v)
    labels = {"loadId": "L-7", "loadType": "KLT", "stationType": "rack", "colour": "red"}
    assign = {**_assign(["a0", "a1", "a2"], T0 + 10, pickup="a1", dropoff="a2"), "labels": labels}
    (order,) = sent(h.decide(assign), "order")
    for node in order["nodes"][1:]:
        params = {p["key"]: p["value"] for p in node["actions"][0]["actionParameters"]}
        assert params == {"loadId": "L-7", "loadType": "KLT", "stationType": "rack"}


def test_a_decision_about_a_robot_that_is_not_a_vda_vehicle_does_nothing() -> None:
    h = Harness(config())
    assert h.decide(_assign(["a0", "a1"], T0)) == [] and h.vehicle is None
    v = Vehicle()
    _online(h, v)
    assert h.decide({**_assign(["a0", "a1"], T0 + 5), "tenant_id": "other-tenant"}) == []


def test_states_report_the_task_from_started_to_completed() -> None:
    h, v = Harness(config()), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1", "a2"], T0 + 10, pickup="a1", dropoff="a2")), "order")
    oid = order["orderId"]
    pick, drop = (order["nodes"][1]["actions"][0]["actionId"], order["nodes"][2]["actions"][0]["actionId"])
    out = h.inbound(v.topic("state"), v.state(T0 + 20, "a0", order_id=oid, nodes=node_states(order),
                                                actions=[(pick, "WAITING"), (drop, "WAITING")]), T0 + 20)  # fmt: skip
    (tele,) = records(out, "robot.telemetry")
    assert (tele["task_id"], tele["task_phase"]) == ("t1", "STARTED")
    assert [w["node_id"] for w in tele["route"]] == ["a1", "a2"] and tele["pose"]["node_id"] == "a0"
    out = h.inbound(v.topic("state"), v.state(T0 + 30, "a1", last_seq=2, order_id=oid, nodes=node_states(order)[1:],
                                                actions=[(pick, "RUNNING"), (drop, "WAITING")]), T0 + 30)  # fmt: skip
    (tele,) = records(out, "robot.telemetry")
    assert (tele["task_phase"], tele["mode"], tele["pose"]["node_id"]) == ("IN_PROGRESS", "WORKING", "a1")
    out = h.inbound(v.topic("state"), v.state(T0 + 40, "a2", last_seq=4, order_id=oid,
                                                actions=[(pick, "FINISHED"), (drop, "FINISHED")]), T0 + 40)  # fmt: skip
    (tele,) = records(out, "robot.telemetry")
    assert (tele["task_id"], tele["task_phase"], tele["route"]) == ("t1", "COMPLETED", [])
    out = h.inbound(v.topic("state"), v.state(T0 + 50, "a2", last_seq=4, order_id=oid,
                                                actions=[(pick, "FINISHED"), (drop, "FINISHED")]), T0 + 50)  # fmt: skip
    assert records(out, "robot.telemetry")[0]["task_id"] is None  # reported once


def test_grants_release_the_base_piece_by_piece_as_order_updates() -> None:
    h, v = Harness(config(await_grants=True)), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1", "a2", "a3"], T0 + 10, dropoff="a3")), "order")
    assert [n["released"] for n in order["nodes"]] == [True, False, False, False]
    oid = order["orderId"]
    grant = decision("GRANT", ["a0", "a1", "a2", "a3"], at=T0 + 20, granted=2, plan_id="p1", plan_seq=0)
    (update,) = sent(h.decide(grant), "order")
    assert (update["orderId"], update["orderUpdateId"]) == (oid, 1)
    assert update["nodes"][0] == order["nodes"][0]
    assert [(n["nodeId"], n["sequenceId"], n["released"]) for n in update["nodes"]] == [
        ("a0", 0, True), ("a1", 2, True), ("a2", 4, False), ("a3", 6, False)]  # fmt: skip
    # a grant seen again (its decision id) is not applied twice; an older seq of the plan is stale
    assert h.decide(grant) == []
    with pytest.raises(RejectedRecord, match="stale GRANT"):
        h.decide(decision("GRANT", ["a0", "a1", "a2", "a3"], at=T0 + 21, granted=3, plan_id="p1", plan_seq=0,
                          decision_id="g-old"))  # fmt: skip
    (update2,) = sent(h.decide(decision("GRANT", ["a1", "a2", "a3"], at=T0 + 30, granted=3, plan_id="p1",
                                        plan_seq=1)), "order")  # fmt: skip
    assert update2["orderUpdateId"] == 2 and update2["nodes"][0] == update["nodes"][1]
    assert [n["released"] for n in update2["nodes"]] == [True, True, True]


def test_a_grant_decided_before_the_vehicles_latest_progress_still_extends_the_base() -> None:
    """Traffic decided it on a status of the vehicle at a0; the vehicle has reached a1 since."""
    h, v = Harness(config(await_grants=True)), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1", "a2", "a3"], T0 + 10, dropoff="a3")), "order")
    oid = order["orderId"]
    grant = decision("GRANT", ["a0", "a1", "a2", "a3"], at=T0 + 20, granted=3, plan_id="p1", plan_seq=0)
    (update,) = sent(h.decide(grant), "order")
    h.inbound(v.topic("state"), v.state(T0 + 30, "a1", last_seq=2, order_id=oid, update_id=1,
                                        nodes=node_states(update)[1:]), T0 + 30)  # fmt: skip
    late = decision("GRANT", ["a0", "a1", "a2", "a3"], at=T0 + 25, granted=4, plan_id="p1", plan_seq=1)
    (update2,) = sent(h.decide(late), "order")
    assert update2["orderUpdateId"] == 2
    assert [(n["nodeId"], n["released"]) for n in update2["nodes"]] == [("a2", True), ("a3", True)]


def test_a_grant_without_an_order_opens_one_under_the_plan_id() -> None:
    h, v = Harness(config(await_grants=True)), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(decision("GRANT", ["a0", "b0", "b1"], granted=2, plan_id="plan-7", plan_seq=0)),
                    "order")  # fmt: skip
    assert order["orderId"] == "plan-7"
    assert [(n["nodeId"], n["released"]) for n in order["nodes"]] == [
        ("a0", True),
        ("b0", True),
        ("b1", False),
    ]


def test_without_an_acknowledgement_the_same_update_is_sent_again() -> None:
    h, v = Harness(config(await_grants=True)), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1", "a2"], T0 + 10)), "order")
    oid = order["orderId"]
    h.inbound(v.topic("state"), v.state(T0 + 20, "a0", order_id=oid, nodes=node_states(order)), T0 + 20)
    (update,) = sent(h.decide(decision("GRANT", ["a0", "a1", "a2"], at=T0 + 30, granted=3, plan_id="p", plan_seq=0)),
                     "order")  # fmt: skip
    # the vehicle still reports update 0, but not for long enough: nothing
    out = h.inbound(
        v.topic("state"), v.state(T0 + 500, "a0", order_id=oid, nodes=node_states(order)), T0 + 500
    )
    assert sent(out, "order") == []
    out = h.inbound(
        v.topic("state"), v.state(T0 + 1500, "a0", order_id=oid, nodes=node_states(order)), T0 + 1500
    )
    (again,) = sent(out, "order")
    assert {k: again[k] for k in ("orderId", "orderUpdateId", "nodes", "edges")} == {
        k: update[k] for k in ("orderId", "orderUpdateId", "nodes", "edges")}  # fmt: skip
    assert again["headerId"] == update["headerId"] + 1


def test_a_vehicle_that_missed_two_updates_gets_one_stitched_on_what_it_has() -> None:
    h, v = Harness(config(await_grants=True)), Vehicle()
    _online(h, v)
    route = ["a0", "a1", "a2", "a3", "a4"]
    (order,) = sent(h.decide(_assign(route, T0 + 10)), "order")
    oid = order["orderId"]
    h.inbound(v.topic("state"), v.state(T0 + 20, "a0", order_id=oid, nodes=node_states(order)), T0 + 20)
    h.decide(decision("GRANT", route, at=T0 + 30, granted=2, plan_id="p", plan_seq=0))
    h.decide(decision("GRANT", route, at=T0 + 40, granted=4, plan_id="p", plan_seq=1))
    out = h.inbound(
        v.topic("state"), v.state(T0 + 2000, "a0", order_id=oid, nodes=node_states(order)), T0 + 2000
    )
    (catch_up,) = sent(out, "order")
    assert catch_up["orderUpdateId"] == 3
    assert [(n["nodeId"], n["released"]) for n in catch_up["nodes"]] == [
        ("a0", True), ("a1", True), ("a2", True), ("a3", True), ("a4", False)]  # fmt: skip


def test_unassign_cancels_and_the_next_order_waits_until_the_vehicle_is_idle() -> None:
    h, v = Harness(config()), Vehicle(version="3.0.0")
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1", "a2"], T0 + 10, task="t1")), "order")
    oid = order["orderId"]
    h.inbound(v.topic("state"), v.state(T0 + 20, "a0", order_id=oid, nodes=node_states(order), driving=True),
              T0 + 20)  # fmt: skip
    out = h.decide(decision("UNASSIGN", at=T0 + 30, task_id="t1"))
    (cancel,) = sent(out, "instantActions")
    assert cancel["actions"][0]["actionType"] == "cancelOrder"
    assert cancel["actions"][0]["blockingType"] == "NONE"  # 3.0: instant actions never block
    assert cancel["actions"][0]["actionParameters"] == [{"key": "orderId", "value": oid}]
    assert vda.problems("instantActions", cancel, "3.0.0") == []
    # a new task while the vehicle is still stopping: kept until it is idle
    assert sent(h.decide(_assign(["a1", "b1"], T0 + 40, task="t2")), "order") == []
    cancel_id = cancel["actions"][0]["actionId"]
    out = h.inbound(v.topic("state"), v.state(T0 + 50, "a1", last_seq=2, order_id=oid, nodes=[],
                                                actions=[(cancel_id, "FINISHED")]), T0 + 50)  # fmt: skip
    (new,) = sent(out, "order")
    assert [n["nodeId"] for n in new["nodes"]] == ["a1", "b1"]
    (tele,) = records(out, "robot.telemetry")
    assert tele["task_id"] is None  # the cancelled task is not reported on


@pytest.mark.parametrize(
    ("stands", "expected"),
    [("a1", ["a1", "b1"]), ("a2", ["a2", "a1", "a0", "a1", "b1"])],  # on the route / before it
)
def test_a_new_order_starts_where_the_vehicle_stands(stands: str, expected: list[str]) -> None:
    h, v = Harness(config()), Vehicle()
    _online(h, v, node=stands)
    (order,) = sent(h.decide(_assign(["a0", "a1", "b1"], T0 + 10, pickup="a0" if stands == "a2" else None)),
                    "order")  # fmt: skip
    assert [n["nodeId"] for n in order["nodes"]] == expected


def test_hold_pauses_a_vehicle_whose_base_passes_the_hold_node_and_resume_unpauses() -> None:
    h, v = Harness(config()), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1", "a2", "a3"], T0 + 10)), "order")
    h.inbound(v.topic("state"), v.state(T0 + 20, "a0", order_id=order["orderId"], nodes=node_states(order),
                                        driving=True), T0 + 20)  # fmt: skip
    (pause,) = sent(h.decide(decision("HOLD", ["a1"], at=T0 + 30)), "instantActions")
    assert pause["actions"][0]["actionType"] == "startPause"
    (resume,) = sent(h.decide(decision("RESUME", at=T0 + 40)), "instantActions")
    assert resume["actions"][0]["actionType"] == "stopPause"


def test_hold_beyond_the_base_only_stops_releasing() -> None:
    h, v = Harness(config(await_grants=True)), Vehicle()
    _online(h, v)
    route = ["a0", "a1", "a2", "a3", "a4"]
    (order,) = sent(h.decide(_assign(route, T0 + 10)), "order")
    h.inbound(
        v.topic("state"), v.state(T0 + 20, "a0", order_id=order["orderId"], nodes=node_states(order)), T0 + 20
    )
    assert sent(h.decide(decision("HOLD", ["a1", "a2"], at=T0 + 30)), "instantActions") == []
    (update,) = sent(
        h.decide(decision("GRANT", route, at=T0 + 40, granted=5, plan_id="p", plan_seq=0)), "order"
    )
    assert [n["nodeId"] for n in update["nodes"] if n["released"]] == ["a0", "a1", "a2"]


def test_reroute_that_would_change_the_base_cancels_and_sends_a_new_order() -> None:
    h, v = Harness(config()), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1", "a2"], T0 + 10, dropoff="a2")), "order")
    h.inbound(
        v.topic("state"), v.state(T0 + 20, "a0", order_id=order["orderId"], nodes=node_states(order)), T0 + 20
    )
    (cancel,) = sent(
        h.decide(decision("REROUTE", ["a0", "b0", "b1", "b2", "a2"], at=T0 + 30)), "instantActions"
    )
    cancel_id = cancel["actions"][0]["actionId"]
    out = h.inbound(v.topic("state"), v.state(T0 + 40, "a0", order_id=order["orderId"],
                                                actions=[(cancel_id, "FINISHED")]), T0 + 40)  # fmt: skip
    (new,) = sent(out, "order")
    assert [n["nodeId"] for n in new["nodes"]] == ["a0", "b0", "b1", "b2", "a2"]
    assert [a["actionType"] for a in new["nodes"][-1]["actions"]] == ["drop"]


def test_a_rejected_order_fails_the_task_with_the_vehicles_words() -> None:
    h, v = Harness(config()), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1"], T0 + 10)), "order")
    error = {"errorType": "orderError", "errorLevel": "WARNING", "errorDescription": "cannot lift",
             "errorReferences": [{"referenceKey": "orderId", "referenceValue": order["orderId"]}]}  # fmt: skip
    out = h.inbound(v.topic("state"), v.state(T0 + 20, "a0", errors=[error]), T0 + 20)
    (tele,) = records(out, "robot.telemetry")
    assert (tele["task_id"], tele["task_phase"], tele["mode"]) == ("t1", "FAILED", "IDLE")
    (alert,) = records(out, "alerts")
    assert (
        alert["kind"] == "TASK_FAILED"
        and "orderError" in alert["message"]
        and "cannot lift" in alert["message"]
    )


def test_a_warning_about_an_older_update_sent_again_is_not_a_rejection() -> None:
    h, v = Harness(config(await_grants=True)), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(_assign(["a0", "a1", "a2"], T0 + 10)), "order")
    h.decide(decision("GRANT", ["a0", "a1", "a2"], at=T0 + 20, granted=2, plan_id="p", plan_seq=0))
    error = {"errorType": "orderUpdateError", "errorLevel": "WARNING", "errorReferences": [
        {"referenceKey": "orderId", "referenceValue": order["orderId"]},
        {"referenceKey": "orderUpdateId", "referenceValue": "0"}]}  # fmt: skip
    out = h.inbound(
        v.topic("state"),
        v.state(
            T0 + 30,
            "a0",
            order_id=order["orderId"],
            update_id=1,
            nodes=[("a1", 2, True), ("a2", 4, False)],
            errors=[error],
        ),
        T0 + 30,
    )
    assert records(out, "robot.telemetry")[0]["task_phase"] == "STARTED"
    assert records(out, "alerts") == []


def test_a_2_0_vehicle_gets_its_instant_actions_under_both_names() -> None:
    h, v = Harness(config()), Vehicle(version="2.0.0")
    _online(h, v)
    h.decide(_assign(["a0", "a1"], T0 + 10))
    (cancel,) = sent(h.decide(decision("UNASSIGN", at=T0 + 20, task_id="t1")), "instantActions")
    assert (
        cancel["actions"] == cancel["instantActions"] and cancel["actions"][0]["actionType"] == "cancelOrder"
    )
    assert vda.problems("instantActions", cancel, "2.1.0") == []


def test_charge_sends_the_vehicle_to_the_charger_with_start_charging() -> None:
    h, v = Harness(config()), Vehicle()
    _online(h, v)
    (order,) = sent(h.decide(decision("CHARGE", ["a0", "a1", "b1", "b2"], at=T0 + 10)), "order")
    assert [a["actionType"] for a in order["nodes"][-1]["actions"]] == ["startCharging"]


def test_a_charging_vehicle_is_told_to_stop_charging_before_a_new_order() -> None:
    h, v = Harness(config()), Vehicle()
    h.inbound(v.topic("factsheet"), v.factsheet(T0), T0)
    h.inbound(v.topic("state"), v.state(T0 + 1, "b5", charging=True), T0 + 1)
    out = h.decide(_assign(["b5", "b4"], T0 + 10))
    (stop,) = sent(out, "instantActions")
    assert stop["actions"][0]["actionType"] == "stopCharging" and sent(out, "order") == []
    (order,) = sent(h.inbound(v.topic("state"), v.state(T0 + 20, "b5"), T0 + 20), "order")
    assert order["nodes"][0]["nodeId"] == "b5"
