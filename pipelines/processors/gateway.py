"""HTTP gateway: REST under /v1, SSE at /v1/stream, probes, metrics, the live dashboard, the RMF websocket.

The Open-RMF websocket ``/_internal`` is served on the HTTP port, or with ``FLEET_RMF_WS_PORT`` > 0 on a port
of its own (with its own producer, ``/healthz`` and ``/metrics``), see ``gateway.rmf_ws``.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from fastapi import FastAPI

from gateway.main import create_app
from gateway.rmf_ws import create_rmf_app
from gateway.settings import GatewaySettings
from pipelines.logsetup import setup_logging
from pipelines.rmf.server import ThreadedServer
from pipelines.settings import load_settings

__all__ = ["Settings", "app_factory", "run"]

logger = logging.getLogger(__name__)

Settings = GatewaySettings


def app_factory() -> FastAPI:
    """The app of one uvicorn worker process (each worker reads its settings once, and sets up its logging, here)."""
    settings = load_settings(GatewaySettings)
    setup_logging(settings.log_level, settings.log_format, processor="gateway")
    return create_app(settings)


def _start_rmf_ingress(settings: GatewaySettings) -> ThreadedServer:
    """``/_internal`` on ``rmf_ws_port``, served by a thread of this (the main) process."""
    token = settings.rmf_ws_token.get_secret_value() if settings.rmf_ws_token else None
    app = create_rmf_app(
        settings.aiokafka_config(),
        settings.topic_prefix,
        token,
        linger_ms=settings.producer_linger_ms,
        max_in_flight=settings.rmf_ws_max_in_flight,
    )
    server = ThreadedServer(app, port=settings.rmf_ws_port, name="rmf-ingress", host=settings.http_host)
    server.start(timeout_s=30)
    logger.info(
        "RMF websocket on ws://%s:%d/_internal?token=... (metrics at /metrics there)%s",
        settings.http_host,
        settings.rmf_ws_port,
        "" if token else "; FLEET_RMF_WS_TOKEN is unset, so every client is refused",
    )
    return server


def run(settings: GatewaySettings) -> None:
    logger.info(
        "gateway on http://%s:%d/ (workers: %d)",
        settings.http_host,
        settings.http_port,
        settings.http_workers,
    )
    rmf_ingress = _start_rmf_ingress(settings) if settings.rmf_ws_enabled and settings.rmf_ws_port else None
    try:
        _serve(settings)
    finally:
        if rmf_ingress is not None:
            rmf_ingress.stop()


def _serve(settings: GatewaySettings) -> None:
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
