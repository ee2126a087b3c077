"""The Open-RMF fleet-adapter websocket at ``/_internal``: a drop-in for rmf-web's endpoint of that name.

RMF's ``BroadcastClient`` (fleet adapters, the task dispatcher) connects to its ``server_uri``, sends no
headers and never reads replies: one compact JSON text frame per message, ``{"type": ..., "data": ...}``.
Access is therefore controlled by a token inside the URI, which an adapter's ``server_uri`` can carry:
``ws://gateway:8080/_internal?token=<token>`` or ``ws://gateway:8080/_internal/<token>``. Without the right
token the handshake is refused (close 1008, i.e. HTTP 403).

Each frame is validated against the vendored rmf_api_msgs schema of its type and produced, as the bytes
received, to:

====================  =================  =========================
type                  topic              key
====================  =================  =========================
fleet_state_update    rmf.fleet_states   ``data.name`` (fleet)
task_state_update     rmf.task_states    ``data.booking.id``
task_log_update       rmf.logs           ``data.task_id``
fleet_log_update      rmf.logs           ``data.name`` (fleet)
====================  =================  =========================

An invalid frame (not JSON, not an object, no string ``type``, schema errors) goes to ``dlq.gateway`` with
the reason in the dead-letter headers and the connection stays open; a frame of another type is ignored
and counted. Nothing is answered. Duplicates (RMF re-sends on every reconnect) are produced as they come
and removed downstream (see ``docs/rmf.md``).

Produces are pipelined: each connection keeps at most ``max_in_flight`` unacknowledged records and waits
for all of them when it closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from fastapi import APIRouter, FastAPI, Response, WebSocket, WebSocketDisconnect
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from schemas import catalog, rmf

__all__ = [
    "FRAME_TOPICS",
    "RmfIngest",
    "RmfWsMetrics",
    "create_rmf_app",
    "frame_key",
    "router",
]

logger = logging.getLogger(__name__)

#: Accepted message type -> catalog topic.
FRAME_TOPICS: dict[str, str] = {
    "fleet_state_update": catalog.RMF_FLEET_STATES,
    "task_state_update": catalog.RMF_TASK_STATES,
    "task_log_update": catalog.RMF_LOGS,
    "fleet_log_update": catalog.RMF_LOGS,
}
POLICY_VIOLATION = 1008


class RmfWsMetrics:
    """Counters of the websocket, in the gateway's metrics registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.frames = Counter(
            "fleet_gateway_rmf_frames_total",
            "RMF websocket frames by message type and outcome (produced, dead_lettered, ignored)",
            ["type", "outcome"],
            registry=registry,
        )
        self.produce_errors = Counter(
            "fleet_gateway_rmf_produce_errors_total",
            "RMF frames whose produce failed after being accepted",
            registry=registry,
        )
        self.refused = Counter(
            "fleet_gateway_rmf_refused_total", "RMF websocket handshakes refused (token)", registry=registry
        )
        self.connections = Gauge(
            "fleet_gateway_rmf_connections", "Open RMF websocket connections", registry=registry
        )


class _FastValidators:
    """``is_valid`` through jsonschema_rs when it is installed (about 100x faster than the pure-Python
    validator); errors are always explained by :mod:`schemas.rmf`, so both agree on what is invalid."""

    def __init__(self) -> None:
        self._rs: dict[str, Any] = {}
        try:
            import jsonschema_rs  # type: ignore[import-not-found]
        except ImportError:  # pragma: no cover - depends on the environment
            logger.info("jsonschema_rs not installed; validating RMF frames with jsonschema")
            return
        resources: list[tuple[str, Any]] = []
        for path in sorted(rmf.RMF_SCHEMA_DIR.glob("*.json")):
            contents = json.loads(path.read_text())
            url = rmf._BASE_URL + path.name
            resources.append((url, contents))
            if contents.get("$id") and contents["$id"] != url:
                resources.append((contents["$id"], contents))
        registry = jsonschema_rs.Registry(resources)
        for name in FRAME_TOPICS:
            schema = json.loads((rmf.RMF_SCHEMA_DIR / f"{name}.json").read_text())
            self._rs[name] = jsonschema_rs.validator_for(schema, registry=registry)

    def error(self, payload: Any, name: str) -> str | None:
        """None if ``payload`` is a valid ``name``, else the most relevant error."""
        fast = self._rs.get(name)
        if fast is not None and fast.is_valid(payload):
            return None
        try:
            rmf.validate(payload, name)
        except ValueError as exc:
            return str(exc)
        return None


