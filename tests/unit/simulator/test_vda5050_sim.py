"""The simulator's VDA 5050 vehicles against the bridge's per-vehicle step, in process and simulated time:
orders, grants (stitched updates), a cancel, a pause, 2.1 and 3.0; every message both ways validates."""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest

from pipelines.simulator import FleetConfig, FleetSim, demo_site
from pipelines.simulator.vda5050 import VdaFleet
from schemas import vda
from topologies.vda5050 import VdaConfig, model_for, on_decision, on_inbound

T0 = 1_760_000_000_000
TICK = 250


class Loop:
    """Simulated vehicles and the bridge's step wired together without a broker."""

    def __init__(self, version: str, robots: int = 2, await_grants: bool = False) -> None:
        self.site = demo_site("s1", "acme", 0, occurred_at=T0)
        self.model = model_for(self.site)
        cfg = FleetConfig(tenant_id="acme", robots=robots, autonomous=False, self_charge=False, work_ms=0,
                          speed_scale=4.0, start_dwell_ms=0)  # fmt: skip
        self.sim = FleetSim(self.site, cfg, T0)
        self.fleet = VdaFleet(self.sim, manufacturer="sim", version=version, action_ms=500)
        self.config = VdaConfig(
            tenant_id="acme", site_id="s1", resend_after_ms=2000, await_grants=await_grants
        )
        self.state: dict[str, tuple[Any, Any]] = {}
        self.now = T0
        self.telemetry: list[dict[str, Any]] = []
        self.sent: list[tuple[str, dict[str, Any]]] = []  # everything both ways
        self._deliver(self.fleet.start(self.now))

    def robot(self, robot_id: str) -> str:
        return f"sim-{robot_id}"

    def _maps(self, tenant: str, site: str) -> Any:
        return self.model

    def _bridge_out(self, outs: list[Any]) -> None:
        for out in outs:
            if out.topic == "robot.telemetry":
                self.telemetry.append(out.value)
            elif out.topic == "vda5050.outbound":
                topic, message = out.value["topic"], out.value["message"]
                self.sent.append((topic, message))
                self._deliver(self.fleet.receive(topic, message, self.now))

    def _deliver(self, outgoing: list[Any]) -> None:
        for topic, message, _qos, _retain in outgoing:
            self.sent.append((topic, message))
            robot = self.robot(message["serialNumber"])
            v, o = self.state.get(robot, (None, None))
            nv, no, outs = on_inbound(v, o, orjson.dumps(message), topic, self.now, self._maps, self.config)
            self.state[robot] = (nv if nv is not None else v, no if no is not None else o)
            self._bridge_out(outs)

    def decide(self, decision: dict[str, Any]) -> None:
        robot = decision["robot_id"]
        v, o = self.state.get(robot, (None, None))
        nv, no, outs = on_decision(v, o, decision, self.now, self._maps, self.config)
        self.state[robot] = (nv if nv is not None else v, no if no is not None else o)
        self._bridge_out(outs)

    def run(self, ms: int, each: Any = None) -> None:
        end = self.now + ms
        while self.now < end:
            self.now += TICK
            self._deliver(self.fleet.step(self.now))
            if each is not None:
                each(self)

    def last(self, robot: str) -> dict[str, Any]:
        return [t for t in self.telemetry if t["robot_id"] == robot][-1]

    def invalid(self) -> list[str]:
        bad = []
        for topic, message in self.sent:
            release = vda.schema_release(message["version"])
            problems = vda.problems(topic.rsplit("/", 1)[-1], message, release)
            if problems:
                bad.append(f"{topic}: {problems}")
        return bad

    def vehicle_errors(self) -> list[Any]:
        return [e for topic, m in self.sent if topic.endswith("/state") for e in m["errors"]]


def decision(loop: Loop, kind: str, robot: str, route: list[str], n: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{n}", "tenant_id": "acme", "site_id": "s1", "occurred_at": loop.now,
            "decision_id": f"{kind.lower()}-{n}", "kind": kind, "robot_id": robot, "task_id": None,
            "route": [{"node_id": x, "eta": loop.now} for x in route], "eta": None, "cost": None, "reason": None,
            "conflict_id": None, "planner": "test", "granted": None, "plan_id": None, "plan_seq": None,
            **extra}  # fmt: skip


