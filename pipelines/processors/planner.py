"""Planner: the optional gRPC planner of dispatch (optimal batch assignment, routes with ETAs)."""

from __future__ import annotations

import signal
import threading

from pydantic import Field

from pipelines.planner.server import serve
from pipelines.settings import CommonSettings

__all__ = ["Settings", "run"]


class Settings(CommonSettings):
    """Settings of the planner (env prefix FLEET_)."""

    planner_host: str = Field("0.0.0.0", description="Interface the gRPC server binds.")
    planner_port: int = Field(50051, ge=1, le=65535, description="gRPC port.")
    planner_workers: int = Field(4, ge=1, le=64, description="Threads serving requests.")
    planner_grace_s: float = Field(5.0, ge=0, description="Time in-flight calls get on shutdown.")


def run(settings: Settings) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server, _port = serve(settings.planner_host, settings.planner_port, max_workers=settings.planner_workers)
    stop.wait()
    server.stop(settings.planner_grace_s).wait()
