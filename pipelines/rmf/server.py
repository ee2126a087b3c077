"""A simulator of the RMF API server (rmf-web's api-server) and of RMF's task dispatcher behind it.

REST, JWT bearer (HS256 with ``jwt_secret``):

- ``POST /tasks/dispatch_task``: a ``dispatch_task_request``. Invalid (schema), an unknown category, a
  description that does not fit its category, or a fleet the simulator does not run -> 400
  ``{"success": false, "errors": [...]}``. Accepted -> 200 ``{"success": true, "state": <task_state>}`` with
  task id ``<category>.dispatch-<n>`` and the request's labels in ``booking.labels``.
- ``POST /tasks/cancel_task``: a ``cancel_task_request``. A running task -> ``{"success": true}`` and a
  ``canceled`` state; a finished one -> 400 with errors; an unknown id -> nobody answers: after
  ``cancel_timeout_s`` a 500 (rmf-web's answer when the ROS service call times out).
- ``GET /tasks?label=k=v``: the task states carrying that booking label; ``GET /tasks/{id}/state``.

Like RMF's dispatcher, it pushes the states of accepted tasks over a websocket to ``push_uri`` (our
``/_internal``): dispatch ``queued`` -> ``selected`` -> ``dispatched``, status ``queued`` -> ``underway``
-> ``completed``, one step every ``step_s``; ``fail_categories`` end in ``failed`` instead,
``hold_categories`` stay ``underway`` until cancelled. With ``places`` set, a task naming another place is
refused (400, category "Invalid task description").
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import jwt
import orjson
import uvicorn
import websockets
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from schemas import rmf

__all__ = ["RmfServerConfig", "RmfServerSim", "ThreadedServer", "create_rmf_server_app"]

logger = logging.getLogger(__name__)

_TERMINAL = {"completed", "failed", "canceled", "killed"}


@dataclass
class RmfServerConfig:
    fleets: tuple[str, ...] = ("tinyRobot",)
    robots: tuple[str, ...] = ("tinyRobot1", "tinyRobot2")
    jwt_secret: str = "rmf-sim-secret-0123456789abcdef0123"
    push_uri: str | None = None  # e.g. ws://127.0.0.1:8080/_internal?token=...
    step_s: float = 0.2
    cancel_timeout_s: float = 1.0
    dispatch_delay_s: float = 0.0  # answer this late (an accepted task may outlive the client's timeout)
    fail_categories: tuple[str, ...] = ()
    # Places the fleets know (None: any); a delivery or patrol elsewhere is refused, as RMF's dispatcher
    # refuses a task no fleet can reach.
    places: tuple[str, ...] | None = None
    # Categories whose tasks stay underway until cancelled (e.g. an endless patrol).
    hold_categories: tuple[str, ...] = ()


@dataclass
class _Sim:
    config: RmfServerConfig
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    counter: itertools.count[int] = field(default_factory=lambda: itertools.count(0))
    outbox: asyncio.Queue[dict[str, Any]] | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    fleet_of: dict[str, str] = field(default_factory=dict)


def _error(code: int, category: str, detail: str) -> dict[str, Any]:
    return {"code": code, "category": category, "detail": detail}


def _refuse(errors: list[dict[str, Any]]) -> JSONResponse:
    return JSONResponse({"success": False, "errors": errors}, status_code=400)


def _check_description(category: str, description: Any, known: tuple[str, ...] | None) -> str | None:
    places: Any = []
    if category == "delivery":
        for role in ("pickup", "dropoff"):
            part = description.get(role) if isinstance(description, dict) else None
            if not isinstance(part, dict) or not part.get("place"):
                return f"delivery needs {role}.place"
            places.append(part["place"])
    elif category == "patrol":
        places = description.get("places") if isinstance(description, dict) else None
        if not isinstance(places, list) or not places:
            return "patrol needs a non-empty places list"
    elif category == "compose":
        if not isinstance(description, dict) or not isinstance(description.get("phases"), list):
            return "compose needs phases"
    else:
        return f"no fleet supports task category {category!r}"
    unknown = [str(p) for p in places if known is not None and p not in known]
    if unknown:
        return f"no fleet can reach place [{unknown[0]}]"
    return None


async def _pusher(sim: _Sim) -> None:
    """RMF's BroadcastClient: one connection, reconnect every second, messages buffered meanwhile."""
    assert sim.outbox is not None
    pending: dict[str, Any] | None = None
    while True:
        try:
            async with websockets.connect(sim.config.push_uri or "", open_timeout=2) as ws:
                while True:
                    if pending is None:
                        pending = await sim.outbox.get()
                    await ws.send(orjson.dumps(pending).decode())
                    pending = None
        except (OSError, websockets.WebSocketException) as exc:
            logger.debug("RMF sim push connection lost (%s); reconnecting in 1 s", exc)
            await asyncio.sleep(1.0)


