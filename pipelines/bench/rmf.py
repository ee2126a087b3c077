"""Benchmark: RMF frames ingested by the ``/_internal`` websocket, against a raw produce loop.

10 fleet-adapter connections each send their share of pre-encoded ``fleet_state_update`` frames (two robots
each) as fast as the websocket allows; the rate is frames / (first send -> the last record acknowledged in
Kafka, counted from the topic's high watermarks, so a lost frame would show). Baseline: one aiokafka
producer sending the same frames to the same kind of topic (no websocket, no JSON parse, no validation).
The server runs in a thread of this process: the load generator and the server share one CPU and the GIL,
so the number is a floor. Goal: >= 5,000 frames/s with none lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from typing import Any

import orjson
import websockets
from aiokafka import AIOKafkaProducer
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from gateway.rmf_ws import create_rmf_app
from pipelines.rmf import ThreadedServer, fleet_state, robot_state
from pipelines.settings import CommonSettings, load_settings

__all__ = ["run"]

logger = logging.getLogger(__name__)

CONNECTIONS = 10
FRAMES = int(os.environ.get("FLEET_BENCH_RMF_FRAMES", "30000"))
GOAL = 5000
TOKEN = "bench-rmf-token-0123456789"
PARTITIONS = 3


def _frames(n: int) -> list[list[str]]:
    per = n // CONNECTIONS
    out = []
    for c in range(CONNECTIONS):
        fleet = f"fleet{c}"
        frames = []
        for i in range(per):
            robots = {
                f"{fleet}-r{r}": robot_state(f"{fleet}-r{r}", 1_760_000_000 + i * 0.01) for r in range(2)
            }
            frames.append(orjson.dumps(fleet_state(fleet, robots)).decode())
        out.append(frames)
    return out


def _count(settings: CommonSettings, topic: str) -> int:
    consumer = Consumer({**settings.kafka_client_config(), "group.id": uuid.uuid4().hex})
    try:
        total = 0
        for p in range(PARTITIONS):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high
        return total
    finally:
        consumer.close()


async def _wait_for(settings: CommonSettings, topic: str, expected: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    seen = 0
    while time.monotonic() < deadline:
        seen = await asyncio.to_thread(_count, settings, topic)
        if seen >= expected:
            break
        await asyncio.sleep(0.05)
    return seen


async def _websocket_load(settings: CommonSettings, port: int, frames: list[list[str]]) -> tuple[float, int]:
    uri = f"ws://127.0.0.1:{port}/_internal?token={TOKEN}"
    connections = [await websockets.connect(uri, compression=None) for _ in frames]
    started = time.perf_counter()

    async def send(ws: Any, mine: list[str]) -> None:
        for frame in mine:
            await ws.send(frame)

    await asyncio.gather(*(send(ws, mine) for ws, mine in zip(connections, frames, strict=True)))
    expected = sum(len(f) for f in frames)
    seen = await _wait_for(settings, settings.topic("rmf.fleet_states"), expected)
    elapsed = time.perf_counter() - started
    for ws in connections:
        await ws.close()
    return elapsed, seen


async def _raw_load(settings: CommonSettings, topic: str, frames: list[list[str]]) -> tuple[float, int]:
    producer = AIOKafkaProducer(
        **settings.aiokafka_config(), acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        for c, mine in enumerate(frames):
            key = f"fleet{c}".encode()
            for frame in mine:
                futures.append(await producer.send(topic, value=frame.encode(), key=key))
        await asyncio.gather(*futures)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return elapsed, await asyncio.to_thread(_count, settings, topic)


def _row(name: str, value: float, unit: str, baseline: float | None, goal: str) -> dict[str, Any]:
    ratio = round(value / baseline, 3) if baseline else None
    return {"name": name, "value": round(value, 1), "unit": unit, "baseline": baseline and round(baseline, 1),
            "ratio": ratio, "goal": goal}  # fmt: skip


def run() -> list[dict[str, Any]]:
    """Run the benchmark; returns result rows (name, value, unit, baseline, ratio, goal)."""
    base = load_settings(CommonSettings, environment="test")
    settings = base.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}."})
    admin = AdminClient(settings.kafka_client_config())
    topics = [settings.topic(t) for t in ("rmf.fleet_states", "rmf.task_states", "rmf.logs", "dlq.gateway")]
    raw_topic = settings.topic("raw.rmf.fleet_states")
    for fut in admin.create_topics(
        [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1) for t in [*topics, raw_topic]]
    ).values():
        fut.result(30)
    frames = _frames(FRAMES)
    expected = sum(len(f) for f in frames)
    app = create_rmf_app(
        settings.aiokafka_config(), settings.topic_prefix, TOKEN, registry=CollectorRegistry()
    )
    server = ThreadedServer(app, name="bench-rmf-ingress")
    server.start()
    try:
        ws_elapsed, ws_seen = asyncio.run(_websocket_load(settings, server.port, frames))
    finally:
        server.stop()
    raw_elapsed, raw_seen = asyncio.run(_raw_load(settings, raw_topic, frames))
    for fut in admin.delete_topics([*topics, raw_topic]).values():
        try:
            fut.result(30)
        except Exception as exc:  # cleanup only
            logger.warning("could not delete a bench topic: %s", exc)
    ws_rate, raw_rate = ws_seen / ws_elapsed, raw_seen / raw_elapsed
    logger.info(
        "rmf ws: %d/%d frames in %.2f s; raw: %d in %.2f s",
        ws_seen,
        expected,
        ws_elapsed,
        raw_seen,
        raw_elapsed,
    )
    return [
        _row(
            "rmf.ws_ingest", ws_rate, "frames/s", raw_rate, f">= {GOAL:,} frames/s, {CONNECTIONS} connections"
        ),
        _row("rmf.ws_lost", float(expected - ws_seen), "frames", 0.0, "0 lost"),
    ]
