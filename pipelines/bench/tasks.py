"""Benchmark: commands/s through the tasks topology (``fleet run tasks``, exactly-once) vs a raw loop, same run.

Workload: CREATE commands (Avro TaskCommand, no dependencies) for distinct tasks, keyed by task id on a
``FLEET_BENCH_PARTITIONS``-partition (default 2) ``task.commands``. For each, the topology normalizes the
command into its inbox (one hop through Kafka), applies the state machine with the task's state in RocksDB
(changelogged) and emits CREATED and QUEUED, all in Kafka transactions.

- pure step: inputs/s of ``topologies.tasks.step`` in process, no Kafka (create, assign, STARTED,
  COMPLETED per task);
- throughput: commands/s to work off a backlog of ``FLEET_BENCH_COMMANDS`` (default 20,000), from the first
  produce until every task's QUEUED event is visible to a read_committed reader;
- latency: command produced -> QUEUED visible, p50/p99, at ``FLEET_BENCH_RATE`` (default 200) commands/s
  for ``FLEET_BENCH_SECONDS`` (default 10);
- baseline: a raw loop over the same commands in its own process: confluent-kafka consume -> Avro decode ->
  build one TaskEvent -> Avro encode -> produce; at least once, no state, no transactions, one hop.
Goals: >= 2,000 commands/s, >= 25% of the raw loop (the topology makes two hops and two events per
command, transactionally); latency p99 < 1 s.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.bench import replication
from pipelines.settings import CommonSettings, load_settings
from schemas.avsc import load_schema
from schemas.catalog import subject_name, topics
from schemas.codec import AvroCodec
from schemas.ids import now_ms, uuid7
from schemas.registry import RegistryClient
from topologies.tasks import TasksConfig, step

__all__ = ["command", "run"]

logger = logging.getLogger(__name__)

GOAL_RATE = 2_000
GOAL_RATIO = 0.25
GOAL_P99_MS = 1_000.0
TENANT = "bench"
TOPICS = (
    "task.commands", "task.events", "task.schedules", "scheduler.decisions", "robot.telemetry", "rmf.task_states",
    "timers", "timers.due.tasks", "dlq.tasks",
)  # fmt: skip
_SPEC = {
    "category": "delivery", "priority": 5, "pickup_node": "A", "dropoff_node": "B", "required_capabilities": [],
    "deadline": None, "timeout_ms": None, "max_attempts": 3, "depends_on": [], "on_dependency_failure": "CANCEL",
    "fleet_id": None, "robot_id": None, "labels": {}, "payload_json": None,
}  # fmt: skip


def command(task_id: str, at: int) -> dict[str, Any]:
    return {
        "event_id": uuid7(), "tenant_id": TENANT, "site_id": "s1", "occurred_at": at, "task_id": task_id,
        "command": "CREATE", "idempotency_key": task_id, "spec": _SPEC, "reason": None, "requested_by": "bench",
        "timer": None,
    }  # fmt: skip


def _pure_rate(tasks: int) -> float:
    cfg = TasksConfig()
    base = {"tenant_id": TENANT, "site_id": "s1", "event_id": None}
    inputs: list[Any] = []  # partial TaskInputs (the optional fields left out): what step reads
    for i in range(tasks):
        tid = f"p{i}"
        at = 1_767_225_600_000 + i
        inputs.append({**base, "type": "create", "task_id": tid, "occurred_at": at, "spec": _SPEC})
        inputs.append({**base, "type": "assign", "task_id": tid, "occurred_at": at + 1, "robot_id": "r1"})
        for observed in ("EXECUTING", "SUCCEEDED"):
            inputs.append({**base, "type": "observe", "task_id": tid, "occurred_at": at + 2, "observed": observed,
                           "robot_id": "r1", "source": "telemetry"})  # fmt: skip
    states: dict[str, Any] = {}
    started = time.perf_counter()
    for inp in inputs:
        states[inp["task_id"]], _ = step(states.get(inp["task_id"]), inp, cfg)
    return len(inputs) / (time.perf_counter() - started)


def _raw_loop(kafka: dict[str, Any], registry_cfg: dict[str, Any], in_topic: str, out_topic: str, count: int,
              result: Any) -> None:  # fmt: skip
    """consume -> decode -> one TaskEvent -> encode -> produce, ``count`` commands; reports the rate."""
    registry = RegistryClient(**registry_cfg)
    reader = AvroCodec.for_record(registry, "TaskCommand", subject_name(in_topic), auto_register=False)
    writer = AvroCodec(registry, subject_name(out_topic), load_schema("TaskEvent"))
    writer.prepare()
    consumer = Consumer({**kafka, "group.id": f"raw-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    producer = Producer({**kafka, "linger.ms": 5, "enable.idempotence": True})
    consumer.subscribe([in_topic])
    done, first = 0, 0.0
    while done < count:
        for msg in consumer.consume(num_messages=1000, timeout=0.05):
            if msg.error():
                continue
            first = first or time.perf_counter()
            cmd = reader.decode(msg.value())
            assert cmd is not None
            event = {
                "event_id": uuid7(), "tenant_id": cmd["tenant_id"], "site_id": cmd["site_id"],
                "occurred_at": cmd["occurred_at"], "task_id": cmd["task_id"], "seq": 1, "kind": "TRANSITION",
                "state": "CREATED", "previous_state": None, "reason": None, "robot_id": None, "attempt": 0,
                "spec": cmd["spec"], "external_id": None, "causation_id": cmd["event_id"],
            }  # fmt: skip
            producer.produce(out_topic, key=msg.key(), value=writer.encode(event))
            done += 1
        producer.poll(0)
    producer.flush(60)
    result.put(count / (time.perf_counter() - first))
    consumer.close()


class _Bench:
    def __init__(self, settings: CommonSettings, partitions: int) -> None:
        self.settings = settings
        self.kafka = settings.kafka_client_config()
        self.admin = AdminClient(self.kafka)
        self.registry = RegistryClient(**settings.registry_client_config())
        self.prefix = settings.topic_prefix
        self.partitions = partitions
        self.raw_topic = f"{self.prefix}bench.raw.events"
        # The records a robot fleet sends: keys hashed with murmur2 as our simulator, Java clients and aiokafka
        # do (a librdkafka default producer, CRC32, would put most on another partition than their key's,
        # and the processor would forward each through its inbox: another hop per record).
        self.producer = Producer(
            {**settings.kafka_producer_config(), "linger.ms": 5, "queue.buffering.max.messages": 1_000_000}
        )
        self.codec = AvroCodec.for_topic(self.registry, "task.commands", self.prefix)
        self.events = AvroCodec.for_topic(self.registry, "task.events", self.prefix)
        self.tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-tasks-"))
        self.procs: list[subprocess.Popen] = []
        self.instances = int(os.environ.get("FLEET_BENCH_INSTANCES", 1))

    def create_topics(self) -> None:
        specs = topics(self.prefix, partitions={"task": self.partitions}, names=TOPICS)
        rf, extra = replication()
        new = [
            NewTopic(
                s.name, num_partitions=s.partitions, replication_factor=rf, config={**s.config(), **extra}
            )
            for s in specs
        ]
        new += [NewTopic(t, num_partitions=self.partitions, replication_factor=rf, config=extra)
                for t in (f"{self.prefix}tasks.inbox", self.raw_topic)]  # fmt: skip
        for future in self.admin.create_topics(new).values():
            future.result(30)

    def drop_topics(self) -> None:
        names = [t for t in self.admin.list_topics(timeout=10).topics if self.prefix in t]
        for future in self.admin.delete_topics(names).values() if names else []:
            try:
                future.result(30)
            except Exception as exc:  # best effort: a bench must not fail on clean-up
                logger.warning("could not delete a bench topic: %s", exc)

    def start(self) -> None:
        """``FLEET_BENCH_INSTANCES`` tasks processes (default 1) in one consumer group."""
        for n in range(self.instances):
            env = {
                **os.environ, "FLEET_TOPIC_PREFIX": self.prefix, "FLEET_STATE_DIR": str(self.tmp / f"state-{n}"),
                "FLEET_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
                "FLEET_SCHEMA_REGISTRY_URL": self.settings.schema_registry_url, "FLEET_LOG_LEVEL": "WARNING",
                "FLEET_PARTITIONS": str(self.partitions), "FLEET_INSTANCE_ID": f"bench-{n}", "FLEET_LOG_FORMAT": "text",
            }  # fmt: skip
            log = open(self.tmp / f"tasks-{n}.log", "ab")  # noqa: SIM115 - owned by the child process
            command_line = [str(Path(sys.executable).with_name("fleet")), "run", "tasks"]
            self.procs.append(subprocess.Popen(command_line, env=env, stdout=log, stderr=subprocess.STDOUT))

    def stop(self) -> None:
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

    def produce(self, payloads: list[tuple[bytes, bytes]], rate: float | None = None,
                sent: dict[bytes, float] | None = None) -> None:  # fmt: skip
        topic = self.settings.topic("task.commands")
        started = time.perf_counter()
        for i, (key, data) in enumerate(payloads):
            if rate:
                due = started + i / rate
                while (left := due - time.perf_counter()) > 0:
                    time.sleep(min(0.001, left))
            if sent is not None:
                sent[key] = time.time()
            while True:
                try:
                    self.producer.produce(topic, key=key, value=data)
                    break
                except BufferError:
                    self.producer.poll(0.05)
            self.producer.poll(0)
        self.producer.flush(60)

    def watch(
        self, wanted: set[bytes], sent: dict[bytes, float] | None, timeout: float
    ) -> tuple[float, list[float]]:
        """Until every task in ``wanted`` has its QUEUED event visible: (wall time then, latencies in ms)."""
        consumer = Consumer({**self.kafka, "group.id": f"probe-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                             "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
        consumer.subscribe([self.settings.topic("task.events")])
        pending = set(wanted)
        latencies: list[float] = []
        deadline = time.monotonic() + timeout
        try:
            while pending and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=1000, timeout=0.05):
                    if msg.error() or msg.key() not in pending:
                        continue
                    arrived = time.time()
                    event = self.events.decode(msg.value())
                    if event and event["state"] == "QUEUED":
                        pending.discard(msg.key())
                        if sent is not None:
                            latencies.append((arrived - sent[msg.key()]) * 1000)
                if any(proc.poll() is not None for proc in self.procs):
                    raise RuntimeError(f"a tasks processor died; see {self.tmp}")
        finally:
            consumer.close()
        if pending:
            raise RuntimeError(f"{len(pending)} tasks never QUEUED; see {self.tmp}")
        return time.time(), latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def _batch(bench: _Bench, name: str, count: int) -> list[tuple[bytes, bytes]]:
    at = now_ms()
    out = []
    for i in range(count):
        tid = f"{name}-{i:06d}"
        data = bench.codec.encode(command(tid, at))
        assert data is not None
        out.append((tid.encode(), data))
    return out


def run() -> list[dict[str, Any]]:
    """Run the benchmark; returns result rows (name, value, unit, baseline, ratio, goal)."""
    base = load_settings(CommonSettings)
    settings = base.model_copy(update={"topic_prefix": f"{base.topic_prefix}bench-{uuid.uuid4().hex[:6]}."})
    partitions = int(os.environ.get("FLEET_BENCH_PARTITIONS", 2))
    total = int(os.environ.get("FLEET_BENCH_COMMANDS", 20_000))
    rate = int(os.environ.get("FLEET_BENCH_RATE", 200))
    seconds = int(os.environ.get("FLEET_BENCH_SECONDS", 10))
    pure = _pure_rate(20_000)
    bench = _Bench(settings, partitions)
    bench.create_topics()
    try:
        bench.start()
        warm = _batch(bench, "warm", 200)
        bench.produce(warm)
        bench.watch({k for k, _ in warm}, None, timeout=120)
        backlog = _batch(bench, "backlog", total)
        t0 = time.time()
        threading.Thread(target=bench.produce, args=(backlog,), daemon=True).start()
        done, _ = bench.watch({k for k, _ in backlog}, None, timeout=600)
        topo_rate = total / (done - t0)
        offered = _batch(bench, "latency", rate * seconds)
        sent: dict[bytes, float] = {}
        threading.Thread(target=bench.produce, args=(offered, rate, sent), daemon=True).start()
        _, latencies = bench.watch({k for k, _ in offered}, sent, timeout=seconds + 60)
        bench.stop()
        queue: Any = mp.get_context("fork").Queue()
        count = len(warm) + total + len(offered)
        raw = mp.get_context("fork").Process(target=_raw_loop, args=(
            bench.kafka, settings.registry_client_config(), settings.topic("task.commands"), bench.raw_topic, count,
            queue))  # fmt: skip
        raw.start()
        raw_rate = queue.get(timeout=600)
        raw.join(30)
    finally:
        bench.stop()
        bench.drop_topics()
    p50, p99 = _percentile(latencies, 0.5), _percentile(latencies, 0.99)
    logger.info("tasks: pure %.0f inputs/s; topology %.0f commands/s; raw %.0f/s; latency p50 %.0f p99 %.0f ms",
                pure, topo_rate, raw_rate, p50, p99)  # fmt: skip
    return [
        {"name": "tasks step (pure, in process)", "value": pure, "unit": "inputs/s", "baseline": None,
         "ratio": None, "goal": "(reference)"},
        {"name": "tasks topology, backlog" + (f"[{bench.instances} processes]" if bench.instances > 1 else ""),
         "value": topo_rate, "unit": "commands/s", "baseline": raw_rate,
         "ratio": topo_rate / raw_rate, "goal": f">= {GOAL_RATE:,}/s and >= {GOAL_RATIO:.0%} of raw"},
        {"name": f"tasks command -> QUEUED p50 @{rate}/s", "value": p50, "unit": "ms", "baseline": None,
         "ratio": None, "goal": "(reference)"},
        {"name": f"tasks command -> QUEUED p99 @{rate}/s", "value": p99, "unit": "ms", "baseline": None,
         "ratio": None, "goal": f"< {GOAL_P99_MS:,.0f} ms"},
    ]  # fmt: skip
