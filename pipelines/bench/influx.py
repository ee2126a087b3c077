"""Benchmark: the InfluxDB sink against a raw batched line-protocol POST of the same points, same run.

- ``influx.sink.write``: :class:`sinks.influx.InfluxSink` writing RobotTelemetry dicts (line formatting,
  escaping, one POST per ``max_points_per_request``), in process.
- ``influx.sink.processor``: ``fleet run sink-influx`` draining the same records from Kafka (consume,
  Avro decode, format, POST, commit). The records are produced while the processor is paused (SIGSTOP),
  so it catches up a backlog; it is timed from its resume until its committed offsets reach the end
  (the sink commits only what InfluxDB accepted), and the points are then counted once.
- baselines, measured in the same run: for ``influx.sink.write``, the same points as pre-built
  line-protocol bodies POSTed in the same batch size with httpx (nothing but the HTTP write), into a
  separate database; for ``influx.sink.processor``, a raw loop over the same Kafka records in its own
  process: confluent-kafka consume -> Avro decode -> line protocol -> one POST per
  ``max_points_per_request`` records, at least once, no framework (timed from its first consumed record
  to its last answered POST).

Goal: the sink's write path >= 50% of the raw POST rate. The processor row is a report: it adds Kafka,
Avro and Quix Streams' per-record path, which the raw POST does not pay; its ratio is to the raw
Kafka -> InfluxDB loop.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.bench import process_cpu_s
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


def _raw_kafka_loop(
    kafka: dict[str, Any], registry_cfg: dict[str, Any], topic: str, prefix: str, url: str, db: str, count: int,
    result: Any,
) -> None:  # fmt: skip
    """consume -> decode -> line protocol -> POST per batch, for ``count`` records; reports (first
    consumed, last answered, records, CPU seconds since the first) through ``result``."""
    config = InfluxConfig(url=url, database=db)
    registry = RegistryClient(**registry_cfg)
    decode = AvroCodec.for_topic(registry, "robot.telemetry.accepted", prefix, auto_register=False).decode
    consumer = Consumer({**kafka, "group.id": f"{prefix}raw-influx", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    step = config.max_points_per_request
    pending: list[dict[str, Any]] = []
    done = 0
    first = cpu0 = 0.0
    with httpx.Client(base_url=url, timeout=60) as client:
        while done < count:
            for msg in consumer.consume(num_messages=1000, timeout=0.005):
                if msg.error():
                    continue
                if not first:
                    first, cpu0 = time.time(), time.process_time()
                record = decode(msg.value())
                assert record is not None  # every bench record has a value
                pending.append(record)
            if len(pending) >= step or (pending and done + len(pending) >= count):
                for rp, lines in to_lines(pending, config).items():
                    response = client.post(
                        "/write", params={"db": db, "rp": rp, "precision": "ms"}, content="\n".join(lines)
                    )
                    response.raise_for_status()
                consumer.commit(asynchronous=True)
                done += len(pending)
                pending = []
    result.put((first, time.time(), done, time.process_time() - cpu0))
    consumer.close()
    registry.close()


def _processor_rate(
    settings: CommonSettings, url: str, records: list[dict[str, Any]]
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(points/s, CPU us per point) of `fleet run sink-influx` draining ``records`` from Kafka into a
    fresh database, and of the raw Kafka -> InfluxDB loop over the same records."""
    prefix = f"{settings.topic_prefix}bench-{uuid.uuid4().hex[:6]}."
    db = f"bench_proc_{uuid.uuid4().hex[:8]}"
    kafka = settings.kafka_client_config()
    admin = AdminClient(kafka)
    specs = topics(
        prefix,
        partitions={"robot": 2},
        names=["robot.telemetry.accepted", "robot.telemetry.1m", "dlq.sink-influx"],
    )
    for future in admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config())
            for s in specs
        ]
    ).values():
        future.result(30)
    registry = RegistryClient(**settings.registry_client_config())
    codec = AvroCodec.for_topic(registry, "robot.telemetry.accepted", prefix)
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
        [str(Path(sys.executable).with_name("fleet")), "run", "sink-influx"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # the sink creates the database at start-up
        while "telemetry_7d" not in str(_query(url, db, f'SHOW RETENTION POLICIES ON "{db}"')):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"sink-influx did not start; see {tmp}")
            time.sleep(0.2)
        group = f"{prefix}fleet-sink-influx"
        offsets = Consumer({**kafka, "group.id": group, "enable.auto.commit": False})
        topic = f"{prefix}robot.telemetry.accepted"
        partitions = next(s.partitions for s in specs if s.name == topic)
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        deadline = time.monotonic() + 60
        inputs = sum(s.partitions for s in specs if "dlq." not in s.name)  # what the sink reads
        while not _joined(admin, group, inputs):  # the sink has joined its group, every input assigned
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"sink-influx did not join its group; see {tmp}")
            time.sleep(0.2)
        producer = Producer({**kafka, "linger.ms": 5, "queue.buffering.max.messages": 1_000_000})
        proc.send_signal(signal.SIGSTOP)
        try:
            for key, value in encoded:
                producer.produce(topic, key=key, value=value)
                producer.poll(0)
            producer.flush(60)
        finally:
            proc.send_signal(signal.SIGCONT)
        cpu0 = process_cpu_s(proc.pid)
        start = time.perf_counter()
        deadline = time.monotonic() + 600
        while sum(max(tp.offset, 0) for tp in offsets.committed(tps, timeout=10)) < len(records):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"sink-influx did not commit every record; see {tmp}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - start
        cpu_us = (process_cpu_s(proc.pid) - cpu0) / len(records) * 1e6
        offsets.close()
        written = _count(url, db, "telemetry_7d")
        if written != len(records):
            raise RuntimeError(f"sink-influx committed {len(records)} records but wrote {written} points")
        proc.terminate()
        proc.wait(30)
        raw_db = f"bench_rawk_{uuid.uuid4().hex[:8]}"
        schema = InfluxSink(InfluxConfig(url=url, database=raw_db))
        schema.setup()
        schema.close()
        queue = mp.get_context("fork").Queue()
        raw = mp.get_context("fork").Process(
            target=_raw_kafka_loop,
            args=(kafka, settings.registry_client_config(), topic, prefix, url, raw_db, len(records), queue),
        )
        raw.start()
        first, last, done, raw_cpu_s = queue.get(timeout=600)
        raw.join(30)
        _drop(url, raw_db)
        return (len(records) / elapsed, cpu_us), (done / (last - first), raw_cpu_s / done * 1e6)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(30)
        registry.close()
        _drop(url, db)
        for future in admin.delete_topics([s.name for s in specs]).values():
            try:
                future.result(30)
            except Exception as exc:  # best effort
                logger.warning("could not delete a bench topic: %s", exc)


