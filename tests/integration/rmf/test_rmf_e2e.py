"""One task's full round trip through Open-RMF, on the real stack with the real processors.

RMF fleet adapters (``FleetAdapterSim``) push their robots over the gateway's ``/_internal`` websocket, on
the port of its own that ``fleet run gateway`` serves it on; ``rmf-ingest`` turns them into robot.status;
tasks created through the gateway's REST API for the RMF fleet are assigned by ``dispatch``, submitted by
``sink-rmf`` to the RMF API server simulator, whose dispatcher pushes their states back over the websocket
into the ``tasks`` topology; ``sink-postgres`` projects the outcome that ``GET /v1/tasks/{id}`` returns:
SUCCEEDED, FAILED with RMF's reason, CANCELLED (and cancelled in RMF too).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import websockets

from gateway.auth import issue_token
from pipelines.rmf import RmfServerConfig, RmfServerSim
from schemas import rmf
from schemas.tracing import trace_id_of
from sinks.rmf.requests import TASK_LABEL, labels_of
from tests.integration.rmf.conftest import Adapters
from tests.integration.sinks.test_postgres_support import pg_schema
from tests.integration.tasks.test_tasks_support import TaskStack, by_task, transitions

__all__ = ["pg_schema"]  # fixture, imported for pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(360)]

WS_TOKEN = "rmf-e2e-ws-token-0123456789"
JWT_SECRET = "rmf-e2e-jwt-secret-0123456789abcdef0123"
SITE = "s1"
FLEET = "tinyRobot"
ROBOTS = ("tinyRobot1", "tinyRobot2", "tinyRobot3")
RMF_PLACES = ("P1", "P2", "P3")  # Z is on our map, but no RMF fleet can reach it
PROCESSORS = ("tasks", "dispatch", "rmf-ingest", "sink-rmf", "sink-postgres")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _site_map() -> dict[str, Any]:
    nodes = {"P1": (5.0, 5.0), "P2": (15.0, 5.0), "P3": (10.0, 10.0), "Z": (10.0, 0.0)}
    lanes = [("P1", "P3"), ("P3", "P2"), ("P1", "Z"), ("Z", "P2")]
    return {
        "version": 1,
        "name": "rmf-e2e",
        "nodes": [{"id": n, "x": x, "y": y} for n, (x, y) in nodes.items()],
        "lanes": [{"id": f"{a}-{b}", "from_node": a, "to_node": b} for a, b in lanes],
    }


class Api:
    """The gateway's REST API as one tenant's admin."""

    def __init__(self, base: str, tenant: str) -> None:
        token = issue_token(JWT_SECRET, tenant_id=tenant, roles=["admin"])
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def ok(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        response = self.http.request(method, path, **kw)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()  # type: ignore[no-any-return]

    def create_task(self, **spec: Any) -> str:
        body = {"site_id": SITE, "spec": {"fleet_id": FLEET, "max_attempts": 1, **spec}}
        return str(self.ok("POST", "/v1/tasks", json=body)["task_id"])

    def wait(
        self, path: str, until: Callable[[dict[str, Any]], bool], what: str, timeout: float = 90.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            response = self.http.get(path)
            if response.status_code == 200:
                last = response.json()
                if until(last):
                    return last  # type: ignore[no-any-return]
            time.sleep(0.3)
        raise AssertionError(f"{path}: {what} not reached in {timeout:.0f} s; last seen {last}")


def _start_processes(
    s: TaskStack, server: RmfServerSim, tenant: str, pg_dsn: str, schema: str, **ports: int
) -> None:
    s.start(
        "gateway",
        http_host="127.0.0.1",
        http_port=ports["http"],
        rmf_ws_port=ports["rmf"],
        rmf_ws_token=WS_TOKEN,
        jwt_secret=JWT_SECRET,
        postgres_dsn=f"{pg_dsn}?options=-csearch_path%3D{schema}",
        dashboard_enabled="false",
    )
    s.start("tasks")
    s.start("dispatch")
    s.start("rmf-ingest", rmf_tenant_id=tenant, rmf_site_id=SITE, rmf_min_interval_s=2, commit_interval_s=0.2)
    s.start(
        "sink-rmf",
        rmf_api_url=server.url,
        rmf_api_token=server.token(),
        rmf_fleets=f'["{FLEET}"]',
        rmf_retry_after_s=0.5,
        commit_interval_s=0.2,
    )
    s.start("sink-postgres", postgres_schema=schema)
    for name in PROCESSORS:
        s.wait_started(name, timeout=120)
    deadline = time.monotonic() + 60
    while True:
        proc = s.procs["gateway"]
        assert proc.poll() is None, f"gateway exited:\n{s.log('gateway')[-3000:]}"
        try:
            ready = [
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
                for port in ports.values()
            ]
            if ready == [200, 200]:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"gateway did not start:\n{s.log('gateway')[-3000:]}"
        time.sleep(0.3)


async def _connect(uri: str) -> None:
    async with websockets.connect(uri, open_timeout=5):
        pass


def _raw(s: TaskStack, topic: str, at_least: int) -> list[Any]:
    """Every record of ``topic`` (at least ``at_least`` of them are waited for)."""
    consumer = s.reader(topic)
    out: list[Any] = []
    deadline = time.monotonic() + 30
    quiet_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                if len(out) >= at_least and time.monotonic() - quiet_since > 1.5:
                    break
                continue
            quiet_since = time.monotonic()
            out.append(msg)
    finally:
        consumer.close()
    return out


def test_task_round_trip_through_rmf(
    rmf_stack: TaskStack,
    pg_schema: str,
    pg_dsn: str,
    adapters: Callable[..., Adapters],
) -> None:
    s = rmf_stack
    tenant = f"rmf{uuid.uuid4().hex[:8]}"
    ports = {"http": _free_port(), "rmf": _free_port()}
    ws_uri = f"ws://127.0.0.1:{ports['rmf']}/_internal?token={WS_TOKEN}"
    config = RmfServerConfig(
        fleets=(FLEET,),
        robots=ROBOTS,
        push_uri=ws_uri,  # RMF's dispatcher pushes task states to our websocket
        step_s=0.5,
        places=RMF_PLACES,
        hold_categories=("patrol",),  # a patrol runs until it is cancelled
    )
    server = RmfServerSim(config).start()
    fleet: Adapters | None = None
    try:
        _start_processes(s, server, tenant, pg_dsn, pg_schema, **ports)
        api = Api(f"http://127.0.0.1:{ports['http']}", tenant)
        with pytest.raises(websockets.InvalidStatus):  # on its own port, /_internal is not on the REST port
            asyncio.run(_connect(f"ws://127.0.0.1:{ports['http']}/_internal?token={WS_TOKEN}"))

        # The site and RMF's robots, registered through the gateway; their states come from RMF.
        api.ok("PUT", f"/v1/sites/{SITE}/map", json=_site_map())
        for robot in ROBOTS:
            body = {"robot_id": robot, "site_id": SITE, "fleet_id": FLEET, "name": robot, "managed_by": "RMF"}
            api.ok("POST", "/v1/robots", json=body)
        fleet = adapters(ws_uri, {FLEET: ROBOTS}, period_s=0.5, reconnect_s=0.5)
        for robot in ROBOTS:
            seen = api.wait(
                f"/v1/robots/{robot}", lambda r: r.get("status") == "IDLE", f"robot {robot} IDLE from RMF"
            )
            assert seen["fleet_id"] == FLEET and seen["battery"] == pytest.approx(0.8)
            assert seen["pose"]["map_name"] == "L1"
        # What a real adapter should not send, and a network blip (reconnect + re-sends).
        fleet.call(lambda a: a.inject_malformed())
        fleet.call(lambda a: a.inject_unknown())
        fleet.call(lambda a: a.reconnect())

        delivered = api.create_task(category="delivery", pickup_node="P1", dropoff_node="P2")
        refused = api.create_task(category="delivery", pickup_node="P1", dropoff_node="Z")
        patrol = api.create_task(category="patrol", pickup_node="P1", dropoff_node="P3")

        done = api.wait(f"/v1/tasks/{delivered}", lambda t: t["state"] == "SUCCEEDED", "SUCCEEDED")
        assert done["robot_id"] in ROBOTS
        failed = api.wait(f"/v1/tasks/{refused}", lambda t: t["state"] == "FAILED", "FAILED")
        assert "RMF failed_to_assign" in failed["reason"], failed
        assert "no fleet can reach place [Z]" in failed["reason"], failed
        api.wait(f"/v1/tasks/{patrol}", lambda t: t["state"] == "EXECUTING", "EXECUTING in RMF")
        api.ok("POST", f"/v1/tasks/{patrol}/cancel", json={"reason": "operator changed plans"})
        cancelled = api.wait(f"/v1/tasks/{patrol}", lambda t: t["state"] == "CANCELLED", "CANCELLED")
        assert cancelled["reason"] == "operator changed plans"

        # RMF's side: one request per task, each valid; the patrol cancelled there too.
        def rmf_tasks() -> dict[str, dict[str, Any]]:
            """RMF's task states by our task id (its label)."""
            return {labels_of(st)[TASK_LABEL]: st for st in list(server.sim.tasks.values())}

        deadline = time.monotonic() + 30
        while rmf_tasks()[patrol].get("status") != "canceled" and time.monotonic() < deadline:
            time.sleep(0.3)
        assert rmf_tasks()[patrol]["status"] == "canceled"
        assert rmf_tasks()[delivered]["status"] == "completed"
        assert refused not in rmf_tasks()
        requests = list(server.sim.requests)
        for request in requests:
            rmf.validate(request)
        assert sorted(r["type"] for r in requests) == [
            "cancel_task_request", "dispatch_task_request", "dispatch_task_request", "dispatch_task_request",
        ]  # fmt: skip

        # Our side: the life of each task, RMF's task id linked to ours.
        def finished(records: list[dict[str, Any]]) -> bool:
            ended = {e["task_id"] for e in records if e["state"] in ("SUCCEEDED", "FAILED", "CANCELLED")}
            return {delivered, refused, patrol} <= ended

        events = by_task(s.read("task.events", until=finished, timeout=30))
        assert transitions(events[delivered]) == [
            "CREATED", "QUEUED", "ASSIGNED", "DISPATCHED", "EXECUTING", "SUCCEEDED",
        ]  # fmt: skip
        assert events[delivered][-1]["external_id"] == rmf_tasks()[delivered]["booking"]["id"]
        assert events[delivered][-1]["external_id"].startswith("delivery.dispatch-")
        assert transitions(events[refused]) == ["CREATED", "QUEUED", "ASSIGNED", "FAILED"]
        assert transitions(events[patrol])[-2:] == ["EXECUTING", "CANCELLED"]
        assert events[patrol][-1]["external_id"] == rmf_tasks()[patrol]["booking"]["id"]
    finally:
        server.stop()
        if fleet is not None:
            fleet.stop()  # what was sent is in Kafka now: the topics below stop growing

    # Every RMF message that reached Kafka is valid; the invalid frames are dead letters; re-sent
    # robot states came in twice but became one robot.status each.
    fleet_states = _raw(s, "rmf.fleet_states", 10)
    for msg in fleet_states:
        rmf.validate(orjson.loads(msg.value()), "fleet_state_update")
    values = [m.value() for m in fleet_states]
    assert len(values) > len(set(values)), "the adapter re-sends its latest state on reconnect"
    task_states = _raw(s, "rmf.task_states", 8)
    for msg in task_states:
        rmf.validate(orjson.loads(msg.value()), "task_state_update")
    # What sink-rmf publishes of RMF's answers (the refusal, the accepted dispatches) continues the
    # trace of the task's command; what RMF pushes over the websocket starts new traces downstream.
    commands = {m.key().decode(): trace_id_of(m.headers()) for m in _raw(s, "task.commands", 4)}
    answered = {trace_id_of(m.headers()) for m in task_states} - {None}
    assert {commands[refused], commands[delivered]} <= answered, (commands, answered)
    dead = _raw(s, "dlq.gateway", 2)
    assert sorted(m.value() for m in dead) == [
        b'{"type": "fleet_state_update", "data": {"name": 7}}',
        b"{not json",
    ]
    statuses = s.read("robot.status", until=lambda r: len(r) >= len(ROBOTS), timeout=30, quiet=1.5)
    assert {r["robot_id"] for r in statuses} == set(ROBOTS) and {r["reason"] for r in statuses} == {"RMF"}
    seqs = [(r["robot_id"], r["seq"]) for r in statuses]
    assert len(seqs) == len(set(seqs)), "a re-sent robot state became a second robot.status"
    assert all(r["tenant_id"] == tenant and r["site_id"] == SITE for r in statuses)
