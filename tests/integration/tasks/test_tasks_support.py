"""The tasks pipeline against the real stack: catalog topics under a unique prefix, an Avro producer,
processors as subprocesses (``fleet run tasks|timers|sink_postgres``) and read_committed readers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.settings import CommonSettings
from schemas.catalog import topics as catalog_topics
from schemas.codec import AvroCodec
from schemas.ids import now_ms, uuid7
from schemas.registry import RegistryClient

FLEET = Path(sys.executable).with_name("fleet")
PARTITIONS = 2
TOPICS = (
    "task.commands",
    "task.events",
    "task.schedules",
    "scheduler.decisions",
    "robot.telemetry",
    "rmf.task_states",
    "timers",
    "timers.due.tasks",
    "robot.status",
    "robot.registry",
    "site.maps",
    "traffic.conflicts",
    "alerts",
    "audit.log",
    "dlq.tasks",
    "dlq.sink-postgres",
)


@dataclass
class TaskStack:
    """One test's slice of the stack: prefixed topics, codecs, a producer and processes."""

    settings: CommonSettings
    registry: RegistryClient
    tmp: Path
    admin: AdminClient
    producer: Producer = field(init=False)
    _codecs: dict[str, AvroCodec] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.producer = Producer({**self.settings.kafka_producer_config(), "linger.ms": 5})

    @property
    def prefix(self) -> str:
        return self.settings.topic_prefix

    def codec(self, name: str) -> AvroCodec:
        if name not in self._codecs:
            self._codecs[name] = AvroCodec.for_topic(self.registry, name, self.prefix)
        return self._codecs[name]

    def produce(self, name: str, key: str, value: dict[str, Any] | bytes | None) -> None:
        data = value if isinstance(value, bytes) or value is None else self.codec(name).encode(value)
        while True:
            try:
                self.producer.produce(self.settings.topic(name), key=key.encode(), value=data)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0

    def env(self, **extra: Any) -> dict[str, str]:
        s = self.settings
        env = {
            **os.environ,
            "FLEET_KAFKA_BOOTSTRAP_SERVERS": s.kafka_bootstrap_servers,
            "FLEET_SCHEMA_REGISTRY_URL": s.schema_registry_url,
            "FLEET_TOPIC_PREFIX": s.topic_prefix,
            "FLEET_STATE_DIR": str(s.state_dir),
            "FLEET_ENVIRONMENT": "test",
            "FLEET_LOG_FORMAT": "json",
            "FLEET_PARTITIONS": str(PARTITIONS),
        }
        env.update({f"FLEET_{k.upper()}": str(v) for k, v in extra.items()})
        return env

    def start(self, processor: str, **extra: Any) -> subprocess.Popen:
        """Start ``fleet run <processor>``; its log goes to ``<tmp>/<processor>.log`` (appended)."""
        log = open(self.tmp / f"{processor}.log", "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [str(FLEET), "run", processor],
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[processor] = proc
        return proc

    def kill(self, processor: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(processor)
        proc.send_signal(sig)
        proc.wait(30)

    def log(self, processor: str) -> str:
        path = self.tmp / f"{processor}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_started(self, processor: str, timeout: float = 60.0) -> None:
        """Until the processor's application logs that it processes messages."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "is now processing incoming messages" in self.log(processor):
                return
            proc = self.procs.get(processor)
            assert proc is None or proc.poll() is None, f"{processor} exited:\n{self.log(processor)[-3000:]}"
            time.sleep(0.2)
        raise AssertionError(f"{processor} did not start:\n{self.log(processor)[-3000:]}")

    def reader(self, name: str) -> Consumer:
        """A read_committed consumer of a whole topic (every partition, from the beginning)."""
        consumer = Consumer(
            {
                **self.settings.kafka_client_config(),
                "group.id": f"probe-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        topic = self.settings.topic(name)
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        return consumer

    def read(
        self,
        name: str,
        until: Callable[[list[dict[str, Any]]], bool] = lambda _: False,
        timeout: float = 30.0,
        quiet: float = 1.0,
    ) -> list[dict[str, Any]]:
        """Every record of ``name`` once ``until(records)`` holds and nothing new came for ``quiet`` s."""
        consumer = self.reader(name)
        out: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None or msg.error():
                    if until(out) and time.monotonic() - last >= quiet:
                        break
                    continue
                last = time.monotonic()
                if msg.value() is not None:
                    out.append(self.codec(name).decode(msg.value()))  # type: ignore[arg-type]
        finally:
            consumer.close()
        return out

    def read_raw(self, name: str, count: int, timeout: float = 20.0) -> list[Any]:
        """The first ``count`` messages of ``name`` (undecoded: dead letters are bytes)."""
        consumer = self.reader(name)
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < count and time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is not None and not msg.error():
                    out.append(msg)
        finally:
            consumer.close()
        return out

    def stop(self, processor: str) -> None:
        proc = self.procs.pop(processor, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


@pytest.fixture
def task_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[TaskStack]:
    """The tasks pipeline's topics (2 partitions where keyed) under this test's prefix; every topic with the
    prefix in its name (internal ones too) is deleted afterwards."""
    prefix = prefixed_settings.topic_prefix
    specs = catalog_topics(
        prefix, partitions={"task": PARTITIONS, "robot": PARTITIONS, "site": PARTITIONS}, names=TOPICS
    )
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs
    ]
    new.append(NewTopic(f"{prefix}tasks.inbox", num_partitions=PARTITIONS, replication_factor=1))
    for fut in kafka_admin.create_topics(new).values():
        fut.result(30)
    registry = RegistryClient(**prefixed_settings.registry_client_config())
    stack = TaskStack(prefixed_settings, registry, tmp_path, kafka_admin)
    yield stack
    stack.stop_all()
    registry.close()
    mine = [t for t in kafka_admin.list_topics(timeout=10).topics if prefix in t]
    for fut in kafka_admin.delete_topics(mine).values() if mine else []:
        with contextlib.suppress(Exception):
            fut.result(30)


# ------------------------------------------------------------------------------------------- records
def spec(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "category": "delivery",
        "priority": 5,
        "pickup_node": "A",
        "dropoff_node": "B",
        "required_capabilities": [],
        "deadline": None,
        "timeout_ms": None,
        "max_attempts": 3,
        "depends_on": [],
        "on_dependency_failure": "CANCEL",
        "fleet_id": None,
        "robot_id": None,
        "labels": {},
        "payload_json": None,
    }
    base.update(kw)
    return base


def command(tenant: str, task_id: str, command: str, at: int | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "event_id": uuid7(),
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at or now_ms(),
        "task_id": task_id,
        "command": command,
        "idempotency_key": kw.pop("idempotency_key", None),
        "spec": kw.pop("spec", None),
        "reason": kw.pop("reason", None),
        "requested_by": kw.pop("requested_by", "test"),
        "timer": None,
    }


def decision(tenant: str, task_id: str, kind: str, robot: str, at: int | None = None) -> dict[str, Any]:
    return {
        "event_id": uuid7(),
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at or now_ms(),
        "decision_id": uuid7(),
        "kind": kind,
        "robot_id": robot,
        "task_id": task_id,
        "route": [],
        "eta": None,
        "cost": None,
        "reason": None,
        "conflict_id": None,
        "planner": "in_process",
    }


def telemetry(
    tenant: str, robot: str, task_id: str | None, phase: str, seq: int, at: int | None = None
) -> dict[str, Any]:
    return {
        "event_id": uuid7(),
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at or now_ms(),
        "robot_id": robot,
        "fleet_id": "f1",
        "seq": seq,
        "pose": {"x": 1.0, "y": 2.0, "yaw": 0.0, "node_id": None, "map_name": None},
        "battery": 0.8,
        "speed": 0.0,
        "mode": "WORKING",
        "error_code": None,
        "task_id": task_id,
        "task_phase": phase,
        "route": [],
    }


def schedule(tenant: str, schedule_id: str, cron: str, at: int | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "event_id": uuid7(),
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at or now_ms(),
        "schedule_id": schedule_id,
        "cron": cron,
        "timezone": kw.pop("timezone", "UTC"),
        "template": spec(category="patrol"),
        "enabled": True,
        "misfire_policy": kw.pop("misfire_policy", "FIRE_ONCE"),
    }


def by_task(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        out.setdefault(e["task_id"], []).append(e)
    for evs in out.values():
        evs.sort(key=lambda e: e["seq"])
    return out


def transitions(events: list[dict[str, Any]]) -> list[str]:
    return [e["state"] for e in events if e["kind"] == "TRANSITION"]
