"""A small SSE client for the tests: reads frames from /v1/stream until told to stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return orjson.loads(self.data)


def parse(block: str) -> Frame:
    frame = Frame()
    data: list[str] = []
    for line in block.split("\n"):
        if line.startswith(":"):
            frame.comments.append(line[1:].strip())
        elif line.startswith("id:"):
            frame.id = line[3:].strip()
        elif line.startswith("event:"):
            frame.event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
    frame.data = "\n".join(data)
    return frame


class Stream:
    """``async with Stream(url, ...) as s``: ``await s.next_event()`` or ``await s.collect(n)``."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        params: dict[str, Any] | None = None,
        last_event_id: str | None = None,
        via_query: bool = False,
    ) -> None:
        self.url = url
        self.params = dict(params or {})
        self.headers = {"Accept": "text/event-stream"}
        if via_query:
            self.params["access_token"] = token
        else:
            self.headers["Authorization"] = f"Bearer {token}"
        if last_event_id:
            self.headers["Last-Event-ID"] = last_event_id
        self.last_id: str | None = last_event_id
        self.status: int | None = None
        self._frames: asyncio.Queue[Frame] = asyncio.Queue()

    async def __aenter__(self) -> Stream:
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(30, read=None))
        self._cm = self._client.stream(
            "GET", f"{self.url}/v1/stream", params=self.params, headers=self.headers
        )
        self.response = await self._cm.__aenter__()
        self.status = self.response.status_code
        if self.status == 200:
            self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        buffer = ""
        async for chunk in self.response.aiter_text():
            buffer += chunk
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                frame = parse(block)
                if frame.id:
                    self.last_id = frame.id
                await self._frames.put(frame)

    async def next_frame(self, timeout: float = 10) -> Frame:
        return await asyncio.wait_for(self._frames.get(), timeout)

    async def next_event(self, timeout: float = 10) -> Frame:
        """The next frame that carries data (skips heartbeats and the hello comment)."""
        while True:
            frame = await self.next_frame(timeout)
            if frame.event:
                return frame

    async def collect(self, n: int, timeout: float = 10) -> list[Frame]:
        return [await self.next_event(timeout) for _ in range(n)]

    async def quiet(self, seconds: float) -> list[Frame]:
        """Events that arrive within ``seconds`` (expecting none, usually)."""
        got = []
        deadline = asyncio.get_running_loop().time() + seconds
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            try:
                frame = await self.next_frame(left)
            except TimeoutError:
                break
            if frame.event:
                got.append(frame)
        return got

    async def __aexit__(self, *exc: object) -> None:
        if hasattr(self, "_reader"):
            self._reader.cancel()
        await self._cm.__aexit__(None, None, None)
        await self._client.aclose()
