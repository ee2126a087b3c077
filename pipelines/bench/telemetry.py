"""Benchmark: the telemetry processor (`fleet run telemetry`, exactly-once) against a raw loop, same run.

Both read the same Avro RobotTelemetry records from Kafka. The raw baseline is the least a processor
must do: confluent-kafka consume (batches) -> codec decode -> codec encode -> produce, at least once, no
state, no transactions, one output per input. The topology validates, dedupes, keeps per-robot state in
RocksDB (changelogged), emits statuses/alerts/aggregates/timers and commits transactions.

- throughput: records/s of one processor (``FLEET_BENCH_INSTANCES`` processes in one group) to catch up
  a backlog of ``FLEET_BENCH_RECORDS`` records, and of the raw loop on the same records, in
  ``FLEET_BENCH_ROUNDS`` interleaved rounds (topology, raw, topology, raw, ...), so both see the same
  machine; the medians are reported. Both are timed on a backlog already in Kafka: the processor (warm,
  state loaded) is paused (SIGSTOP) while the backlog is produced and timed from its resume until its
  committed offsets reach the end; the raw loop from its first consumed record to its last delivered one.
- CPU per record during that catch-up: the processor's user + system time (``/proc``), the raw loop's
  process time; steadier than records/s on a noisy machine, since it does not count waiting for a core.
- latency: produce -> visible (read_committed) output, p50/p99, at ``FLEET_BENCH_RATE`` records/s offered
  for ``FLEET_BENCH_SECONDS``; topology outputs are the RobotStatus changes/heartbeats.

Both processes run beside the broker on the same machine. Goals: >= 15,000 records/s and >= 40% of raw.
``FLEET_BENCH_PROFILE=/path/report.txt`` runs the processor under pyinstrument (install it locally).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.bench import process_cpu_s, replication
from pipelines.settings import CommonSettings, load_settings
from schemas.avsc import load_schema
from schemas.catalog import ROBOT_STATUS, subject_name, topics
from schemas.codec import AvroCodec
from schemas.ids import now_ms, uuid7
from schemas.registry import RegistryClient

__all__ = ["make_stream", "run"]

logger = logging.getLogger(__name__)

GOAL_RATE = 15_000
GOAL_RATIO = 0.4
TOPICS = (
    "robot.telemetry", "robot.registry", "timers.due.telemetry", "robot.status", "alerts",
    "robot.telemetry.1m", "timers", "site.maps", "dlq.telemetry", "telemetry.inbox", "robot.telemetry.accepted",
)  # fmt: skip
TENANT = "bench"
SITE = "bench-site"
MODES = ("IDLE", "MOVING", "WORKING", "MOVING", "CHARGING")


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def make_stream(robots: int, first_seq: int, samples: int, base_ms: int) -> list[dict[str, Any]]:
    """Interleaved samples, one per robot per second of event time; a robot changes mode every 20
    samples (so ~5% of the records change a status), drives around, drains its battery slowly."""
    out = []
    for s in range(first_seq, first_seq + samples):
        for r in range(robots):
            phase = (s + r) // 20
            out.append({
                "event_id": uuid7(), "tenant_id": TENANT, "site_id": SITE, "occurred_at": base_ms + s * 1000 + r,
                "robot_id": f"b{r:04d}", "fleet_id": f"f{r % 3}", "seq": s,
                "pose": {"x": float((s * 7 + r) % 100), "y": float(r % 60), "yaw": 0.5, "node_id": None,
                         "map_name": "L1"},
                "battery": 0.3 + 0.7 * (1 - (s % 600) / 600), "speed": 0.8 if MODES[phase % 5] == "MOVING" else 0.0,
                "mode": MODES[phase % 5], "error_code": None, "task_id": None, "task_phase": "NONE",
                "route": [],
            })  # fmt: skip
    return out


def _site_map() -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "x": float(x), "y": float(y), "kind": "WAYPOINT", "name": None}
             for i, (x, y) in enumerate([(0, 0), (100, 0), (100, 60), (0, 60)])]  # fmt: skip
    return {
        "event_id": uuid7(), "tenant_id": TENANT, "site_id": SITE, "occurred_at": now_ms(), "version": 1,
        "name": "bench", "nodes": nodes, "lanes": [], "zones": [], "chargers": [],
    }  # fmt: skip


def _registration(robot_id: str) -> dict[str, Any]:
    return {
        "event_id": uuid7(), "tenant_id": TENANT, "site_id": SITE, "occurred_at": now_ms(), "robot_id": robot_id,
        "fleet_id": "f0", "name": robot_id, "model": None, "capabilities": [], "max_payload_kg": None,
        "managed_by": "FLEETSTREAM", "active": True,
    }  # fmt: skip


# ------------------------------------------------------------------------------------------- raw loop


def _raw_loop(
    kafka: dict[str, Any], registry_cfg: dict[str, Any], in_topic: str, out_subject: str, out_topic: str,
    group: str, count: int, result: Any, offset_reset: str = "earliest",
) -> None:  # fmt: skip
    """consume -> decode -> encode -> produce until ``count`` records (0: until killed); reports
    (first consumed, last delivered) wall times through ``result``."""
    registry = RegistryClient(**registry_cfg)
    reader = AvroCodec.for_record(registry, "RobotTelemetry", subject_name(in_topic), auto_register=False)
    writer = AvroCodec(registry, out_subject, load_schema("RobotTelemetry"))
    writer.prepare()
    consumer = Consumer(
        {**kafka, "group.id": group, "auto.offset.reset": offset_reset, "enable.auto.commit": True}
    )
    producer = Producer({**kafka, "linger.ms": 5, "enable.idempotence": True})
    consumer.subscribe([in_topic])
    decode, encode, produce = reader.decode, writer.encode, producer.produce
    done = 0
    first = 0.0
    cpu0 = 0.0
    while count == 0 or done < count:
        batch = consumer.consume(num_messages=1000, timeout=0.005)
        for msg in batch:
            if msg.error():
                continue
            if not first:
                first = time.time()
                cpu0 = time.process_time()
            produce(out_topic, key=msg.key(), value=encode(decode(msg.value())))
            done += 1
        producer.poll(0)
    producer.flush(60)
    result.put((first, time.time(), done, time.process_time() - cpu0))
    consumer.close()


# ------------------------------------------------------------------------------------------- helpers


class _Bench:
    def __init__(self, settings: CommonSettings, partitions: int) -> None:
        self.settings = settings
        self.kafka = settings.kafka_client_config()
        self.admin = AdminClient(self.kafka)
        self.registry = RegistryClient(**settings.registry_client_config())
        self.prefix = settings.topic_prefix
        self.specs = topics(self.prefix, partitions={"robot": partitions}, names=TOPICS)
        self.raw_topics = [f"{self.prefix}bench.raw.{i}" for i in range(2)]
        # The records a robot fleet sends: keys hashed with murmur2 as our simulator, Java clients and aiokafka
        # do (a librdkafka default producer, CRC32, would put most on another partition than their key's,
        # and the processor would forward each through its inbox: another hop per record).
        self.producer = Producer(
            {**settings.kafka_producer_config(), "linger.ms": 5, "queue.buffering.max.messages": 1_000_000}
        )
        self.codecs: dict[str, AvroCodec] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-telemetry-"))
        self.procs: list[subprocess.Popen] = []
        self._offsets: Consumer | None = None  # one reader of committed offsets, kept for the whole run

    def create_topics(self, partitions: int) -> None:
        rf, extra = replication()
        new = [NewTopic(s.name, num_partitions=s.partitions, replication_factor=rf, config={**s.config(), **extra})
               for s in self.specs]  # fmt: skip
        new += [
            NewTopic(t, num_partitions=partitions, replication_factor=rf, config=extra)
            for t in self.raw_topics
        ]
        for future in self.admin.create_topics(new).values():
            future.result(30)

    def drop_topics(self) -> None:
        names = [s.name for s in self.specs] + self.raw_topics
        names += [
            t for t in self.admin.list_topics(timeout=10).topics if t.startswith(f"changelog__{self.prefix}")
        ]
        for future in self.admin.delete_topics(names).values():
            try:
                future.result(30)
            except Exception as exc:  # best effort: a bench must not fail on clean-up
                logger.warning("could not delete a bench topic: %s", exc)

    def codec(self, name: str) -> AvroCodec:
        if name not in self.codecs:
            self.codecs[name] = AvroCodec.for_topic(self.registry, name, self.prefix)
        return self.codecs[name]

    def produce(self, name: str, key: str, value: dict[str, Any]) -> None:
        self.producer.produce(
            self.settings.topic(name), key=key.encode(), value=self.codec(name).encode(value)
        )

    def start_processor(self, instances: int = 1) -> None:
        """``instances`` telemetry processes in one consumer group (the partitions are shared out)."""
        for n in range(instances):
            env = {
                **os.environ, "FLEET_TOPIC_PREFIX": self.prefix, "FLEET_STATE_DIR": str(self.tmp / f"state-{n}"),
                "FLEET_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
                "FLEET_SCHEMA_REGISTRY_URL": self.settings.schema_registry_url, "FLEET_LOG_LEVEL": "WARNING",
            }  # fmt: skip
            log = open(self.tmp / f"telemetry-{n}.log", "ab")  # noqa: SIM115 - owned by the child process
            command = [str(Path(sys.executable).with_name("fleet")), "run", "telemetry"]
            if os.environ.get("FLEET_BENCH_PROFILE"):  # a pyinstrument report of the processor (hot spots)
                report = f"{os.environ['FLEET_BENCH_PROFILE']}.{n}"
                command = [sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o", report, "-m", "pipelines.cli",
                           "run", "telemetry"]  # fmt: skip
            self.procs.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))

    def processor_cpu_s(self) -> float:
        """CPU seconds (user + system) the processor processes have used so far."""
        return sum(process_cpu_s(proc.pid) for proc in self.procs)

    def pause_processor(self) -> None:
        """Stop the processor processes (SIGSTOP) until :meth:`resume_processor`: a backlog produced
        meanwhile is waiting in Kafka when they resume, as it is for the raw loop."""
        for proc in self.procs:
            proc.send_signal(signal.SIGSTOP)

    def resume_processor(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGCONT)

    def processor_died(self) -> bool:
        return any(p.poll() is not None for p in self.procs)

    def stop_processor(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.procs = []

    def committed(self, topic: str) -> tuple[int, int]:
        """(committed, end) offsets of the telemetry processor's group on ``topic``, summed over partitions.

        One consumer (never subscribed, so it does not join the group) answers every call: a new client
        per poll cost ~50 ms and took CPU from the processor under test on a 2-core machine."""
        if self._offsets is None:
            self._offsets = Consumer(
                {**self.kafka, "group.id": f"{self.prefix}fleet-telemetry", "enable.auto.commit": False}
            )
        consumer = self._offsets
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        tps = [TopicPartition(topic, p) for p in meta.partitions]
        committed = sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
        end = sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in tps)
        return committed, end

    def close(self) -> None:
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None
        self.registry.close()

    def statuses_consumer(self) -> Consumer:
        consumer = Consumer({**self.kafka, "group.id": f"probe-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "latest",
                             "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
        consumer.subscribe([self.settings.topic(ROBOT_STATUS)])
        return consumer


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _offered(
    bench: _Bench, records: list[dict[str, Any]], rate: int, topic: str, sent: dict[tuple[str, int], float]
) -> None:
    """Produce ``records`` (pre-encoded) at ``rate`` records/s, remembering each one's send time."""
    codec = bench.codec("robot.telemetry")
    payloads = [(r["robot_id"], r["seq"], codec.encode(r)) for r in records]
    start = time.perf_counter()
    wall0 = time.time() - start
    for i, (robot, seq, data) in enumerate(payloads):
        due = start + i / rate
        while (now := time.perf_counter()) < due:
            time.sleep(min(0.001, due - now))
        sent[(robot, seq)] = wall0 + time.perf_counter()
        bench.producer.produce(topic, key=robot.encode(), value=data)
        bench.producer.poll(0)
    bench.producer.flush(60)


