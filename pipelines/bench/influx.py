"""Benchmark: the InfluxDB sink against a raw batched line-protocol POST of the same points, same run.

- ``influx.sink.write``: :class:`sinks.influx.InfluxSink` writing RobotTelemetry dicts (line formatting,
  escaping, one POST per ``max_points_per_request``), in process.
- ``influx.sink.processor``: ``fleet run sink_influx`` draining the same records from Kafka (consume,
  Avro decode, format, POST, commit), from the first produce until every point is queryable.
- baseline: the same points as pre-built line-protocol bodies POSTed in the same batch size with httpx
  (nothing but the HTTP write), into a separate database.

Goal: the sink >= 50% of the raw POST rate.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.bench.telemetry import make_stream
from pipelines.settings import CommonSettings, load_settings
from schemas.catalog import topics
from schemas.codec import AvroCodec
from schemas.ids import now_ms
from schemas.registry import RegistryClient
from sinks.influx import InfluxConfig, InfluxSink, to_lines

__all__ = ["run"]

logger = logging.getLogger(__name__)

GOAL = 0.5
DEFAULT_URL = "http://127.0.0.1:18086"


def _query(url: str, db: str, q: str) -> dict[str, Any]:
    return httpx.get(f"{url}/query", params={"db": db, "q": q}, timeout=30).json()


def _count(url: str, db: str, rp: str) -> int:
    body = _query(url, db, f'SELECT count(seq) FROM "{rp}"."robot_telemetry"')
    series = body["results"][0].get("series")
    return int(series[0]["values"][0][1]) if series else 0


def _drop(url: str, db: str) -> None:
    httpx.post(f"{url}/query", params={"q": f'DROP DATABASE "{db}"'}, timeout=60)


def _raw_post(url: str, db: str, rp: str, bodies: list[bytes]) -> float:
    """Seconds to POST ``bodies`` (already line protocol) one request each."""
    with httpx.Client(base_url=url, timeout=60) as client:
        start = time.perf_counter()
        for body in bodies:
            response = client.post("/write", params={"db": db, "rp": rp, "precision": "ms"}, content=body)
            response.raise_for_status()
        return time.perf_counter() - start


def _processor_rate(settings: CommonSettings, url: str, records: list[dict[str, Any]]) -> float:
    """Points/s of `fleet run sink_influx` draining ``records`` from Kafka into a fresh database."""
    prefix = f"{settings.topic_prefix}bench-{uuid.uuid4().hex[:6]}."
    db = f"bench_proc_{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka_client_config()
    admin = AdminClient(kafka)
    specs = topics(
        prefix, partitions={"robot": 2}, names=["robot.telemetry", "robot.telemetry.1m", "dlq.sink-influx"]
    )
    for future in admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config())
            for s in specs
        ]
    ).values():
        future.result(30)
    registry = RegistryClient(**settings.registry_client_config())
    codec = AvroCodec.for_topic(registry, "robot.telemetry", prefix)
    encoded = [(r["robot_id"].encode(), codec.encode(r)) for r in records]
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-influx-"))
    env = {
        **os.environ, "FLEET_TOPIC_PREFIX": prefix, "FLEET_STATE_DIR": str(tmp / "state"),
        "FLEET_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "FLEET_SCHEMA_REGISTRY_URL": settings.schema_registry_url, "FLEET_INFLUX_URL": url,
        "FLEET_INFLUX_DATABASE": db, "FLEET_LOG_LEVEL": "WARNING",
    }  # fmt: skip
    log = open(tmp / "sink_influx.log", "ab")  # noqa: SIM115 - owned by the child process
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("fleet")), "run", "sink_influx"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # the sink creates the database at start-up
        while "telemetry_7d" not in str(_query(url, db, f'SHOW RETENTION POLICIES ON "{db}"')):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"sink_influx did not start; see {tmp}")
            time.sleep(0.2)
        time.sleep(3)  # joined its group
        producer = Producer({**kafka, "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
        topic = f"{prefix}robot.telemetry"
        start = time.perf_counter()
        for key, value in encoded:
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
        producer.flush(60)
        deadline = time.monotonic() + 600
        while _count(url, db, "telemetry_7d") < len(records):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"sink_influx did not write every point; see {tmp}")
            time.sleep(0.1)
        return len(records) / (time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(30)
        registry.close()
        _drop(url, db)
        for future in admin.delete_topics([s.name for s in specs]).values():
            try:
                future.result(30)
            except Exception as exc:  # best effort
                logger.warning("could not delete a bench topic: %s", exc)


def _row(name: str, value: float, baseline: float) -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value),
        "unit": "points/s",
        "baseline": round(baseline),
        "ratio": round(value / baseline, 3),
        "goal": f">= {GOAL:.0%} of raw POST",
    }


def run() -> list[dict[str, Any]]:
    """Run the benchmark; returns result rows (name, value, unit, baseline, ratio, goal)."""
    settings = load_settings(CommonSettings)
    url = os.environ.get("FLEET_INFLUX_URL", DEFAULT_URL)
    count = int(os.environ.get("FLEET_BENCH_POINTS", 100_000))
    rounds = int(os.environ.get("FLEET_BENCH_ROUNDS", 3))
    robots = 500
    records = make_stream(robots, 1, count // robots, now_ms() - 6 * 3_600_000)
    suffix = uuid.uuid4().hex[:8]
    sink_cfg = InfluxConfig(url=url, database=f"bench_sink_{suffix}")
    raw_cfg = InfluxConfig(url=url, database=f"bench_raw_{suffix}")
    sink = InfluxSink(sink_cfg)
    sink.setup()
    InfluxSink(raw_cfg).setup()
    step = sink_cfg.max_points_per_request
    lines = to_lines(records, raw_cfg)[raw_cfg.raw_rp]
    bodies = ["\n".join(lines[i : i + step]).encode() for i in range(0, len(lines), step)]
    try:
        raw_best = sink_best = float("inf")
        for _ in range(rounds):  # interleaved, so both see the same machine conditions
            raw_best = min(raw_best, _raw_post(url, raw_cfg.database, raw_cfg.raw_rp, bodies))
            start = time.perf_counter()
            sink.write_records(records)
            sink_best = min(sink_best, time.perf_counter() - start)
        assert _count(url, sink_cfg.database, sink_cfg.raw_rp) == len(records)
        raw_rate = len(records) / raw_best
        sink_rate = len(records) / sink_best
        processor_rate = _processor_rate(settings, url, records)
    finally:
        sink.close()
        _drop(url, sink_cfg.database)
        _drop(url, raw_cfg.database)
    logger.info("raw %.0f points/s, sink %.0f, processor %.0f", raw_rate, sink_rate, processor_rate)
    return [
        _row("influx.sink.write", sink_rate, raw_rate),
        _row("influx.sink.processor (kafka -> influx)", processor_rate, raw_rate),
    ]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for row in run():
        sys.stdout.write(f"{row}\n")
