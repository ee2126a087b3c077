"""Benchmark: the VDA 5050 bridge (`fleet run vda5050`) with 500 simulated vehicles at 2 Hz, against a raw
MQTT -> Kafka relay in the same run.

The load: ``fleet simulate --protocol vda5050`` in a process of its own, ``FLEET_BENCH_VDA_VEHICLES``
(500) VDA 5050 2.1 vehicles on the small generated warehouse (~2,000 nodes) sending a ``state`` each every
0.5 s (1,000 messages/s) through the local Mosquitto. The bridge process (ingress, decision forwarder,
exactly-once topology, egress) turns each into RobotTelemetry.

- vehicle messages/s the bridge carried over a window of ``FLEET_BENCH_VDA_SECONDS`` (the offsets its
  topology committed on ``vda5050.inbound``; after the warm-up nearly all are states, each one a
  RobotTelemetry), and its CPU (user + system, ``/proc``) over the window; "per core" = messages / CPU
  seconds. Lost: the states the bridge's MQTT client received (its
  shutdown line) minus the telemetry records, after the simulator stopped and the bridge drained.
- decision -> order: during the window, ``FLEET_BENCH_VDA_DECISIONS`` ASSIGN decisions (5 a second) to
  vehicles; latency from the decision's acknowledgement by Kafka (it is readable then) to the order's
  arrival at an MQTT subscriber; p50 / p99.
- baseline: a raw relay (paho subscriber -> confluent-kafka producer, no parsing, no validation, no
  state) on the same stream just before the bridge starts, its CPU per message over a window as long.

Goals: >= 1,000 state messages/s on one core, 0 lost, order p99 < 100 ms.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.bench import process_cpu_s
from pipelines.settings import CommonSettings, load_settings
from pipelines.vda5050.mqtt import MqttClient
from pipelines.vda5050.settings import MqttSettings
from schemas import catalog
from schemas.catalog import topics
from schemas.codec import AvroCodec
from schemas.ids import now_ms, uuid7
from schemas.registry import RegistryClient

__all__ = ["run"]

logger = logging.getLogger(__name__)

VEHICLES = int(os.environ.get("FLEET_BENCH_VDA_VEHICLES", "500"))
SECONDS = float(os.environ.get("FLEET_BENCH_VDA_SECONDS", "30"))
DECISIONS = int(os.environ.get("FLEET_BENCH_VDA_DECISIONS", "100"))
PASSWORD = os.environ.get("FLEET_BENCH_MQTT_PASSWORD", "fleetstream-dev")
GOAL_RATE, GOAL_P99_MS = 1000, 100
TENANT, SITE, MANUFACTURER = "bench", "bench-vda", "fleetstream-sim"
TOPICS = (
    catalog.VDA5050_INBOUND, catalog.VDA5050_DECISIONS, catalog.VDA5050_OUTBOUND, catalog.dlq_topic("vda5050"),
    catalog.SCHEDULER_DECISIONS, catalog.TASK_EVENTS, catalog.ROBOT_TELEMETRY, catalog.ROBOT_REGISTRY,
    catalog.ROBOT_STATUS, catalog.ALERTS, catalog.SITE_MAPS,
)  # fmt: skip


def _consumed(admin: AdminClient, settings: CommonSettings) -> int:
    """Offsets the bridge's topology has committed on vda5050.inbound: the messages it has processed."""
    group = f"{settings.topic_prefix}fleet-vda5050"
    result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result()
    inbound = settings.topic(catalog.VDA5050_INBOUND)
    return sum(max(tp.offset, 0) for tp in result.topic_partitions or () if tp.topic == inbound)


def _records(settings: CommonSettings, name: str) -> int:
    """Records of a topic (read committed, to its end): transaction markers are not counted."""
    consumer = Consumer({**settings.kafka_client_config(), "group.id": uuid.uuid4().hex,
                         "isolation.level": "read_committed", "enable.partition.eof": True})  # fmt: skip
    topic = settings.topic(name)
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    seen, ended = 0, set[int]()
    deadline = time.monotonic() + 120
    try:
        while len(ended) < len(meta.partitions) and time.monotonic() < deadline:
            for msg in consumer.consume(5000, timeout=0.5):
                if msg.error():
                    ended.add(msg.partition())
                else:
                    seen += 1
        return seen
    finally:
        consumer.close()


