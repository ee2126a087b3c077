"""``deploy/local/install-influxd.sh --background``: what ``make test`` runs before the tests.

The build itself (minutes) is exercised by ``make test`` on a machine without the cached binary; these
check the paths that decide whether it starts, with a cache directory of the test's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "deploy" / "local" / "install-influxd.sh"


def _run(cache: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLEET_CACHE_DIR": str(cache), "INFLUXD_VERSION": "v1.12.4"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [shutil.which("bash") or "bash", str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_cached_binary_is_printed_and_nothing_is_built(tmp_path: Path) -> None:
    binary = tmp_path / "bin" / "influxd-1.12.4"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    done = _run(tmp_path, "--background")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(binary)
    assert not (tmp_path / "influxd-background.log").exists()


def test_background_returns_at_once_and_the_build_reports_to_its_log(tmp_path: Path) -> None:
    # A PATH without Go and cargo: the detached build stops at its first check, and says so in its log.
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("bash", "nohup", "nice", "setsid", "mkdir", "dirname", "flock", "mktemp"):
        found = shutil.which(tool)
        assert found, tool
        (tools / tool).symlink_to(found)
    cache = tmp_path / "cache"
    started = time.monotonic()
    done = _run(cache, "--background", path=str(tools))
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    log = cache / "influxd-background.log"
    assert "in the background" in done.stderr and str(log) in done.stderr
    deadline = time.monotonic() + 30
    while "ERROR" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "is needed to build influxd" in log.read_text()  # Go or cargo, whichever is missing first
    assert not (cache / "bin" / "influxd-1.12.4").exists()


def test_an_unknown_argument_is_named(tmp_path: Path) -> None:
    done = _run(tmp_path, "--foreground")
    assert done.returncode == 1
    assert "unknown argument --foreground" in done.stderr