def frame_key(kind: str, data: Any) -> str | None:
    """The record key of a valid frame (see the module table); None when the message has no such field."""
    if not isinstance(data, dict):
        return None
    if kind == "task_state_update":
        booking = data.get("booking")
        value = booking.get("id") if isinstance(booking, dict) else None
    elif kind == "task_log_update":
        value = data.get("task_id")
    else:
        value = data.get("name")
    return value if isinstance(value, str) and value else None


@dataclass
class _Connection:
    peer: str
    pending: deque[asyncio.Future[Any]] = field(default_factory=deque)


class RmfIngest:
    """Validates RMF frames and produces them; shared by every connection of one app.

    :param producer: a started aiokafka producer (the gateway's, or one of its own).
    :param topic_prefix: environment prefix of every topic.
    :param max_in_flight: unacknowledged records per connection before it waits for the oldest.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topic_prefix: str,
        metrics: RmfWsMetrics,
        *,
        max_in_flight: int = 1000,
    ) -> None:
        self._producer = producer
        self._prefix = topic_prefix
        self.metrics = metrics
        self._max_in_flight = max_in_flight
        self._validators = _FastValidators()

    def connection(self, peer: str) -> _Connection:
        return _Connection(peer)

    async def handle(self, conn: _Connection, frame: str | bytes) -> str:
        """Ingest one frame. Returns the outcome: ``produced``, ``dead_lettered`` or ``ignored``."""
        raw = frame.encode() if isinstance(frame, str) else frame
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return await self._dead_letter(conn, raw, "(none)", f"not JSON: {exc}", "DecodeError")
        kind = message.get("type") if isinstance(message, dict) else None
        if not isinstance(kind, str):
            return await self._dead_letter(
                conn,
                raw,
                "(none)",
                "not an RMF message: expected a JSON object with a string type",
                "DecodeError",
            )
        topic = FRAME_TOPICS.get(kind)
        if topic is None:
            self.metrics.frames.labels("unknown", "ignored").inc()
            logger.debug("ignored RMF message of type %r from %s", kind[:64], conn.peer)
            return "ignored"
        error = self._validators.error(message, kind)
        if error is not None:
            return await self._dead_letter(conn, raw, kind, error, "ValidationError", topic)
        key = frame_key(kind, message.get("data"))
        await self._send(
            conn,
            self._prefix + topic,
            raw,
            key.encode() if key is not None else None,
            [("fleet-rmf-type", kind.encode())],
        )
        self.metrics.frames.labels(kind, "produced").inc()
        return "produced"

    async def _dead_letter(
        self, conn: _Connection, raw: bytes, kind: str, reason: str, error_type: str, topic: str = ""
    ) -> str:
        headers = [
            ("fleet-dlq-error", reason.encode()[:4000]),
            ("fleet-dlq-error-type", error_type.encode()),
            ("fleet-dlq-topic", (self._prefix + topic if topic else "").encode()),
            ("fleet-dlq-partition", b"-1"),
            ("fleet-dlq-offset", b"-1"),
            ("fleet-dlq-processor", b"gateway"),
            ("fleet-dlq-at", str(int(time.time() * 1000)).encode()),
            ("fleet-rmf-peer", conn.peer.encode()),
        ]
        await self._send(conn, f"{self._prefix}dlq.gateway", raw, None, headers)
        self.metrics.frames.labels(kind if kind in FRAME_TOPICS else "(none)", "dead_lettered").inc()
        logger.warning("dead-lettered RMF frame from %s: %s", conn.peer, reason, extra={"reason": reason})
        return "dead_lettered"

    async def _send(
        self,
        conn: _Connection,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        future = await self._producer.send(topic, value=value, key=key, headers=headers)
        future.add_done_callback(self._on_delivery)
        conn.pending.append(future)
        while len(conn.pending) > self._max_in_flight or (conn.pending and conn.pending[0].done()):
            with contextlib.suppress(Exception):  # counted by _on_delivery
                await conn.pending.popleft()

    def _on_delivery(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.metrics.produce_errors.inc()
            logger.error(
                "RMF frame could not be produced: %s", None if future.cancelled() else future.exception()
            )

    async def drain(self, conn: _Connection) -> None:
        """Wait until every record of ``conn`` is acknowledged (or failed)."""
        pending, conn.pending = list(conn.pending), deque()
        await asyncio.gather(*pending, return_exceptions=True)


def _token_ok(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


async def _serve(
    websocket: WebSocket, ingest_of: Callable[[WebSocket], RmfIngest], expected: str | None, token: str | None
) -> None:
    ingest = ingest_of(websocket)
    if not _token_ok(expected, token):
        ingest.metrics.refused.inc()
        logger.warning("RMF websocket refused: missing or wrong token", extra={"peer": str(websocket.client)})
        await websocket.close(code=POLICY_VIOLATION)
        return
    await websocket.accept()
    peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "unknown"
    conn = ingest.connection(peer)
    ingest.metrics.connections.inc()
    logger.info("RMF client connected from %s", peer)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes") or b""
            await ingest.handle(conn, frame)
    except WebSocketDisconnect:
        pass
    finally:
        ingest.metrics.connections.dec()
        await ingest.drain(conn)
        logger.info("RMF client %s disconnected", peer)


def _app_ingest(websocket: WebSocket) -> RmfIngest:
    """The ingest of the full gateway: built on first use over the gateway's own producer."""
    state = websocket.app.state
    producer = state.services.producer.client
    ingest: RmfIngest | None = getattr(state, "rmf_ingest", None)
    if ingest is None or ingest._producer is not producer:  # a new lifespan starts a new producer
        if not hasattr(state, "rmf_metrics"):
            state.rmf_metrics = RmfWsMetrics(state.metrics.registry)
        ingest = RmfIngest(
            producer,
            state.settings.topic_prefix,
            state.rmf_metrics,
            max_in_flight=state.settings.rmf_ws_max_in_flight,
        )
        state.rmf_ingest = ingest
    return ingest


