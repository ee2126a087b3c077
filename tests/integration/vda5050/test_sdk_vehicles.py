"""The bridge (``fleet run vda5050``) drives vehicles of ``vda5050-sdk`` over the local Mosquitto.

Decisions are produced by the test, as dispatch and traffic write them (ASSIGN, UNASSIGN, and the GRANT
contract of the new traffic topology); everything else is real: Kafka, the registry, Mosquitto with its ACL,
the bridge process, and the SDK's vehicles. Every MQTT message both ways is recorded and must validate
against the official VDA 5050 schema of its version."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from schemas.sitegraph import graph_for
from tests.integration.vda5050.sdk import SdkFleet, SdkVehicle
from tests.integration.vda5050.support import Observer, VdaStack, clear_retained, open_vda_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SERIALS = ("agv-01", "agv-02")


def _robot(serial: str) -> str:
    return f"dev-{serial}"


@pytest.fixture
def vda_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[VdaStack]:
    with open_vda_stack(prefixed_settings, kafka_admin, tmp_path) as stack:
        stack.interface = "uagv"  # the SDK's interface name is fixed
        yield stack


def _retained() -> list[str]:
    return [f"uagv/v2/dev/{s}/{t}" for s in SERIALS for t in ("connection", "factsheet")]


@pytest.fixture
def observer() -> Iterator[Observer]:
    for serial in SERIALS:
        clear_retained([f"uagv/v2/dev/{serial}/{t}" for t in ("connection", "factsheet")], f"dev/{serial}")
    obs = Observer(["uagv/v2"]).start()
    yield obs
    obs.stop()


def _fleet(site: dict[str, Any], starts: dict[str, str], delays: dict[str, float] | None = None) -> SdkFleet:
    """SDK vehicles at their start nodes; ``delays``: seconds a node takes them (default 0.15)."""
    xy = {n["id"]: (n["x"], n["y"]) for n in site["nodes"]}
    return SdkFleet([SdkVehicle(serial, node, xy[node], node_delay=(delays or {}).get(serial, 0.15))
                     for serial, node in starts.items()]).start()  # fmt: skip


def _start_bridge(s: VdaStack, **env: Any) -> None:
    s.start("vda5050", **s.bridge_env(commit_interval_s=0.05, vda_resend_after_s=1.5, **env))
    s.wait_started("vda5050", timeout=90)


def _telemetry(s: VdaStack, robot: str, pred: Any, timeout: float = 60.0) -> list[dict[str, Any]]:
    records = s.wait_for(
        "robot.telemetry", lambda rs: any(r["robot_id"] == robot and pred(r) for r in rs), timeout
    )
    return [r for r in records if r["robot_id"] == robot]


def _route(site: dict[str, Any], *stops: str) -> list[str]:
    graph = graph_for(site)
    route = [stops[0]]
    for a, b in itertools.pairwise(stops):
        route += graph.shortest_path(a, b)[1:]
    return route


def test_sdk_vehicles_register_report_and_finish_tasks_and_a_cancel_stops_one(
    vda_stack: VdaStack, observer: Observer
) -> None:
    s = vda_stack
    site = s.publish_map()
    _start_bridge(s)
    fleet = _fleet(site, {"agv-01": "P01", "agv-02": "P02"}, delays={"agv-02": 1.0})
    try:
        # connected -> registered at once, asked for its factsheet, which completes the registration
        def complete(rs: list[dict[str, Any]]) -> bool:
            return {r["robot_id"] for r in rs if r["model"]} >= {_robot(x) for x in SERIALS}

        regs = [r for r in s.wait_for("robot.registry", complete) if r["robot_id"] == "dev-agv-01"]
        assert regs[0]["model"] is None and regs[0]["capabilities"] == ["vda5050:2.1.0"]
        reg = regs[-1]
        assert reg["model"] == "SDK-AGV" and "pick" in reg["capabilities"] and reg["max_payload_kg"] == 500.0
        assert reg["capabilities"][0] == "vda5050:2.1.0" and reg["fleet_id"] == "vda5050"
        _telemetry(s, "dev-agv-01", lambda r: r["pose"]["node_id"] == "P01")

        # a delivery: the order's pick and drop run on the vehicle, the task is reported COMPLETED
        pickup, dropoff = "PICK1", "DROP3"
        route = _route(site, "P01", pickup, dropoff)
        assign = s.assign("dev-agv-01", route, "task-1", pickup, dropoff)
        done = _telemetry(s, "dev-agv-01", lambda r: r["task_phase"] == "COMPLETED", timeout=90)
        phases = [r["task_phase"] for r in done if r["task_id"] == "task-1"]
        assert phases[0] == "STARTED" and phases[-1] == "COMPLETED" and "IN_PROGRESS" in phases
        assert done[-1]["pose"]["node_id"] == dropoff and done[-1]["route"] == []
        (order,) = observer.of("order", "dev/agv-01")
        assert order["orderId"] == assign["decision_id"] and [n["nodeId"] for n in order["nodes"]] == route
        states = observer.of("state", "dev/agv-01")
        finished = {a["actionType"] for a in states[-1]["actionStates"] if a["actionStatus"] == "FINISHED"}
        assert finished == {"pick", "drop"}

        # a long trip, cancelled on the way: cancelOrder, the vehicle stops and forgets the order
        long_route = _route(site, "P02", "DROP5", "PICK1")
        s.assign("dev-agv-02", long_route, "task-2", None, "PICK1")
        _telemetry(
            s, "dev-agv-02", lambda r: r["task_phase"] == "IN_PROGRESS" and r["pose"]["node_id"] != "P02"
        )
        s.decision("UNASSIGN", "dev-agv-02", [], task_id="task-2")
        instant = observer.wait("instantActions", lambda ms: any(
            a["actionType"] == "cancelOrder" for m in ms for a in m["actions"]), "dev/agv-02")  # fmt: skip
        (cancel_id,) = [
            a["actionId"] for m in instant for a in m["actions"] if a["actionType"] == "cancelOrder"
        ]
        observer.wait("state", lambda ms: any(a["actionId"] == cancel_id and a["actionStatus"] == "FINISHED"
                                              for a in ms[-1]["actionStates"]), "dev/agv-02")  # fmt: skip
        stopped = _telemetry(s, "dev-agv-02", lambda r: r["task_id"] is None and r["route"] == [])
        assert stopped[-1]["pose"]["node_id"] != "PICK1"  # it did not drive on to the end
        assert all(r["task_phase"] != "COMPLETED" for r in stopped)
    finally:
        fleet.stop()
    assert observer.invalid() == []
    assert s.read_raw("dlq.vda5050", 1, timeout=2) == []


def test_grants_release_the_base_in_stitched_updates_and_a_stale_grant_is_dead_lettered(
    vda_stack: VdaStack, observer: Observer
) -> None:
    s = vda_stack
    site = s.publish_map()
    _start_bridge(s, vda_await_grants="true")
    fleet = _fleet(site, {"agv-01": "P01"})
    try:
        _telemetry(s, "dev-agv-01", lambda r: r["pose"]["node_id"] == "P01")
        route = _route(site, "P01", "DROP4")
        assign = s.assign("dev-agv-01", route, "task-g", None, "DROP4")
        (first,) = observer.wait("order", lambda ms: len(ms) == 1, "dev/agv-01")
        assert [n["released"] for n in first["nodes"]] == [True] + [False] * (len(route) - 1)
        _telemetry(s, "dev-agv-01", lambda r: r["task_phase"] == "STARTED")

        plan = f"plan-{uuid.uuid4().hex[:6]}"
        s.decision("GRANT", "dev-agv-01", route, granted=4, plan_id=plan, plan_seq=0)
        orders = observer.wait("order", lambda ms: len(ms) == 2, "dev/agv-01")
        update = orders[1]
        assert (update["orderId"], update["orderUpdateId"]) == (assign["decision_id"], 1)
        assert update["nodes"][0] == first["nodes"][0]  # stitched on the decision point, unchanged
        assert [n["released"] for n in update["nodes"]][:4] == [True] * 4 and not update["nodes"][4][
            "released"
        ]
        # it drives the base and waits at the decision point: route[3]
        waiting = _telemetry(s, "dev-agv-01", lambda r: r["pose"]["node_id"] == route[3])
        time.sleep(2.0)
        after = s.read("robot.telemetry", timeout=5, quiet=0.5)
        mine = [r for r in after if r["robot_id"] == "dev-agv-01" and r["seq"] > waiting[-1]["seq"]]
        assert mine and all(r["pose"]["node_id"] == route[3] for r in mine)
        assert [w["node_id"] for w in mine[-1]["route"]] == route[4:]  # the horizon, goal last

        # a grant of the plan that is older than the one applied is dead-lettered with the reason
        stale = s.decision("GRANT", "dev-agv-01", route, granted=5, plan_id=plan, plan_seq=0)
        (dead,) = s.read_raw("dlq.vda5050", 1, timeout=30)
        headers = dict(dead.headers())
        assert b"stale GRANT" in headers["fleet-dlq-error"] and stale["decision_id"].encode() in dead.value()

        # traffic grants the rest from where the vehicle stands: it finishes
        s.decision("GRANT", "dev-agv-01", route[3:], granted=len(route) - 3, plan_id=plan, plan_seq=1)
        _telemetry(s, "dev-agv-01", lambda r: r["task_phase"] == "COMPLETED", timeout=60)
        orders = observer.of("order", "dev/agv-01")
        assert [o["orderUpdateId"] for o in orders] == [0, 1, 2]
        assert orders[2]["nodes"][0] == orders[1]["nodes"][3]
        assert all(n["released"] for n in orders[2]["nodes"])
        assert {n["sequenceId"] for n in orders[2]["nodes"]} == {2 * i for i in range(3, len(route))}
    finally:
        fleet.stop()
    assert observer.invalid() == []
