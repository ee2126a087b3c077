"""A protocol-faithful simulator of RMF's fleet-adapter websocket client (rmf_websocket BroadcastClient).

What it does, as RMF does: one connection to ``server_uri``; compact JSON text frames
``{"type": ..., "data": ...}``; never reads replies; a ``fleet_state_update`` every ``period_s`` (1 s) and
a ``task_state_update`` when a task changes; up to 1,000 messages buffered while disconnected (the oldest
dropped); reconnect every second; on (re)connect first re-send the latest fleet state and the latest
state of every task (so the server sees duplicates), then the buffer. Test knobs add what a real adapter
should not send: malformed and unknown frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
import websockets

__all__ = ["FleetAdapterSim", "fleet_state", "robot_state"]

logger = logging.getLogger(__name__)

BUFFER = 1000


def robot_state(
    name: str, t: float, *, battery: float = 0.8, status: str = "idle", task_id: str = ""
) -> dict[str, Any]:
    """An rmf_api_msgs robot_state moving on a circle (t in seconds)."""
    return {
        "name": name,
        "status": status,
        "task_id": task_id,
        "unix_millis_time": int(t * 1000),
        "location": {
            "map": "L1",
            "x": 10 + 5 * math.cos(t / 10),
            "y": 5 + 5 * math.sin(t / 10),
            "yaw": t % 6.28,
        },
        "battery": battery,
        "issues": [],
    }


def fleet_state(fleet: str, robots: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"type": "fleet_state_update", "data": {"name": fleet, "robots": robots}}


@dataclass
class FleetAdapterSim:
    """One fleet adapter's client. ``await run()`` until cancelled; ``stop()`` asks it to end."""

    server_uri: str
    fleet: str
    robots: tuple[str, ...] = ("r1", "r2")
    period_s: float = 1.0
    reconnect_s: float = 1.0
    buffer: deque[str] = field(default_factory=lambda: deque(maxlen=BUFFER))
    sent: int = 0
    connections: int = 0
    _tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    _latest_fleet: str | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False
    _ws: Any = None
    _closing: asyncio.Future[None] | None = None

    # --------------------------------------------------------------- what the adapter publishes
    def publish(self, message: dict[str, Any] | str) -> None:
        """Queue one message (a dict is sent as compact JSON; a str as is)."""
        frame = message if isinstance(message, str) else orjson.dumps(message).decode()
        if isinstance(message, dict):
            if message.get("type") == "fleet_state_update":
                self._latest_fleet = frame
            elif message.get("type") == "task_state_update":
                self._tasks[message["data"]["booking"]["id"]] = message
        self.buffer.append(frame)
        self._wake.set()

    def publish_fleet_state(self, battery: float = 0.8) -> None:
        t = time.time()
        robots = {r: robot_state(r, t + i, battery=battery) for i, r in enumerate(self.robots)}
        self.publish(fleet_state(self.fleet, robots))

    def inject_malformed(self) -> None:
        self.publish('{"type": "fleet_state_update", "data": {"name": 7}}')
        self.publish("{not json")

    def inject_unknown(self) -> None:
        self.publish({"type": "rtls_tag_state_update", "data": {}})

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def reconnect(self) -> None:
        """Drop the connection (a network blip): the client reconnects after ``reconnect_s`` and re-sends
        its latest states. Call it from the client's event loop."""
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close())
            self._wake.set()

    # ------------------------------------------------------------------------------- transport
    def _on_connect(self) -> list[str]:
        frames = [self._latest_fleet] if self._latest_fleet else []
        return frames + [orjson.dumps(m).decode() for m in self._tasks.values()]

    async def _send_loop(self) -> None:
        while not self._stopping:
            try:
                async with websockets.connect(self.server_uri, open_timeout=2, compression=None) as ws:
                    self._ws = ws
                    self.connections += 1
                    for frame in self._on_connect():
                        await ws.send(frame)
                        self.sent += 1
                    while not self._stopping or self.buffer:
                        if not self.buffer:
                            self._wake.clear()
                            await self._wake.wait()
                            continue
                        frame = self.buffer[0]
                        if ws.close_code is not None:  # dropped: the frame stays buffered
                            raise websockets.ConnectionClosedOK(None, None)
                        await ws.send(frame)
                        self.buffer.popleft()
                        self.sent += 1
                    return
            except (TimeoutError, OSError, websockets.WebSocketException) as exc:
                logger.debug(
                    "%s: connection lost (%s); reconnecting in %.1f s", self.fleet, exc, self.reconnect_s
                )
                await asyncio.sleep(self.reconnect_s)

    async def _state_loop(self) -> None:
        while not self._stopping:
            self.publish_fleet_state()
            await asyncio.sleep(self.period_s)

    async def run(self, *, periodic: bool = True) -> None:
        loops = [asyncio.create_task(self._send_loop())]
        if periodic:
            loops.append(asyncio.create_task(self._state_loop()))
        try:
            await loops[0]
        finally:
            for task in loops:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