def _collect_latencies(
    consumer: Consumer,
    decode: Any,
    sent: dict[tuple[str, int], float],
    stop: threading.Event,
    out: list[float],
) -> None:
    while not stop.is_set():
        msg = consumer.poll(0.05)
        if msg is not None and not msg.error():
            arrived = time.time()
            value = decode(msg.value())
            key = (value["robot_id"], value["seq"]) if "seq" in value else None
            if key in sent:
                out.append((arrived - sent[key]) * 1000)


def _latency_run(
    bench: _Bench, records: list[dict[str, Any]], rate: int, out_topic: str, decode: Any
) -> list[float]:
    sent: dict[tuple[str, int], float] = {}
    consumer = Consumer({**bench.kafka, "group.id": f"probe-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "latest",
                         "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([out_topic])
    deadline = time.monotonic() + 20
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.1)
    latencies: list[float] = []
    stop = threading.Event()
    collector = threading.Thread(target=_collect_latencies, args=(consumer, decode, sent, stop, latencies))
    collector.start()
    _offered(bench, records, rate, bench.settings.topic("robot.telemetry"), sent)
    time.sleep(3)  # let the last outputs commit
    stop.set()
    collector.join()
    consumer.close()
    return latencies


def _topology_round(bench: _Bench, backlog: list[dict[str, Any]], topic: str) -> tuple[float, float]:
    """(records/s, CPU us per record) of the processor catching up ``backlog``, produced while it was
    paused, from its resume until its committed offsets reach the end of ``topic``."""
    codec = bench.codec("robot.telemetry")
    encoded = [(r["robot_id"].encode(), codec.encode(r)) for r in backlog]
    bench.pause_processor()
    try:
        for key, data in encoded:
            bench.producer.produce(topic, key=key, value=data)
            bench.producer.poll(0)
        bench.producer.flush(60)
    finally:
        bench.resume_processor()
    cpu0 = bench.processor_cpu_s()
    t0 = time.time()
    while True:
        committed, end = bench.committed(topic)
        if committed >= end:
            break
        if bench.processor_died():
            raise RuntimeError(f"telemetry processor died; see {bench.tmp}")
        time.sleep(0.05)
    elapsed = time.time() - t0
    return len(backlog) / elapsed, (bench.processor_cpu_s() - cpu0) / len(backlog) * 1e6


def _raw_round(bench: _Bench, ctx: Any, topic: str, count: int, group: str) -> tuple[float, float]:
    """(records/s, CPU us per record) of the raw loop, in its own process, over the first ``count``
    records of ``topic`` (a new consumer group reads from the start)."""
    queue = ctx.Queue()
    raw = ctx.Process(target=_raw_loop, args=(
        bench.kafka, bench.settings.registry_client_config(), topic, subject_name(bench.raw_topics[0]),
        bench.raw_topics[0], group, count, queue))  # fmt: skip
    raw.start()
    first, last, done, cpu_s = queue.get(timeout=600)
    raw.join(30)
    return done / (last - first), cpu_s / done * 1e6


def _row(name: str, value: float, unit: str, baseline: float | None, goal: str) -> dict[str, Any]:
    ratio = round(value / baseline, 3) if baseline else None
    return {"name": name, "value": round(value, 1), "unit": unit, "baseline": round(baseline, 1) if baseline else None,
            "ratio": ratio, "goal": goal}  # fmt: skip


def run() -> list[dict[str, Any]]:
    """Run the benchmark; returns result rows (name, value, unit, baseline, ratio, goal)."""
    base_settings = load_settings(CommonSettings)
    prefix = f"{base_settings.topic_prefix}bench-{uuid.uuid4().hex[:6]}."
    settings = base_settings.model_copy(update={"topic_prefix": prefix})
    partitions = _env_int("FLEET_BENCH_PARTITIONS", 2)
    robots = _env_int("FLEET_BENCH_ROBOTS", 500)
    total = _env_int("FLEET_BENCH_RECORDS", 100_000)
    rate = _env_int("FLEET_BENCH_RATE", 5_000)
    seconds = _env_int("FLEET_BENCH_SECONDS", 10)
    instances = _env_int("FLEET_BENCH_INSTANCES", 1)
    bench = _Bench(settings, partitions)
    bench.create_topics(partitions)
    passed = False
    ctx = mp.get_context("fork")
    try:
        bench.produce("site.maps", SITE, _site_map())
        for r in range(robots):
            bench.produce("robot.registry", f"b{r:04d}", _registration(f"b{r:04d}"))
        bench.producer.flush(30)
        base = now_ms() - 48 * 3_600_000  # event time in the past: no rejection, no timer fires
        warm = make_stream(robots, 1, 2, base)
        for record in warm:
            bench.produce("robot.telemetry", record["robot_id"], record)
        bench.producer.flush(30)
        bench.start_processor(instances)
        telemetry_topic = settings.topic("robot.telemetry")
        deadline = time.monotonic() + 120
        while bench.committed(telemetry_topic)[0] < len(warm):
            if time.monotonic() > deadline or bench.processor_died():
                raise RuntimeError(f"telemetry processor did not start; see {bench.tmp}")
            time.sleep(0.2)

        # Throughput: interleaved rounds of a backlog the processor catches up with, then the raw loop.
        rounds = max(1, _env_int("FLEET_BENCH_ROUNDS", 3))
        samples = max(1, total // robots)
        seq = 3
        in_topic = len(warm)
        topo_rates, topo_cpus, raw_rates, raw_cpus = [], [], [], []
        for n in range(rounds):
            backlog = make_stream(robots, seq, samples, base)
            seq += samples
            rate_n, cpu_n = _topology_round(bench, backlog, telemetry_topic)
            in_topic += len(backlog)
            raw_n, raw_cpu_n = _raw_round(bench, ctx, telemetry_topic, in_topic, f"{prefix}raw-{n}")
            logger.info(
                "round %d/%d: topology %.0f records/s (%.0f us CPU each), raw loop %.0f/s over %d records "
                "(%.0f us CPU each): %.1f%%",
                n + 1, rounds, rate_n, cpu_n, raw_n, in_topic, raw_cpu_n, 100 * rate_n / raw_n,
            )  # fmt: skip
            topo_rates.append(rate_n)
            topo_cpus.append(cpu_n)
            raw_rates.append(raw_n)
            raw_cpus.append(raw_cpu_n)
        topo_rate, raw_rate = statistics.median(topo_rates), statistics.median(raw_rates)
        topo_cpu_us, raw_cpu_us = statistics.median(topo_cpus), statistics.median(raw_cpus)

        # Latency at a fixed offered load: the topology first, then the raw loop on fresh records.
        live = make_stream(robots, seq, max(1, rate * seconds // robots), base)
        status_codec = bench.codec(ROBOT_STATUS)
        topo_lat = _latency_run(bench, live, rate, settings.topic(ROBOT_STATUS), status_codec.decode)
        raw = ctx.Process(target=_raw_loop, args=(
            bench.kafka, settings.registry_client_config(), telemetry_topic, subject_name(bench.raw_topics[1]),
            bench.raw_topics[1], f"{prefix}raw-live-{uuid.uuid4().hex[:6]}", 0, ctx.Queue(), "latest"))  # fmt: skip
        raw.start()
        time.sleep(5)  # joined its group (it reads from the end)
        raw_reader = AvroCodec.for_record(bench.registry, "RobotTelemetry", subject_name(bench.raw_topics[1]))
        more = make_stream(robots, seq + len(live) // robots, max(1, rate * seconds // robots), base)
        raw_lat = _latency_run(bench, more, rate, bench.raw_topics[1], raw_reader.decode)
        raw.kill()
        raw.join(10)
        passed = True
    finally:
        bench.stop_processor()
        bench.drop_topics()
        bench.close()
    if passed:  # a failed run keeps the processor's state and log for a look (the errors name the folder)
        shutil.rmtree(bench.tmp, ignore_errors=True)

    p50, p99 = _percentile(topo_lat, 0.5), _percentile(topo_lat, 0.99)
    raw50, raw99 = _percentile(raw_lat, 0.5), _percentile(raw_lat, 0.99)
    logger.info("latency samples: topology %d, raw %d; topology mean %.1f ms", len(topo_lat), len(raw_lat),
                statistics.fmean(topo_lat) if topo_lat else float("nan"))  # fmt: skip
    goal = f">= {GOAL_RATE:,} records/s and >= {GOAL_RATIO:.0%} of raw"
    suffix = f"[{instances} processes]" if instances > 1 else ""
    return [
        _row(f"telemetry.throughput{suffix}", topo_rate, "records/s", raw_rate, goal),
        _row(
            f"telemetry.cpu_per_record{suffix}",
            topo_cpu_us,
            "us",
            raw_cpu_us,
            "report: processor CPU (user+system) per record, less noisy than records/s",
        ),
        _row(f"telemetry.latency_p50@{rate}/s", p50, "ms", raw50, "report (raw loop as baseline)"),
        _row(f"telemetry.latency_p99@{rate}/s", p99, "ms", raw99, "report (raw loop as baseline)"),
    ]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for row in run():
        sys.stdout.write(f"{row}\n")
