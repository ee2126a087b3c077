"""One test's slice of the real stack: prefixed topics, Avro codecs, a producer, processors started as
subprocesses (``fleet run <name>``) with their logs in the test's tmp dir, and read_committed readers.

The telemetry, dispatch, traffic, tasks, RMF, loop and observability tests all drive their processors
through :class:`ProcessStack` (``Stack`` and ``TaskStack`` add their topic sets and settings)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient

__all__ = ["FLEET", "ProcessStack", "delete_topics_of"]

FLEET = Path(sys.executable).with_name("fleet")


@dataclass
class ProcessStack:
    """Prefixed topics, codecs, a producer and processes; ``base_env`` is added to every process's env."""

    settings: CommonSettings
    registry: RegistryClient
    tmp: Path
    base_env: dict[str, str] = field(default_factory=dict)
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

    # -- producing ---------------------------------------------------------------------------------------
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

    # -- processes ---------------------------------------------------------------------------------------
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
            **self.base_env,
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

    def replay(self, processor: str, timeout: float = 240, exit_code: int = 0, **extra: Any) -> str:
        """Run ``fleet replay <processor>`` to its end; returns its output (its log is appended to
        ``<tmp>/<processor>.log``); fails the test if it does not exit with ``exit_code``."""
        done = subprocess.run(
            [str(FLEET), "replay", processor], env=self.env(**extra), capture_output=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        with open(self.tmp / f"{processor}.log", "a") as log:
            log.write(output)
        assert done.returncode == exit_code, (
            f"fleet replay {processor} exited {done.returncode}:\n{output[-4000:]}"
        )
        return output

    def cpu_seconds(self, processor: str) -> float:
        """CPU time (user + system) the running processor has used so far, from /proc."""
        fields = Path(f"/proc/{self.procs[processor].pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self, processor: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(processor)
        proc.send_signal(sig)
        proc.wait(30)

    def stop(self, processor: str) -> None:
        """SIGTERM and wait (SIGKILL after 30 s)."""
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

    # -- reading -----------------------------------------------------------------------------------------
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
        until: Callable[[list[Any]], bool] = lambda _: False,
        timeout: float = 30.0,
        quiet: float = 1.0,
        raw: bool = False,
    ) -> list[Any]:
        """Every record of ``name`` (decoded, tombstones left out; or every raw message) once
        ``until(records)`` holds and nothing new arrived for ``quiet`` seconds, or ``timeout`` passed."""
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
                if raw:
                    out.append(msg)
                elif msg.value() is not None:
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


def delete_topics_of(admin: AdminClient, prefix: str) -> None:
    """Delete every topic with ``prefix`` in its name (a test's own and Quix's internal ones)."""
    mine = [t for t in admin.list_topics(timeout=10).topics if prefix in t]
    for fut in admin.delete_topics(mine).values() if mine else []:
        with contextlib.suppress(Exception):
            fut.result(30)
