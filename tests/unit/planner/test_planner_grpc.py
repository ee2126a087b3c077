"""The planner over real gRPC on 127.0.0.1: optimal answers, map handshake, breaker and fallback."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import grpc
import pytest

from pipelines.planner import BreakerState, CircuitBreaker, PlannerAssigner, PlannerClient, serve
from pipelines.planner.convert import robot_from_pb, robot_to_pb, task_from_pb, task_to_pb
from schemas.sitegraph import graph_for
from tests.unit.topologies.test_dispatch_policy import crafted_case
from tests.unit.topologies.test_dispatch_support import T0, line_map
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.policy import CostModel, RobotView, TaskView, greedy, optimal


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def planner() -> Iterator[tuple[grpc.Server, int]]:
    server, port = serve("127.0.0.1", _free_port())
    yield server, port
    server.stop(0)


def _client(port: int, clock: Clock | None = None, threshold: int = 2) -> PlannerClient:
    breaker = CircuitBreaker(
        f"test-{port}", failure_threshold=threshold, cooldown_s=5, clock=clock or Clock()
    )
    return PlannerClient(f"127.0.0.1:{port}", timeout_s=1.0, retries=1, backoff_s=0.01, breaker=breaker)


def test_views_survive_the_protobuf_round_trip() -> None:
    r = RobotView("r1", "N0", 0.5, frozenset({"a", "b"}), "f")
    t = TaskView("t", 3, "N1", None, frozenset({"a"}), T0, T0 - 5, T0 - 1, None, "r1")
    assert robot_from_pb(robot_to_pb(r)) == r
    assert task_from_pb(task_to_pb(t)) == t
    bare = TaskView("t2")
    assert task_from_pb(task_to_pb(bare)) == bare


def test_planner_is_optimal_where_greedy_is_not(planner: tuple[grpc.Server, int]) -> None:
    model, robots, tasks = crafted_case()
    client = _client(planner[1])
    got = client.assign(model.graph.source, robots, tasks, model.now_ms, model.config)
    table = model.table(robots, tasks)
    assert sorted(got, key=lambda a: a.task_id) == sorted(optimal(table), key=lambda a: a.task_id)
    planner_travel = sum(a.travel_s for a in got)
    greedy_travel = sum(a.travel_s for a in greedy(table))
    assert planner_travel == pytest.approx(110.0) and greedy_travel == pytest.approx(130.0)
    assert client.calls == 2  # the first call was told to send the map, the second carried it
    client.assign(model.graph.source, robots, tasks, model.now_ms, model.config)
    assert client.calls == 3  # the server kept the map
    client.close()


def test_route_has_etas_along_the_shortest_path(planner: tuple[grpc.Server, int]) -> None:
    client = _client(planner[1])
    route = client.route(line_map(5), ["N0", "N2", "N1"], T0, DispatchConfig())
    assert [w["node_id"] for w in route] == ["N0", "N1", "N2", "N1"]
    assert [w["eta"] for w in route] == [T0, T0 + 10_000, T0 + 20_000, T0 + 30_000]
    client.close()


def test_server_down_opens_the_circuit_and_restart_closes_it() -> None:
    port = _free_port()
    server, _ = serve("127.0.0.1", port)
    clock = Clock()
    client = _client(port, clock, threshold=2)
    assigner = PlannerAssigner(client)
    model, robots, tasks = crafted_case()
    table = model.table(robots, tasks)

    pairs, who = assigner(table)
    assert who == "planner" and {(a.task_id, a.robot_id) for a in pairs} == {
        ("urgent", "r2"),
        ("other", "r1"),
    }

    server.stop(0).wait()
    for _ in range(2):
        pairs, who = assigner(table)
        assert who == "in_process"  # the fallback answers: greedy
        assert {(a.task_id, a.robot_id) for a in pairs} == {("urgent", "r1"), ("other", "r2")}
    assert client.breaker.state is BreakerState.OPEN
    calls = client.calls
    _, who = assigner(table)
    assert who == "in_process" and client.calls == calls  # open: no call goes out at all

    server, _ = serve("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 10
        while client.breaker.state is not BreakerState.CLOSED and time.monotonic() < deadline:
            clock.t += 6  # past the cooldown: the next call is the half-open probe
            _, who = assigner(table)
            if who != "planner":
                time.sleep(0.2)  # the channel is still reconnecting
        assert client.breaker.state is BreakerState.CLOSED and who == "planner"
        assert assigner.fallbacks >= 3
    finally:
        server.stop(0)
        client.close()


def test_cost_model_is_shared_by_both_sides(planner: tuple[grpc.Server, int]) -> None:
    """The server's costs for a pair equal the in-process model's (same function, same config)."""
    cfg = DispatchConfig(battery_per_s=0.001, age_weight=0.5)
    site = line_map(8)
    robots = [RobotView(f"r{i}", f"N{i}", 0.3 + 0.1 * i) for i in range(4)]
    tasks = [
        TaskView(f"t{j}", priority=j, pickup=f"N{7 - j}", dropoff="N3", queued_at=T0 - 60_000)
        for j in range(4)
    ]
    client = _client(planner[1])
    got = {(a.robot_id, a.task_id): a.cost for a in client.assign(site, robots, tasks, T0, cfg)}
    model = CostModel(graph_for(site, cfg.nominal_speed_mps), cfg, T0)
    for (rid, tid), cost in got.items():
        robot = next(r for r in robots if r.robot_id == rid)
        task = next(t for t in tasks if t.task_id == tid)
        assert cost == pytest.approx(model.pair(robot, task))
    client.close()


def test_health_service_reports_serving(planner: tuple[grpc.Server, int]) -> None:
    """Kubernetes' gRPC probes call grpc.health.v1.Health/Check: the server and the Planner are SERVING."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{planner[1]}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "fleetstream.planner.v1.Planner"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as err:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=5)
        assert err.value.code() is grpc.StatusCode.NOT_FOUND
