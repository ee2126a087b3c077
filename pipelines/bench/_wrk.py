"""wrk, the HTTP load generator the gateway benchmark drives (C, one thread: it leaves the cores to the servers).

:func:`find_wrk` finds it on the PATH or installs Debian's package once (as root, ``apt-get``); :func:`run_wrk`
runs one measurement with a Lua script that sends ``POST`` requests with the body and headers given, a
unique ``Idempotency-Key`` per request, and prints one parseable summary line (statuses, errors, latency
percentiles) that :func:`run_wrk` turns into a :class:`WrkResult`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WrkResult", "find_wrk", "run_wrk"]

logger = logging.getLogger(__name__)

# One Lua state per wrk thread: `tid` (set in setup) and `counter` make the Idempotency-Key unique per request.
_SCRIPT = r"""
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  statuses = {}
  run = os.getenv("BENCH_RUN")
  path = os.getenv("BENCH_PATH")
  body = os.getenv("BENCH_BODY")
  headers = {["Content-Type"] = "application/json"}
  local auth = os.getenv("BENCH_AUTHORIZATION")
  if auth and auth ~= "" then headers["Authorization"] = auth end
end

function request()
  counter = counter + 1
  headers["Idempotency-Key"] = run .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", path, headers, body)
end

function response(status, hdrs, resp_body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local parts = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do parts[code] = (parts[code] or 0) + n end
  end
  local codes = {}
  for code, n in pairs(parts) do table.insert(codes, string.format('"%d":%d', code, n)) end
  local e = summary.errors
  io.write(string.format(
    'BENCH-RESULT {"requests":%d,"duration_us":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, table.concat(codes, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests, answers by status code, socket errors and latency percentiles."""

    requests: int
    seconds: float
    statuses: dict[int, int]
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)


def find_wrk() -> str | None:
    """Path of ``wrk``; installs Debian's package once when missing and we are root. None if unavailable."""
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "wrk"]
    logger.info("installing wrk (Debian package, once)")
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            logger.warning("cannot install wrk: %s", done.stderr.strip()[-500:])
    return shutil.which("wrk")


def run_wrk(
    wrk: str,
    url: str,
    path: str,
    *,
    body: str,
    authorization: str | None,
    run_id: str,
    seconds: float,
    connections: int,
    threads: int = 1,
    timeout_s: int = 10,
) -> WrkResult:
    """One measurement: ``connections`` keep-alive connections sending ``POST path`` for ``seconds``."""
    with tempfile.TemporaryDirectory(prefix="fleet-wrk-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(_SCRIPT)
        env = {
            **os.environ,
            "BENCH_RUN": run_id,
            "BENCH_PATH": path,
            "BENCH_BODY": body,
            "BENCH_AUTHORIZATION": authorization or "",
        }
        cmd = [
            wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={timeout_s}s",
            "-s",
            str(script),
            url,
        ]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH-RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr[-1000:]}")
    raw = json.loads(line.removeprefix("BENCH-RESULT "))
    return WrkResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        statuses={int(k): v for k, v in raw["statuses"].items()},
        errors=raw["errors"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
    )
