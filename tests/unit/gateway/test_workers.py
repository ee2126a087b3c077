"""`fleet run gateway --workers N`: the option reaches the gateway's settings and its uvicorn call."""

from __future__ import annotations

from typing import Any

import pytest

import pipelines.commands.run as run_command
import pipelines.processors.gateway as gateway_processor
from pipelines.cli import main


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """What uvicorn.run would have been called with (nothing is served)."""
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(gateway_processor.uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    monkeypatch.setattr(gateway_processor, "create_app", lambda settings: ("app", settings))
    monkeypatch.setattr(run_command, "setup_logging", lambda *a, **kw: None)  # leave the test's logging be
    monkeypatch.setenv("FLEET_RMF_WS_PORT", "0")
    return calls


def test_workers_option_runs_that_many_uvicorn_workers_of_the_app_factory(served, monkeypatch) -> None:
    monkeypatch.setenv("FLEET_HTTP_WORKERS", "1")  # the option wins over the environment
    assert main(["run", "gateway", "--workers", "3"]) == 0
    [(app, kw)] = served
    assert app == "pipelines.processors.gateway:app_factory"
    assert kw["workers"] == 3 and kw["factory"] is True


def test_without_the_option_one_process_serves_the_app(served, monkeypatch) -> None:
    monkeypatch.delenv("FLEET_HTTP_WORKERS", raising=False)
    assert main(["run", "gateway"]) == 0
    [(app, kw)] = served
    assert app[0] == "app" and app[1].http_workers == 1
    assert "workers" not in kw


def test_workers_is_refused_for_processors_that_scale_by_replicas(capsys) -> None:
    assert main(["run", "timers", "--workers", "2"]) == 2
    assert "--workers is for the gateway" in capsys.readouterr().err


def test_workers_must_be_positive(capsys) -> None:
    assert main(["run", "gateway", "--workers", "0"]) == 2
    assert "FLEET_HTTP_WORKERS" in capsys.readouterr().err
