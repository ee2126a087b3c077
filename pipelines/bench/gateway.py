"""Benchmark: the gateway over HTTP, against a trivial FastAPI endpoint served the same way, in the same run.

1. ``POST /v1/tasks`` (JWT check, Redis rate limit, Avro encode, idempotent produce with acks=all awaited,
   audit produce): requests/s and p99 latency, from an async httpx client with bounded concurrency.
   Baseline: ``POST /ping`` of a one-route FastAPI app under the same uvicorn settings (1 worker, h11).
2. SSE delivery latency with 1,000 concurrent subscribers of one tenant: robot.status records are produced
   with their send time in ``last_seen_at``; each subscriber notes when the event arrives. p99 over all
   deliveries. Baseline: the same records read by one plain aiokafka consumer (broker + codec latency).

Everything (servers, load, broker) shares this machine's cores; the numbers are a floor, not a ceiling.
Goals: >= 2,000 req/s with p99 < 50 ms; SSE p99 < 250 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import FastAPI

from gateway.auth import issue_token
from gateway.producer import OUTPUT_TOPICS
from gateway.sse import STREAM_TOPICS
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.models import Pose, RobotState, RobotStatus, StatusReason
from schemas.registry import RegistryClient

__all__ = ["baseline_app", "run"]

logger = logging.getLogger(__name__)

REQUESTS = int(os.environ.get("FLEET_BENCH_GATEWAY_REQUESTS", "4000"))
CONCURRENCY = 32
SUBSCRIBERS = int(os.environ.get("FLEET_BENCH_GATEWAY_SUBSCRIBERS", "1000"))
SSE_EVENTS = 40
SECRET = "bench-secret-0123456789abcdef0123456789"


def baseline_app() -> FastAPI:
    """One trivial route: what FastAPI + uvicorn cost on their own."""
    app = FastAPI()

    @app.post("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return app


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(target: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"server exited: {err}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(url + path, timeout=1)
            if r.status_code == 200 or (path == "/docs" and r.status_code < 500):
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _load(
    url: str, path: str, body: dict[str, Any], headers: dict[str, str], n: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                start = time.perf_counter()
                r = await client.post(path, json=body, headers={**headers, "Idempotency-Key": f"bench-{i}"})
                latencies.append(time.perf_counter() - start)
                if r.status_code >= 300:
                    raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:200]}")

        for _ in range(200):  # warm-up
            await client.post(path, json=body, headers={**headers, "Idempotency-Key": "warm"})
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        elapsed = time.perf_counter() - start
    return n / elapsed, latencies


async def _subscriber(
    port: int,
    token: str,
    ready: asyncio.Event,
    counter: list[int],
    out: list[float],
    want: int,
    stop: asyncio.Event,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    writer.write(
        f"GET /v1/stream?types=robot.status HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await writer.drain()
    status = await reader.readline()
    if b" 200 " not in status:
        raise RuntimeError(f"stream refused: {status!r}")
    counter[0] += 1
    if counter[0] >= SUBSCRIBERS:
        ready.set()
    got = 0
    try:
        while got < want and not stop.is_set():
            line = await reader.readline()
            if not line:
                break
            # The JSON of a robot.status event carries its send time in last_seen_at.
            idx = line.find(b'"last_seen_at":')
            if idx >= 0:
                end = line.find(b",", idx)
                sent = int(line[idx + 15 : end])
                out.append(time.time() * 1000 - sent)
                got += 1
    finally:
        writer.close()


async def _sse(
    port: int, token: str, kafka_cfg: dict[str, Any], codec: AvroCodec, prefix: str, tenant: str
) -> list[float]:
    ready = asyncio.Event()
    stop = asyncio.Event()
    counter = [0]
    out: list[float] = []
    tasks = []
    for i in range(SUBSCRIBERS):
        tasks.append(asyncio.create_task(_subscriber(port, token, ready, counter, out, SSE_EVENTS, stop)))
        if i % 100 == 99:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(ready.wait(), 60)
    producer = Producer({**kafka_cfg, "linger.ms": 0})
    for i in range(SSE_EVENTS):
        record = RobotStatus(
            tenant_id=tenant,
            site_id="s1",
            robot_id=f"r{i % 10}",
            fleet_id="f",
            status=RobotState.MOVING,
            battery=0.5,
            pose=Pose(x=float(i), y=0.0),
            speed=1.0,
            seq=i,
            last_seen_at=int(time.time() * 1000),
            reason=StatusReason.CHANGE,
        )
        producer.produce(f"{prefix}robot.status", key=record.robot_id.encode(), value=codec.encode(record))
        producer.poll(0)
        await asyncio.sleep(0.1)
    producer.flush(10)
    await asyncio.wait(tasks, timeout=30)
    stop.set()
    for t in tasks:
        t.cancel()
    return out


async def _raw_consumer_latency(
    kafka_cfg: dict[str, Any], codec: AvroCodec, prefix: str, tenant: str
) -> list[float]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        f"{prefix}robot.status",
        bootstrap_servers=kafka_cfg["bootstrap.servers"],
        auto_offset_reset="latest",
        group_id=None,
    )
    await consumer.start()
    await asyncio.sleep(1)
    producer = Producer({**kafka_cfg, "linger.ms": 0})
    out: list[float] = []

    async def consume() -> None:
        while len(out) < SSE_EVENTS:
            for records in (await consumer.getmany(timeout_ms=100)).values():
                for rec in records:
                    value = codec.decode(rec.value)
                    if value and value["tenant_id"] == tenant:
                        out.append(time.time() * 1000 - value["last_seen_at"])

    task = asyncio.create_task(consume())
    for i in range(SSE_EVENTS):
        record = RobotStatus(
            tenant_id=tenant,
            site_id="s1",
            robot_id=f"r{i % 10}",
            fleet_id="f",
            status=RobotState.IDLE,
            battery=0.5,
            pose=Pose(x=0, y=0),
            speed=0.0,
            seq=i,
            last_seen_at=int(time.time() * 1000),
            reason=StatusReason.CHANGE,
        )
        producer.produce(f"{prefix}robot.status", key=record.robot_id.encode(), value=codec.encode(record))
        producer.poll(0)
        await asyncio.sleep(0.05)
    producer.flush(10)
    await asyncio.wait_for(task, 30)
    await consumer.stop()
    return out


def run() -> list[dict[str, Any]]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    bootstrap = os.environ.get("FLEET_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    registry_url = os.environ.get("FLEET_SCHEMA_REGISTRY_URL", "http://127.0.0.1:18081/apis/ccompat/v7")
    kafka_cfg = {"bootstrap.servers": bootstrap}
    admin = AdminClient(kafka_cfg)
    specs = catalog.topics(prefix, names=[*STREAM_TOPICS, *OUTPUT_TOPICS])
    for fut in admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config())
            for s in specs
        ]
    ).values():
        fut.result(30)
    env = {
        **os.environ,
        "FLEET_TOPIC_PREFIX": prefix,
        "FLEET_JWT_SECRET": SECRET,
        "FLEET_ENVIRONMENT": "test",
        "FLEET_RATE_LIMIT_REQUESTS": "100000000",  # the Redis call still happens on every request
        "FLEET_SSE_MAX_CLIENTS_PER_TENANT": str(SUBSCRIBERS + 10),
        "FLEET_LOG_LEVEL": "WARNING",
    }
    tenant = f"bench-{uuid.uuid4().hex[:6]}"
    token = issue_token(SECRET, tenant_id=tenant, roles=["operator"])
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "site_id": "s1",
        "spec": {"category": "delivery", "priority": 5, "pickup_node": "a", "dropoff_node": "b"},
    }
    rows: list[dict[str, Any]] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        base_port = _port()
        procs.append(_serve("pipelines.bench.gateway:baseline_app", base_port, env))
        _wait_ready(f"http://127.0.0.1:{base_port}", procs[-1], "/docs")
        base_rps, base_lat = asyncio.run(_load(f"http://127.0.0.1:{base_port}", "/ping", {}, {}, REQUESTS))
        procs[-1].terminate()

        port = _port()
        procs.append(_serve("pipelines.processors.gateway:app_factory", port, env))
        _wait_ready(f"http://127.0.0.1:{port}", procs[-1], "/readyz")
        rps, lat = asyncio.run(_load(f"http://127.0.0.1:{port}", "/v1/tasks", body, headers, REQUESTS))
        p99, base_p99 = _p(lat, 0.99) * 1000, _p(base_lat, 0.99) * 1000
        rows.append(
            {
                "name": "gateway POST /v1/tasks",
                "value": rps,
                "unit": "req/s",
                "baseline": base_rps,
                "ratio": rps / base_rps,
                "goal": ">= 2,000 req/s",
            }
        )
        rows.append(
            {
                "name": "gateway POST /v1/tasks p99",
                "value": p99,
                "unit": "ms",
                "baseline": base_p99,
                "ratio": base_p99 / p99,
                "goal": "< 50 ms",
            }
        )
        rows.append(
            {
                "name": "gateway POST /v1/tasks p50",
                "value": statistics.median(lat) * 1000,
                "unit": "ms",
                "baseline": statistics.median(base_lat) * 1000,
                "ratio": None,
                "goal": "",
            }
        )

        registry = RegistryClient(registry_url)
        codec = AvroCodec.for_topic(registry, "robot.status", prefix)
        sse = asyncio.run(
            _sse(
                port,
                issue_token(SECRET, tenant_id=tenant, roles=["viewer"]),
                kafka_cfg,
                codec,
                prefix,
                tenant,
            )
        )
        raw = asyncio.run(_raw_consumer_latency(kafka_cfg, codec, prefix, f"{tenant}-raw"))
        expected = SUBSCRIBERS * SSE_EVENTS
        sse_p99, raw_p99 = _p(sse, 0.99), _p(raw, 0.99)
        rows.append(
            {
                "name": f"gateway SSE delivery p99 ({SUBSCRIBERS} clients)",
                "value": sse_p99,
                "unit": "ms",
                "baseline": raw_p99,
                "ratio": raw_p99 / sse_p99 if sse_p99 else None,
                "goal": "< 250 ms",
            }
        )
        rows.append(
            {
                "name": "gateway SSE deliveries received",
                "value": len(sse),
                "unit": "events",
                "baseline": expected,
                "ratio": len(sse) / expected,
                "goal": "all",
            }
        )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
        for fut in admin.delete_topics([s.name for s in specs]).values():
            with contextlib.suppress(Exception):
                fut.result(30)
    return rows


if __name__ == "__main__":
    from pipelines.commands.bench import format_rows

    sys.stdout.write(format_rows(run()) + "\n")