def _path(loop: Loop, *stops: str) -> list[str]:
    route = [stops[0]]
    for a, b in itertools.pairwise(stops):
        route += loop.model.path(a, b)[1:]
    return route


@pytest.mark.parametrize("version", ["2.1.0", "3.0.0"])
def test_simulated_vehicles_carry_out_a_delivery(version: str) -> None:
    loop = Loop(version)
    robot_id = loop.sim.robot_ids[0]
    robot = loop.robot(robot_id)
    loop.run(1000)
    start = loop.sim.view(robot_id).anchor
    spec = {"category": "delivery", "pickup_node": "PICK1", "dropoff_node": "DROP2", "labels": {}}
    loop.decide(
        decision(loop, "ASSIGN", robot, _path(loop, start, "PICK1", "DROP2"), 1, task_id="t1", spec=spec)
    )
    loop.run(120_000)
    phases = [t["task_phase"] for t in loop.telemetry if t["robot_id"] == robot and t["task_id"] == "t1"]
    assert phases[0] == "STARTED" and phases[-1] == "COMPLETED"
    assert loop.last(robot)["pose"]["node_id"] == "DROP2"
    assert loop.invalid() == [] and loop.vehicle_errors() == []


def test_a_simulated_vehicle_stops_at_its_decision_point_until_a_grant_extends_the_base() -> None:
    loop = Loop("3.0.0", await_grants=True)
    robot_id = loop.sim.robot_ids[0]
    robot = loop.robot(robot_id)
    loop.run(1000)
    route = _path(loop, loop.sim.view(robot_id).anchor, "DROP3")
    spec = {"category": "delivery", "pickup_node": None, "dropoff_node": "DROP3", "labels": {}}
    loop.decide(decision(loop, "ASSIGN", robot, route, 1, task_id="t1", spec=spec))
    loop.decide(decision(loop, "GRANT", robot, route, 2, granted=3, plan_id="p", plan_seq=0))
    loop.run(20_000)
    assert loop.sim.view(robot_id).anchor == route[2] and loop.last(robot)["pose"]["node_id"] == route[2]
    assert [w["node_id"] for w in loop.last(robot)["route"]] == route[3:]
    loop.decide(decision(loop, "GRANT", robot, route[2:], 3, granted=len(route) - 2, plan_id="p", plan_seq=1))
    loop.run(60_000)
    assert any(t["task_phase"] == "COMPLETED" for t in loop.telemetry if t["robot_id"] == robot)
    orders = [m for topic, m in loop.sent if topic.endswith("/order")]
    assert [o["orderUpdateId"] for o in orders] == [0, 1, 2]
    assert loop.invalid() == [] and loop.vehicle_errors() == []


def test_a_simulated_vehicle_obeys_cancel_and_pause() -> None:
    loop = Loop("2.1.0", robots=1)
    robot_id = loop.sim.robot_ids[0]
    robot = loop.robot(robot_id)
    loop.run(1000)
    route = _path(loop, loop.sim.view(robot_id).anchor, "DROP5", "PICK1")
    spec = {"category": "delivery", "pickup_node": None, "dropoff_node": "PICK1", "labels": {}}
    loop.decide(decision(loop, "ASSIGN", robot, route, 1, task_id="t1", spec=spec))
    loop.run(4000)
    loop.decide(decision(loop, "HOLD", robot, [], 2))
    loop.run(3000)
    paused_at = loop.sim.view(robot_id).anchor
    loop.run(3000)
    assert loop.sim.view(robot_id).anchor == paused_at and loop.last(robot)["speed"] == 0.0
    loop.decide(decision(loop, "RESUME", robot, [], 3))
    loop.run(3000)
    loop.decide(decision(loop, "UNASSIGN", robot, [], 4, task_id="t1"))
    loop.run(5000)
    last = loop.last(robot)
    assert last["task_id"] is None and last["route"] == [] and last["pose"]["node_id"] not in (None, "PICK1")
    states = [m for topic, m in loop.sent if topic.endswith("/state")]
    cancel = [a for a in states[-1]["actionStates"] if a["actionType"] == "cancelOrder"]
    assert cancel and cancel[0]["actionStatus"] == "FINISHED"
    assert loop.invalid() == [] and loop.vehicle_errors() == []
