"""Headless Chromium for browser tests: Debian's chromium started with a fresh profile and a DevTools
port, driven over the Chrome DevTools Protocol (a minimal client on ``websockets``), plus a tiny PNG
reader (stdlib only) to check screenshots."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "local" / "install-chromium.sh"

# Without these (and a fresh --user-data-dir) chromium hangs on a closed network.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # chromium picks a port and writes it to DevToolsActivePort
)


class Chromium:
    """One headless chromium process with its own throw-away profile."""

    def __init__(self, width: int = 1440, height: int = 900) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="fleet-chromium-"))
        self.log_path = self.profile.with_suffix(".log")
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(CHROMIUM), *FLAGS, f"--user-data-dir={self.profile}", f"--window-size={width},{height}",
             "about:blank"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.port = self._devtools_port(timeout=30)

    def _devtools_port(self, timeout: float) -> int:
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited ({self.proc.returncode}):\n{self.log()}")
            if marker.exists():
                first = marker.read_text().splitlines()[:1]
                if first and first[0].isdigit():
                    return int(first[0])
            time.sleep(0.1)
        raise RuntimeError(f"chromium wrote no DevToolsActivePort in {timeout}s:\n{self.log()}")

    def page_ws_url(self) -> str:
        """The DevTools websocket of the first page target (the about:blank tab)."""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            targets = httpx.get(f"http://127.0.0.1:{self.port}/json/list", timeout=5).json()
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.1)
        raise RuntimeError("chromium has no page target")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)


class CdpError(RuntimeError):
    pass


class Cdp:
    """A minimal CDP session on one page target: ``await cdp.send(method, **params)``; events are
    collected in ``events`` (method, params) for inspection."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str) -> Any:
        async with websockets.connect(url, max_size=64 * 2**20, open_timeout=15) as ws:
            cdp = cls(ws)
            try:
                yield cdp
            finally:
                cdp._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await cdp._reader

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                msg = orjson.loads(raw)
                if "id" in msg:
                    fut = self._pending.pop(msg["id"], None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                else:
                    self.events.append((msg.get("method", ""), msg.get("params", {})))
        except websockets.ConnectionClosed as exc:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CdpError(f"devtools connection closed: {exc}"))

    async def send(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        await self._ws.send(orjson.dumps({"id": msg_id, "method": method, "params": params}).decode())
        reply = await asyncio.wait_for(fut, timeout)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (awaiting it if it is a promise)."""
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"page exception: {text}")
        return result["result"].get("value")

    async def screenshot(self, **clip: float) -> bytes:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": False}
        if clip:
            params["clip"] = {"scale": 1, **clip}
        return base64.b64decode((await self.send("Page.captureScreenshot", **params))["data"])


# -------------------------------------------------------------------------------------------- PNG


@dataclass
class Png:
    width: int
    height: int
    channels: int
    rows: list[bytes]  # unfiltered scanlines

    def pixel(self, x: int, y: int) -> tuple[int, ...]:
        row = self.rows[y]
        return tuple(row[x * self.channels : x * self.channels + self.channels])

    def colours(self) -> set[tuple[int, ...]]:
        return {self.pixel(x, y) for y in range(self.height) for x in range(self.width)}


def png_header(data: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) of a PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, depth, colour


def png_idat(data: bytes) -> bytes:
    """The decompressed image data (filtered scanlines) of a PNG."""
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            chunks.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return zlib.decompress(b"".join(chunks))


def decode_png(data: bytes) -> Png:
    """Decode an 8-bit RGB/RGBA non-interlaced PNG (what chromium writes). Pure Python: small images only."""
    width, height, depth, colour = png_header(data)
    if depth != 8 or colour not in (2, 6):
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
    channels = 3 if colour == 2 else 4
    raw = png_idat(data)
    stride = width * channels
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = prev[i]
            c = prev[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        prev = line
    return Png(width, height, channels, rows)
