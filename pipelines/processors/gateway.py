"""HTTP gateway: REST under /v1, SSE at /v1/stream, probes, metrics and the live dashboard (uvicorn)."""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from gateway.main import create_app
from gateway.settings import GatewaySettings
from pipelines.settings import load_settings

__all__ = ["Settings", "app_factory", "run"]

logger = logging.getLogger(__name__)

Settings = GatewaySettings


def app_factory() -> FastAPI:
    """The app of one uvicorn worker process (each worker reads its settings once, here)."""
    return create_app(load_settings(GatewaySettings))


def run(settings: GatewaySettings) -> None:
    logger.info(
        "gateway on http://%s:%d/ (workers: %d)",
        settings.http_host,
        settings.http_port,
        settings.http_workers,
    )
    common: dict[str, Any] = {
        "host": settings.http_host,
        "port": settings.http_port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 5,
        "proxy_headers": True,
    }
    if settings.http_workers > 1:
        uvicorn.run(
            "pipelines.processors.gateway:app_factory", factory=True, workers=settings.http_workers, **common
        )
    else:
        uvicorn.run(create_app(settings), **common)
