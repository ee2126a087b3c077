"""Benchmark: the gateway over HTTP, against a trivial endpoint served the same way, in the same run.

1. ``POST /v1/tasks`` (JWT check, Redis rate limit, pydantic, Avro encode, idempotent produce with acks=all
   awaited before the 202, audit produce): requests/s and p50/p99 latency, served by ``fleet run gateway
   --workers W`` (uvloop + httptools), loaded by ``wrk`` (C, one thread; installed from Debian's package
   once when missing) over ``CONNECTIONS`` keep-alive connections, each request with its own
   ``Idempotency-Key``. Every answer must be a 202, and task.commands must hold at least one record per
   202 afterwards, or the benchmark fails.
   Baselines, same run: ``POST /ping`` of a one-route FastAPI app on the same server stack (uvicorn, same
   workers, loop and parser) with the same client and request bytes, alternated with the gateway's runs;
   and the raw aiokafka produce rate (acks=all, idempotent, ``CONNECTIONS`` sends in flight), what the
   two produces of each request cost at least.
   Also measured: the CPU the gateway's processes spend per request (from /proc, the worker processes
   together), which a busy shared machine disturbs far less than requests/s, against the same figure
   of the baseline endpoint.
   The bench tenant's rate limit is set to 100,000,000 requests a minute: the limiter still counts every
   request in Redis, it just never refuses one.
2. SSE delivery latency with 1,000 concurrent subscribers of one tenant, against one gateway process:
   robot.status records are produced with their send time in ``last_seen_at``; each subscriber notes when
   the event arrives. p99 over all deliveries. Baseline: the same records read by one plain aiokafka
   consumer (broker + codec latency).

Without wrk (not root, no apt-get) the POST figures come from an async httpx client, labelled so; that
client, sharing the cores, measures itself more than the gateway.

Everything (servers, load, broker) shares this machine's cores; the numbers are a floor, not a ceiling.
Runs are repeated (``FLEET_BENCH_GATEWAY_RUNS``); rows give the median and the spread.
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
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import FastAPI

from gateway.auth import issue_token
from gateway.producer import OUTPUT_TOPICS
from gateway.sse import STREAM_TOPICS
from pipelines.bench._wrk import WrkResult, find_wrk, run_wrk
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.models import Pose, RobotState, RobotStatus, StatusReason
from schemas.registry import RegistryClient

__all__ = ["baseline_app", "run"]

logger = logging.getLogger(__name__)

WORKERS = int(os.environ.get("FLEET_BENCH_GATEWAY_WORKERS", str(min(os.cpu_count() or 1, 4))))
CONNECTIONS = int(os.environ.get("FLEET_BENCH_GATEWAY_CONNECTIONS", "32"))
SECONDS = float(os.environ.get("FLEET_BENCH_GATEWAY_SECONDS", "10"))
RUNS = int(os.environ.get("FLEET_BENCH_GATEWAY_RUNS", "3"))
REQUESTS = int(os.environ.get("FLEET_BENCH_GATEWAY_REQUESTS", "4000"))  # httpx fallback only
SUBSCRIBERS = int(os.environ.get("FLEET_BENCH_GATEWAY_SUBSCRIBERS", "1000"))
SSE_EVENTS = 40
SECRET = "bench-secret-0123456789abcdef0123456789"
RATE_LIMIT = 100_000_000  # per 60 s window: counted in Redis on every request, never reached
BODY = {
    "site_id": "s1",
    "spec": {"category": "delivery", "priority": 5, "pickup_node": "a", "dropoff_node": "b"},
}


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


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own process group: uvicorn's worker processes are stopped with it.
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def _serve_gateway(port: int, env: dict[str, str], workers: int) -> subprocess.Popen[bytes]:
    """The gateway as deployed: ``fleet run gateway --workers N``."""
    cmd = [sys.executable, "-m", "pipelines.cli", "run", "gateway", "--workers", str(workers)]
    return _start(cmd, {**env, "FLEET_HTTP_PORT": str(port), "FLEET_LOG_FORMAT": "text"})


def _serve_uvicorn(target: str, port: int, env: dict[str, str], workers: int = 1) -> subprocess.Popen[bytes]:
    """``target`` (an app factory) under uvicorn with the gateway's server options."""
    cmd = [
        sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1", "--port", str(port),
        "--workers", str(workers), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return _start(cmd, env)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(10)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            raise RuntimeError(f"server exited: {err}")
        with contextlib.suppress(httpx.HTTPError):
            r = httpx.get(url + path, timeout=2)
            if r.status_code == 200 or (path == "/docs" and r.status_code < 500):
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _httpx_load(
    url: str, path: str, body: dict[str, Any], headers: dict[str, str], n: int
) -> tuple[float, list[float]]:
    """Fallback load generator (no wrk): an async httpx client with bounded concurrency."""
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    run_id = uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                start = time.perf_counter()
                key = f"bench-{run_id}-{i}"
                r = await client.post(path, json=body, headers={**headers, "Idempotency-Key": key})
                latencies.append(time.perf_counter() - start)
                if r.status_code >= 300:
                    raise RuntimeError(f"{path}: HTTP {r.status_code} {r.text[:200]}")

        for i in range(200):  # warm-up
            key = f"warm-{run_id}-{i}"
            await client.post(path, json=body, headers={**headers, "Idempotency-Key": key})
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - start
    return n / elapsed, latencies


async def _raw_produce(bootstrap: str, topic: str, seconds: float) -> tuple[float, list[float]]:
    """Raw aiokafka: CONNECTIONS concurrent send_and_wait (acks=all, idempotent), like the gateway's sends."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=2, client_id="bench-raw"
    )
    await producer.start()
    value = b"\0" * 160  # about the size of an Avro TaskCommand
    latencies: list[float] = []
    try:
        for i in range(500):  # warm-up
            await producer.send_and_wait(topic, value=value, key=str(i).encode())
        deadline = time.perf_counter() + seconds
        count = 0

        async def sender(n: int) -> None:
            nonlocal count
            i = 0
            while time.perf_counter() < deadline:
                i += 1
                start = time.perf_counter()
                await producer.send_and_wait(topic, value=value, key=f"{n}-{i}".encode())
                latencies.append(time.perf_counter() - start)
                count += 1

        start = time.perf_counter()
        await asyncio.gather(*(sender(n) for n in range(CONNECTIONS)))
        elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
    return count / elapsed, latencies


def _records(bootstrap: str, topic: str) -> int:
    """Records in ``topic`` (sum of its partitions' end offsets; the topic is new, so none were deleted)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:6]}"})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        total = 0
        for p in meta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            total += high - low
        return total
    finally:
        consumer.close()


def _median(results: list[WrkResult], of: Callable[[WrkResult], float]) -> float:
    return statistics.median(of(r) for r in results)


def _spread(results: list[WrkResult], of: Callable[[WrkResult], float], fmt: str) -> str:
    values = [of(r) for r in results]
    return f"{len(values)} runs, {format(min(values), fmt)}-{format(max(values), fmt)}"


def _session_cpu(session: int) -> float | None:
    """CPU seconds used so far by the processes of ``session`` (a server and its workers); None off Linux."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:  # fields[3] is the session id (field 6 of stat)
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / tick


def _wrk_rows(
    wrk: str, gateway: subprocess.Popen[bytes], port: int, baseline: subprocess.Popen[bytes], base_port: int,
    token: str, bootstrap: str, prefix: str,
) -> list[dict[str, Any]]:  # fmt: skip
    """POST /v1/tasks under wrk, alternating with the baseline endpoint; the records check; raw produce."""
    body = orjson.dumps(BODY).decode()
    auth = f"Bearer {token}"
    url, base_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{base_port}"
    tag = uuid.uuid4().hex[:6]
    cpu: dict[str, list[float]] = {"gateway": [], "baseline": []}

    def load(
        target: str, path: str, run_id: str, seconds: float, server: subprocess.Popen[bytes]
    ) -> WrkResult:
        before = _session_cpu(server.pid)
        result = run_wrk(
            wrk, target, path, body=body, authorization=auth, run_id=run_id,
            seconds=seconds, connections=CONNECTIONS,
        )  # fmt: skip
        after = _session_cpu(server.pid)
        if before is not None and after is not None and result.requests:
            cpu["gateway" if server is gateway else "baseline"].append(
                (after - before) * 1000 / result.requests
            )
        return result

    warm = [
        load(url, "/v1/tasks", f"{tag}-warm", 3, gateway),
        load(base_url, "/ping", f"{tag}-warm", 3, baseline),
    ]
    for measured in cpu.values():
        measured.clear()  # not the warm-up's
    gw: list[WrkResult] = []
    base: list[WrkResult] = []
    for i in range(RUNS):
        base.append(load(base_url, "/ping", f"{tag}-b{i}", SECONDS, baseline))
        gw.append(load(url, "/v1/tasks", f"{tag}-g{i}", SECONDS, gateway))
        logger.info(
            "run %d: gateway %.0f req/s p99 %.1f ms; baseline %.0f req/s p99 %.1f ms; load average %.1f",
            i + 1, gw[-1].rate, gw[-1].p99_ms, base[-1].rate, base[-1].p99_ms, os.getloadavg()[0],
        )  # fmt: skip
    for result in base:
        if set(result.statuses) != {200} or any(result.errors.values()):
            raise RuntimeError(f"POST /ping: answers {result.statuses}, socket errors {result.errors}")
    for result in (*warm[:1], *gw):
        others = {code: n for code, n in result.statuses.items() if code != 202}
        if others or any(result.errors.values()):
            raise RuntimeError(
                f"POST /v1/tasks: answers other than 202 {others}, socket errors {result.errors}"
            )
    accepted = sum(r.count(202) for r in (*warm[:1], *gw))
    records = _records(bootstrap, f"{prefix}task.commands")
    audits = _records(bootstrap, f"{prefix}audit.log")
    if records < accepted or audits < accepted:
        raise RuntimeError(f"{accepted} answers 202 but {records} task commands and {audits} audit events")
    raw_rate, raw_lat = asyncio.run(_raw_produce(bootstrap, f"{prefix}bench.raw", SECONDS))

    rate, base_rate = _median(gw, lambda r: r.rate), _median(base, lambda r: r.rate)
    p99, base_p99 = _median(gw, lambda r: r.p99_ms), _median(base, lambda r: r.p99_ms)
    p50, base_p50 = _median(gw, lambda r: r.p50_ms), _median(base, lambda r: r.p50_ms)
    label = f"gateway POST /v1/tasks ({WORKERS} workers, wrk -c{CONNECTIONS})"
    cpu_runs: list[float | None] = [*cpu["gateway"]] if len(cpu["gateway"]) == len(gw) else [None] * len(gw)
    runs = [
        {"rate": r.rate, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "max_ms": r.max_ms, "cpu_ms": c}
        for r, c in zip(gw, cpu_runs, strict=True)
    ]
    base_runs = [{"rate": r.rate, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms} for r in base]
    return [
        {
            "name": label,
            "value": rate,
            "unit": "req/s",
            "baseline": base_rate,
            "ratio": rate / base_rate,
            "goal": f">= 2,000 req/s ({_spread(gw, lambda r: r.rate, ',.0f')})",
            "runs": runs,
            "baseline_runs": base_runs,
        },
        {
            "name": "gateway POST /v1/tasks p99",
            "value": p99,
            "unit": "ms",
            "baseline": base_p99,
            "ratio": base_p99 / p99,
            "goal": f"< 50 ms ({_spread(gw, lambda r: r.p99_ms, '.0f')} ms)",
        },
        {
            "name": "gateway POST /v1/tasks p50",
            "value": p50,
            "unit": "ms",
            "baseline": base_p50,
            "ratio": None,
            "goal": "",
        },
        {
            "name": "gateway task commands produced per 202",
            "value": records,
            "unit": "records",
            "baseline": accepted,
            "ratio": records / accepted,
            "goal": f">= 100% (audit events: {audits:,})",
        },
        *(
            [
                {
                    "name": "gateway CPU per POST /v1/tasks",
                    "value": statistics.median(cpu["gateway"]),
                    "unit": "ms",
                    "baseline": statistics.median(cpu["baseline"]),
                    "ratio": None,
                    "goal": f"2,000 req/s need {statistics.median(cpu['gateway']) * 2:.1f} cores for the gateway",
                }
            ]
            if cpu["gateway"] and cpu["baseline"]
            else []
        ),
        {
            "name": f"raw aiokafka produce ({CONNECTIONS} in flight, acks=all)",
            "value": raw_rate,
            "unit": "records/s",
            "baseline": None,
            "ratio": None,
            "goal": f"p99 {_p(raw_lat, 0.99) * 1000:.1f} ms; a POST produces 2",
        },
    ]


def _httpx_rows(port: int, base_port: int, token: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    base_rps, base_lat = asyncio.run(_httpx_load(f"http://127.0.0.1:{base_port}", "/ping", {}, {}, REQUESTS))
    rps, lat = asyncio.run(_httpx_load(f"http://127.0.0.1:{port}", "/v1/tasks", BODY, headers, REQUESTS))
    p99, base_p99 = _p(lat, 0.99) * 1000, _p(base_lat, 0.99) * 1000
    return [
        {
            "name": f"gateway POST /v1/tasks (httpx client, {WORKERS} workers)",
            "value": rps,
            "unit": "req/s",
            "baseline": base_rps,
            "ratio": rps / base_rps,
            "goal": ">= 2,000 req/s (wrk unavailable)",
        },
        {
            "name": "gateway POST /v1/tasks p99 (httpx client)",
            "value": p99,
            "unit": "ms",
            "baseline": base_p99,
            "ratio": base_p99 / p99,
            "goal": "< 50 ms",
        },
    ]


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
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs
    ]
    new.append(NewTopic(f"{prefix}bench.raw", num_partitions=6, replication_factor=1))
    for fut in admin.create_topics(new).values():
        fut.result(30)
    env = {
        **os.environ,
        "FLEET_TOPIC_PREFIX": prefix,
        "FLEET_JWT_SECRET": SECRET,
        "FLEET_ENVIRONMENT": "test",
        "FLEET_RATE_LIMIT_REQUESTS": str(RATE_LIMIT),
        "FLEET_SSE_MAX_CLIENTS_PER_TENANT": str(SUBSCRIBERS + 10),
        "FLEET_LOG_LEVEL": "WARNING",
    }
    tenant = f"bench-{uuid.uuid4().hex[:6]}"
    token = issue_token(SECRET, tenant_id=tenant, roles=["operator"])
    rows: list[dict[str, Any]] = []
    procs: list[subprocess.Popen[bytes]] = []
    try:
        wrk = find_wrk()
        base_port, port = _port(), _port()
        procs.append(_serve_uvicorn("pipelines.bench.gateway:baseline_app", base_port, env, WORKERS))
        procs.append(_serve_gateway(port, env, WORKERS))
        _wait_ready(f"http://127.0.0.1:{base_port}", procs[0], "/docs")
        _wait_ready(f"http://127.0.0.1:{port}", procs[1], "/readyz")
        if wrk:
            rows.extend(_wrk_rows(wrk, procs[1], port, procs[0], base_port, token, bootstrap, prefix))
        else:
            logger.warning("wrk not found and not installable: POST figures from the httpx client")
            rows.extend(_httpx_rows(port, base_port, token))
        for proc in procs:
            _stop(proc)

        # SSE against one gateway process, as before (its fan-out is per process).
        port = _port()
        procs.append(_serve_uvicorn("pipelines.processors.gateway:app_factory", port, env))
        _wait_ready(f"http://127.0.0.1:{port}", procs[-1], "/readyz")
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
            _stop(proc)
        for fut in admin.delete_topics([t.topic for t in new]).values():
            with contextlib.suppress(Exception):
                fut.result(30)
    return rows


if __name__ == "__main__":
    from pipelines.commands.bench import format_rows

    sys.stdout.write(format_rows(run()) + "\n")
