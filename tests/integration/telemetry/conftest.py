"""Fixtures for the telemetry processor against the real stack: catalog topics under a unique prefix,
an Avro producer, processors as subprocesses (``fleet run ...``) and read_committed readers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from pipelines.settings import CommonSettings
from schemas.catalog import topics as catalog_topics
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient

FLEET = Path(sys.executable).with_name("fleet")

TELEMETRY_TOPICS = (
    "robot.telemetry",
    "robot.registry",
    "timers.due.telemetry",
    "robot.status",
    "alerts",
    "robot.telemetry.1m",
    "timers",
    "site.maps",
    "dlq.telemetry",
)


@dataclass
class Stack:
    """One test's slice of the stack: prefixed topics, codecs, a producer and processes."""

    settings: CommonSettings
    registry: RegistryClient
    tmp: Path
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
        self.producer.produce(self.settings.topic(name), key=key.encode(), value=data)
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
            "FLEET_SITE_MAPS_WAIT_S": "10",
        }
        env.update({f"FLEET_{k.upper()}": str(v) for k, v in extra.items()})
        return env

    def start(self, processor: str, **extra: Any) -> subprocess.Popen:
        """Start ``fleet run <processor>``; its log goes to ``<tmp>/<processor>.log`` (appended)."""
        log = open(self.tmp / f"{processor}.log", "ab")  # noqa: SIM115 - owned by the process
        proc = subprocess.Popen(
            [str(FLEET), "run", processor], env=self.env(**extra), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.procs[processor] = proc
        return proc

    def kill(self, processor: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(processor)
        proc.send_signal(sig)
        proc.wait(30)

    def log(self, processor: str) -> str:
        path = self.tmp / f"{processor}.log"
        return path.read_text(errors="replace") if path.exists() else ""

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
        raw: bool = False,
    ) -> list[Any]:
        """Every record of ``name`` (decoded, or raw messages) once ``until(records)`` holds and nothing
        new arrived for ``quiet`` seconds, or ``timeout`` passed."""
        consumer = self.reader(name)
        out: list[Any] = []
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
                out.append(msg if raw else self.codec(name).decode(msg.value()))
        finally:
            consumer.close()
        return out

    def stop_all(self) -> None:
        for name in list(self.procs):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            self.procs.pop(name)


@pytest.fixture
def stack(prefixed_settings: CommonSettings, create_topics, tmp_path: Path) -> Iterator[Stack]:
    """The telemetry processor's topics (robot group with 2 partitions) under this test's prefix."""
    prefix = prefixed_settings.topic_prefix
    for spec in catalog_topics(prefix, partitions={"robot": 2}, names=TELEMETRY_TOPICS):
        create_topics([spec.name], partitions=spec.partitions, config=spec.config())
    registry = RegistryClient(**prefixed_settings.registry_client_config())
    result = Stack(prefixed_settings, registry, tmp_path)
    yield result
    result.stop_all()
    registry.close()


class TcpProxy:
    """A TCP forwarder to a real service that a test can cut (``down()``) and restore (``up()``) to
    simulate an outage; the service itself is never mocked."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[int], TcpProxy]]:
    proxies: list[TcpProxy] = []

    def _make(upstream_port: int) -> TcpProxy:
        proxy = TcpProxy(upstream_port).up()
        proxies.append(proxy)
        return proxy

    yield _make
    for proxy in proxies:
        proxy.down()