def _expected_token(websocket: WebSocket) -> str | None:
    secret = websocket.app.state.settings.rmf_ws_token
    return secret.get_secret_value() if secret is not None else None


router = APIRouter(tags=["rmf"])


@router.websocket("/_internal")
async def rmf_internal(websocket: WebSocket, token: str | None = None) -> None:
    """RMF fleet adapters and dispatcher: ``server_uri`` ``ws://host:port/_internal?token=<token>``."""
    await _serve(websocket, _app_ingest, _expected_token(websocket), token)


@router.websocket("/_internal/{path_token}")
async def rmf_internal_path(websocket: WebSocket, path_token: str) -> None:
    """The same endpoint with the token in the path: ``ws://host:port/_internal/<token>``."""
    await _serve(websocket, _app_ingest, _expected_token(websocket), path_token)


def create_rmf_app(
    kafka_config: dict[str, Any],
    topic_prefix: str,
    token: str | None,
    *,
    linger_ms: int = 5,
    max_in_flight: int = 1000,
    registry: CollectorRegistry | None = None,
) -> FastAPI:
    """A standalone app serving only ``/_internal`` with a producer of its own (the gateway's
    ``rmf_ws_port``: RMF traffic kept off the REST port), plus ``/healthz`` and ``/metrics`` (its own
    counters, see :class:`RmfWsMetrics`). ``token`` None refuses every client."""
    registry = registry or CollectorRegistry()
    metrics = RmfWsMetrics(registry)
    holder: dict[str, RmfIngest] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(
            **kafka_config,
            acks="all",
            enable_idempotence=True,
            linger_ms=linger_ms,
            client_id="fleet-gateway-rmf",
        )
        await producer.start()
        holder["ingest"] = RmfIngest(producer, topic_prefix, metrics, max_in_flight=max_in_flight)
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(title="fleetstream RMF ingress", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.rmf_metrics = metrics

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    def ingest_of(_ws: WebSocket) -> RmfIngest:
        return holder["ingest"]

    @app.websocket("/_internal")
    async def internal(websocket: WebSocket) -> None:
        await _serve(websocket, ingest_of, token, websocket.query_params.get("token"))

    @app.websocket("/_internal/{path_token}")
    async def internal_path(websocket: WebSocket, path_token: str) -> None:
        await _serve(websocket, ingest_of, token, path_token)

    return app
