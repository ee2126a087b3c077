"""deploy/local/stack.sh keeps its promises: idempotent up, honest status, a clear error on a busy port."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

STACK = Path(__file__).resolve().parents[3] / "deploy" / "local" / "stack.sh"


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(STACK), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_up_twice_is_a_no_op_and_status_reports_every_service():
    t0 = time.monotonic()
    result = _run("up")
    assert result.returncode == 0, result.stderr
    assert "already running" in result.stderr
    assert time.monotonic() - t0 < 10
    status = _run("status")
    rows = {line.split()[0]: line.split() for line in status.stdout.splitlines()[1:]}
    core = {"kafka", "registry", "postgres", "redis", "influxdb", "mosquitto"}
    # influxdb2 (the /api/v2/write server) and cluster (the drills' three-node Kafka) are optional:
    # reported, started only when named
    assert set(rows) == core | {"influxdb2", "cluster"}
    assert all(rows[name][2] == "up" for name in core), status.stdout
    assert rows["influxdb2"][2] in {"up", "down", "starting"}, status.stdout
    assert rows["cluster"][2] in {"up", "down"}, status.stdout


def test_a_port_held_by_another_process_is_refused_with_a_clear_message(tmp_path):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        t0 = time.monotonic()
        result = _run("up", "redis", env={"FLEET_REDIS_PORT": str(port), "FLEET_LOCAL_DIR": str(tmp_path)})
        assert result.returncode != 0
        assert f"port {port} for redis is already in use" in result.stderr
        assert "FLEET_REDIS_PORT" in result.stderr
        assert time.monotonic() - t0 < 10, "a busy port must fail fast, not hang"
    finally:
        holder.close()


def test_unknown_service_is_named():
    result = _run("up", "zookeeper")
    assert result.returncode != 0
    assert "unknown service 'zookeeper'" in result.stderr