def _watermarks(settings: CommonSettings, name: str) -> int:
    consumer = Consumer({**settings.kafka_client_config(), "group.id": uuid.uuid4().hex})
    try:
        topic = settings.topic(name)
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions
        )
    finally:
        consumer.close()


class _Orders:
    """An MQTT subscriber noting when each order arrives (orderId -> wall ms)."""

    def __init__(self, mqtt: dict[str, Any], interface: str) -> None:
        self.arrived: dict[str, int] = {}
        import orjson

        def seen(_topic: str, payload: bytes, at: int) -> None:
            self.arrived.setdefault(orjson.loads(payload)["orderId"], at)

        options = {**mqtt, "username": "fleetstream-observer", "password": PASSWORD}
        self.client = MqttClient(**options, client_id=f"bench-orders-{uuid.uuid4().hex[:6]}",
                                 subscriptions=[f"{interface}/v2/+/+/order"], on_message=seen).connect()  # fmt: skip

    def close(self) -> None:
        self.client.close()


def _raw_relay(
    mqtt: dict[str, Any], interface: str, settings: CommonSettings, topic: str, seconds: float
) -> tuple[int, float]:
    """The baseline: every state message of the stream produced to Kafka as it is; (messages, CPU s)."""
    producer = Producer({**settings.kafka_producer_config(), "linger.ms": 2, "compression.type": "lz4"})
    count = [0]

    def relay(mqtt_topic: str, payload: bytes, at: int) -> None:
        key = mqtt_topic.split("/")[3].encode()
        while True:
            try:
                producer.produce(topic, value=payload, key=key, timestamp=at)
                break
            except BufferError:
                producer.poll(0.05)
        count[0] += 1

    options = {**mqtt, "username": "fleetstream-bridge", "password": PASSWORD}
    client = MqttClient(**options, client_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
                        subscriptions=[f"{interface}/v2/+/+/state"], on_message=relay).connect()  # fmt: skip
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    n0 = count[0]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        producer.poll(0.1)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    n = count[0] - n0
    client.close()
    producer.flush(30)
    cpu = (usage1.ru_utime + usage1.ru_stime) - (usage0.ru_utime + usage0.ru_stime)
    return n, cpu


def _row(
    name: str, value: float | None, unit: str, baseline: float | None, goal: str, digits: int = 1
) -> dict[str, Any]:
    ratio = round(value / baseline, 3) if value is not None and baseline else None
    return {"name": name, "value": None if value is None else round(value, digits), "unit": unit,
            "baseline": None if baseline is None else round(baseline, digits), "ratio": ratio, "goal": goal}  # fmt: skip