def _joined(admin: AdminClient, group: str, partitions: int) -> bool:
    """Whether ``group`` is stable with all ``partitions`` of the input assigned (the sink is reading)."""
    try:
        described = admin.describe_consumer_groups([group])[group].result(10)
    except Exception:  # not known yet
        return False
    assigned = sum(
        len(member.assignment.topic_partitions) for member in described.members if member.assignment
    )
    return str(described.state).endswith("STABLE") and assigned >= partitions


def _row(name: str, value: float, baseline: float, goal: str, unit: str = "points/s") -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value),
        "unit": unit,
        "baseline": round(baseline),
        "ratio": round(value / baseline, 3),
        "goal": goal,
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
        (processor_rate, processor_cpu), (raw_kafka_rate, raw_kafka_cpu) = _processor_rate(
            settings, url, records
        )
    finally:
        sink.close()
        _drop(url, sink_cfg.database)
        _drop(url, raw_cfg.database)
    logger.info(
        "raw POST %.0f points/s, sink %.0f; raw kafka -> influx %.0f, processor %.0f",
        raw_rate, sink_rate, raw_kafka_rate, processor_rate,
    )  # fmt: skip
    return [
        _row("influx.sink.write", sink_rate, raw_rate, f">= {GOAL:.0%} of raw POST"),
        _row(
            "influx.sink.processor (kafka -> influx)",
            processor_rate,
            raw_kafka_rate,
            "report: baseline = raw kafka -> decode -> POST loop",
        ),
        _row(
            "influx.sink.processor.cpu_per_point",
            processor_cpu,
            raw_kafka_cpu,
            "report: processor CPU (user+system) per point vs the raw loop's",
            unit="us",
        ),
    ]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for row in run():
        sys.stdout.write(f"{row}\n")
