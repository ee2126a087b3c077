"""The gateway benchmark's load generator (wrk + its Lua script): what it sends and what it reports."""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from typing import Any

import pytest
import uvicorn

from pipelines.bench._wrk import find_wrk, run_wrk

pytestmark = pytest.mark.integration


class _Recorder:
    """An ASGI app that notes each request's headers and body and answers 202 (every 7th: 429)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[bytes, bytes], bytes]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.requests.append((dict(scope["headers"]), body))
        status = 429 if len(self.requests) % 7 == 0 else 202
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"{}"})


@pytest.fixture
def recorder_url():
    app = _Recorder()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield f"http://127.0.0.1:{port}", app
    server.should_exit = True
    thread.join(10)


def test_wrk_sends_unique_idempotency_keys_and_reports_statuses(recorder_url) -> None:
    wrk = find_wrk()
    assert wrk is not None, "wrk is not installed and find_wrk could not install Debian's (needs root)"
    url, app = recorder_url
    body = '{"site_id":"s1"}'
    result = run_wrk(
        wrk, url, "/v1/tasks", body=body, authorization="Bearer t0k", run_id="r1",
        seconds=2, connections=4, threads=2,
    )  # fmt: skip
    assert result.requests > 50
    # What wrk counted is what the server answered (the last requests may still have been in flight).
    assert sum(result.statuses.values()) == result.requests
    assert set(result.statuses) == {202, 429}
    assert abs(result.count(429) - result.requests / 7) <= 2 + result.requests * 0.02
    assert len(app.requests) >= result.requests
    keys = Counter(headers[b"idempotency-key"] for headers, _ in app.requests)
    assert len(keys) == len(app.requests), "an Idempotency-Key was sent twice"
    assert all(k.startswith(b"r1-") for k in keys)
    assert {k.split(b"-")[1] for k in keys} == {b"0", b"1"}  # both wrk threads, told apart
    for headers, sent in app.requests:
        assert headers[b"authorization"] == b"Bearer t0k"
        assert headers[b"content-type"] == b"application/json"
        assert sent == body.encode()
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms
    assert result.rate == pytest.approx(result.requests / result.seconds)