def run() -> list[dict[str, Any]]:
    base = load_settings(MqttSettings, environment="test")
    settings = base.model_copy(update={"topic_prefix": f"bench{uuid.uuid4().hex[:8]}."})
    mqtt = settings.mqtt_options()
    interface = f"b{uuid.uuid4().hex[:7]}"
    admin = AdminClient(settings.kafka_client_config())
    specs = topics(settings.topic_prefix, names=TOPICS)
    raw_topic = settings.topic("raw.vda5050")
    for fut in admin.create_topics([
        *(NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs),
        NewTopic(raw_topic, num_partitions=6, replication_factor=1),
    ]).values():  # fmt: skip
        fut.result(30)
    tmp = Path(tempfile.mkdtemp(prefix="bench-vda5050-"))
    env = {**os.environ, "FLEET_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
           "FLEET_SCHEMA_REGISTRY_URL": settings.schema_registry_url, "FLEET_TOPIC_PREFIX": settings.topic_prefix,
           "FLEET_STATE_DIR": str(tmp / "state"), "FLEET_LOG_FORMAT": "text", "FLEET_ENVIRONMENT": "test",
           "FLEET_MQTT_URL": settings.mqtt_url, "FLEET_MQTT_PASSWORD": PASSWORD}  # fmt: skip
    fleet = [sys.executable, "-m", "pipelines.cli"]
    warmup_s = 150.0
    total_s = 5.0 + 2 * SECONDS + warmup_s + SECONDS + 60  # ended by terminate() after the window
    simulator = subprocess.Popen(
        [*fleet, "simulate", "--protocol", "vda5050", "--robots", str(VEHICLES), "--rate", "2", "--site", SITE,
         "--tenant", TENANT, "--vda-interface", interface, "--duration", str(total_s), "--quiet",
         "--layout", "small"],
        env={**env, "FLEET_MQTT_USERNAME": "fleetstream-sim"},
        stdout=open(tmp / "simulator.log", "ab"),  # noqa: SIM115 - owned by the child process
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    bridge: subprocess.Popen[bytes] | None = None
    rows: list[dict[str, Any]] = []
    try:
        time.sleep(5.0)
        # the baseline first, on the stream the bridge will then carry: the least MQTT -> Kafka costs
        raw_n, raw_cpu = _raw_relay(mqtt, interface, settings, raw_topic, SECONDS)
        bridge = subprocess.Popen(
            [*fleet, "run", "vda5050"],
            env={
                **env,
                "FLEET_MQTT_USERNAME": "fleetstream-bridge",
                "FLEET_VDA_TENANT_ID": TENANT,
                "FLEET_VDA_SITE_ID": SITE,
                "FLEET_VDA_INTERFACE_NAME": interface,
                "FLEET_MQTT_CLIENT_ID": f"bench-bridge-{interface}",
            },
            stdout=open(tmp / "bridge.log", "ab"),  # noqa: SIM115 - owned by the child process
            stderr=subprocess.STDOUT,
        )
        # warm-up: every vehicle registered (factsheets asked for and answered) and the bridge caught up
        # with what the vehicles sent meanwhile (5 s in a row less than 0.2 s behind)
        deadline, steady = time.monotonic() + warmup_s, 0
        while time.monotonic() < deadline and steady < 5:
            assert bridge.poll() is None, (tmp / "bridge.log").read_text()[-3000:]
            behind = _watermarks(settings, catalog.VDA5050_INBOUND) - _consumed(admin, settings)
            caught_up = (
                _watermarks(settings, catalog.ROBOT_TELEMETRY) >= 4 * VEHICLES and behind < VEHICLES * 2 // 5
            )
            steady = steady + 1 if caught_up else 0
            time.sleep(1.0)
        if steady < 5:
            logger.warning(
                "vda5050: the bridge did not catch up with the vehicles in %.0f s (%d messages behind); "
                "the window measures a backlogged bridge",
                warmup_s,
                _watermarks(settings, catalog.VDA5050_INBOUND) - _consumed(admin, settings),
            )
        orders = _Orders(mqtt, interface)
        registry = RegistryClient(**settings.registry_client_config())
        decisions_codec = AvroCodec.for_topic(registry, catalog.SCHEDULER_DECISIONS, settings.topic_prefix)
        producer = Producer(settings.kafka_producer_config())
        acked: dict[str, int] = {}

        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                acked[msg.key().decode()] = now_ms()

        nodes = _standing_nodes(settings, DECISIONS)
        t0_count, cpu0, t0 = (
            _watermarks(settings, catalog.ROBOT_TELEMETRY),
            process_cpu_s(bridge.pid),
            time.monotonic(),
        )
        gap = SECONDS / max(len(nodes), 1)
        for i, (robot, node) in enumerate(nodes):
            decision_id = str(uuid.uuid4())
            record = {"event_id": uuid7(), "tenant_id": TENANT, "site_id": SITE, "occurred_at": now_ms(),
                      "decision_id": decision_id, "kind": "ASSIGN", "robot_id": robot, "task_id": None,
                      "route": [{"node_id": node, "eta": now_ms()}], "eta": None, "cost": None, "reason": "bench",
                      "conflict_id": None, "planner": "bench", "granted": None, "plan_id": None, "plan_seq": None}  # fmt: skip
            producer.produce(settings.topic(catalog.SCHEDULER_DECISIONS), key=decision_id.encode(),
                             value=decisions_codec.encode(record), on_delivery=delivered)  # fmt: skip
            producer.flush(10)
            wait = t0 + (i + 1) * gap - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        time.sleep(max(0.0, t0 + SECONDS - time.monotonic()))
        t1_count, cpu1, t1 = (
            _watermarks(settings, catalog.ROBOT_TELEMETRY),
            process_cpu_s(bridge.pid),
            time.monotonic(),
        )
        time.sleep(2.0)
        orders.close()
        registry.close()
        latencies = sorted(orders.arrived[d] - acked[d] for d in acked if d in orders.arrived)
        carried, cpu = t1_count - t0_count, cpu1 - cpu0
        simulator.terminate()
        simulator.wait(60)
        deadline = time.monotonic() + 120  # the bridge drains: its topology consumes the inbound to its end
        while time.monotonic() < deadline and _consumed(admin, settings) < _watermarks(
            settings, catalog.VDA5050_INBOUND
        ):
            time.sleep(1.0)
        bridge.terminate()
        bridge.wait(60)
        received_states, written = _ingress_counts(tmp / "bridge.log")
        telemetry_total = _records(settings, catalog.ROBOT_TELEMETRY)
        rate = carried / (t1 - t0)
        per_core = carried / cpu if cpu > 0 else None
        raw_per_core = raw_n / raw_cpu if raw_cpu > 0 else None
        p50 = statistics.median(latencies) if latencies else None
        p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else None
        lost = None if received_states is None else float(received_states - telemetry_total)
        logger.info(
            "vda5050: %d states in %.1f s (%.0f/s), bridge CPU %.1f s (%.0f%% of a core); raw relay %d in %.1f "
            "CPU s; bridge received %s states, wrote %s messages, telemetry %d; %d/%d orders, p50 %s ms p99 %s ms",
            carried, t1 - t0, rate, cpu, 100 * cpu / (t1 - t0), raw_n, raw_cpu, received_states, written,
            telemetry_total, len(latencies), len(acked), p50, p99,
        )  # fmt: skip
        rows = [
            _row(
                "vda5050.states_per_s",
                rate,
                "msg/s",
                None,
                f"offered {2 * VEHICLES:,}/s ({VEHICLES} vehicles, 2 Hz)",
            ),
            _row(
                "vda5050.states_per_core_s",
                per_core,
                "msg/CPU-s",
                raw_per_core,
                f">= {GOAL_RATE:,}/s on one core",
            ),
            _row("vda5050.bridge_cpu", 100 * cpu / (t1 - t0), "% of a core", None, "at the offered rate"),
            _row("vda5050.lost", lost, "states", 0.0, "0 lost (received by the bridge - telemetry)"),
            _row("vda5050.order_latency_p50", p50, "ms", None, "decision readable -> order on MQTT"),
            _row(
                "vda5050.order_latency_p99", p99, "ms", None, f"< {GOAL_P99_MS} ms ({len(latencies)} orders)"
            ),
        ]
    finally:
        for proc in (simulator, bridge):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        mine = [t for t in admin.list_topics(timeout=10).topics if settings.topic_prefix in t]
        for fut in admin.delete_topics(mine).values() if mine else []:
            try:
                fut.result(30)
            except Exception as exc:  # clean-up only
                logger.warning("could not delete a bench topic: %s", exc)
    return rows


def _ingress_counts(log: Path) -> tuple[int | None, int | None]:
    """(states received, messages written to Kafka) from the bridge's shutdown line."""
    found = re.findall(
        r"ingress: (\d+) messages received \((\d+) states\), (\d+) written", log.read_text(errors="replace")
    )
    return (int(found[-1][1]), int(found[-1][2])) if found else (None, None)


def _standing_nodes(settings: CommonSettings, count: int) -> list[tuple[str, str]]:
    """(robot, the node it stands on) for ``count`` vehicles, from their telemetry."""
    registry = RegistryClient(**settings.registry_client_config())
    codec = AvroCodec.for_topic(registry, catalog.ROBOT_TELEMETRY, settings.topic_prefix)
    consumer = Consumer({**settings.kafka_client_config(), "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([settings.topic(catalog.ROBOT_TELEMETRY)])
    found: dict[str, str] = {}
    deadline = time.monotonic() + 30
    try:
        while len(found) < count and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() or msg.value() is None:
                    continue
                record = codec.decode(msg.value())
                if record and record["pose"]["node_id"]:
                    found[record["robot_id"]] = record["pose"]["node_id"]

    finally:
        consumer.close()
        registry.close()
    return list(found.items())[:count]