def create_rmf_server_app(config: RmfServerConfig) -> FastAPI:
    sim = _Sim(config)

    def push(state: dict[str, Any]) -> None:
        sim.tasks[state["booking"]["id"]] = state
        if sim.outbox is not None:
            sim.outbox.put_nowait({"type": "task_state_update", "data": orjson.loads(orjson.dumps(state))})

    async def lifecycle(task_id: str) -> None:
        robot = config.robots[int(task_id.rsplit("-", 1)[1]) % len(config.robots)]
        state = sim.tasks[task_id]
        fleet = sim.fleet_of.get(task_id, config.fleets[0])
        assignment = {"fleet_name": fleet, "expected_robot_name": robot}
        steps: list[dict[str, Any]] = [
            {"dispatch": {"status": "selected", "assignment": assignment}},
            {
                "dispatch": {"status": "dispatched"},
                "status": "queued",
                "assigned_to": {"group": fleet, "name": robot},
            },
            {"status": "underway", "unix_millis_start_time": 0},
        ]
        if state["category"] not in config.hold_categories:
            final = "failed" if state["category"] in config.fail_categories else "completed"
            steps.append({"status": final, "unix_millis_finish_time": 0})
        for change in steps:
            await asyncio.sleep(config.step_s)
            state = sim.tasks[task_id]
            if state.get("status") in _TERMINAL:
                return
            now = int(time.time() * 1000)  # stamp the change when it happens
            push({**state, **{k: now if k.startswith("unix_millis") else v for k, v in change.items()}})

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        sim.outbox = asyncio.Queue()
        pusher = asyncio.create_task(_pusher(sim)) if config.push_uri else None
        yield
        if pusher is not None:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher

    app = FastAPI(title="RMF API server simulator", lifespan=lifespan)
    app.state.sim = sim

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return False
        try:
            jwt.decode(header[7:], config.jwt_secret, algorithms=["HS256"], options={"verify_aud": False})
        except jwt.PyJWTError:
            return False
        return True

    @app.middleware("http")
    async def auth(request: Request, call_next: Any) -> Any:
        if not authorized(request):
            return JSONResponse({"detail": "Not authenticated"}, status_code=401)
        return await call_next(request)

    @app.post("/tasks/dispatch_task")
    async def dispatch_task(request: Request) -> JSONResponse:
        body = await request.json()
        sim.requests.append(body)
        try:
            rmf.validate(body, "dispatch_task_request")
        except ValueError as exc:
            return _refuse([_error(1, "Invalid request format", str(exc))])
        req = body["request"]
        fleet = req.get("fleet_name")
        if fleet is not None and fleet not in config.fleets:
            return _refuse([_error(2, "Unknown fleet", f"no fleet named [{fleet}]")])
        problem = _check_description(req["category"], req["description"], config.places)
        if problem:
            return _refuse([_error(3, "Invalid task description", problem)])
        if config.dispatch_delay_s:
            await asyncio.sleep(config.dispatch_delay_s)
        task_id = f"{req['category']}.dispatch-{next(sim.counter)}"
        now = int(time.time() * 1000)
        state = {
            "booking": {
                "id": task_id,
                "unix_millis_request_time": req.get("unix_millis_request_time", now),
                "labels": list(req.get("labels") or []),
                "requester": req.get("requester", ""),
                "priority": req.get("priority") or {},
            },
            "category": req["category"],
            "dispatch": {"status": "queued"},
        }
        rmf.validate({"type": "task_state_update", "data": state}, "task_state_update")
        sim.fleet_of[task_id] = fleet or config.fleets[0]
        push(state)
        asyncio.get_running_loop().create_task(lifecycle(task_id))
        answer = {"success": True, "state": state}
        rmf.validate(answer, "dispatch_task_response")
        return JSONResponse(answer)

    @app.post("/tasks/cancel_task")
    async def cancel_task(request: Request) -> JSONResponse:
        body = await request.json()
        sim.requests.append(body)
        try:
            rmf.validate(body, "cancel_task_request")
        except ValueError as exc:
            return _refuse([_error(1, "Invalid request format", str(exc))])
        state = sim.tasks.get(body["task_id"])
        if state is None:
            await asyncio.sleep(config.cancel_timeout_s)  # nobody answers the ROS service call
            return JSONResponse({"detail": "timed out waiting for a response"}, status_code=500)
        if state.get("status") in _TERMINAL:
            return _refuse(
                [_error(4, "Task finished", f"task [{body['task_id']}] is already {state['status']}")]
            )
        push({**state, "status": "canceled", "unix_millis_finish_time": int(time.time() * 1000)})
        return JSONResponse({"success": True})

    @app.get("/tasks")
    async def query_tasks(label: str | None = None) -> list[dict[str, Any]]:
        states = list(sim.tasks.values())
        if label:
            states = [s for s in states if label in (s["booking"].get("labels") or [])]
        return states

    @app.get("/tasks/{task_id}/state")
    async def task_state(task_id: str) -> JSONResponse:
        state = sim.tasks.get(task_id)
        return JSONResponse(state) if state else JSONResponse({"detail": "not found"}, status_code=404)

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """An ASGI app served by uvicorn in a background thread (tests, benches, simulators, and the gateway's
    RMF ingress on a port of its own); ``host`` defaults to 127.0.0.1."""

    def __init__(
        self, app: Any, port: int | None = None, name: str = "asgi", host: str = "127.0.0.1"
    ) -> None:
        self.app = app
        self.host = host
        self.port = port or _free_port()
        self._name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_config=None, access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name=self._name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"{self._name} did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None


class RmfServerSim(ThreadedServer):
    """The simulator served on 127.0.0.1 (``start()`` / ``stop()``)."""

    def __init__(self, config: RmfServerConfig, port: int | None = None, app: FastAPI | None = None) -> None:
        """:param app: serve this (already used) simulator app again, with its tasks: RMF coming back."""
        super().__init__(app or create_rmf_server_app(config), port, "rmf-server-sim")
        self.config = config

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def sim(self) -> _Sim:
        return self.app.state.sim  # type: ignore[no-any-return]

    def token(self, subject: str = "fleetstream", ttl_s: int = 3600) -> str:
        now = int(time.time())
        claims = {"sub": subject, "iat": now, "exp": now + ttl_s}
        return jwt.encode(claims, self.config.jwt_secret, algorithm="HS256")

    def start(self, timeout_s: float = 10.0) -> RmfServerSim:  # type: ignore[override]
        super().start(timeout_s)
        return self
