"""An independent check of the cluster itself, with Kafka's own test clients (the kafka-tools jar).

While the drill runs, ``VerifiableProducer`` writes increasing integers (idempotent, ``acks=all``) to a
topic of the drill (replication 3, ``min.insync.replicas`` 2) and prints every acknowledgement; the
broker kills and bounces hit it as they hit the pipeline. At the end, one ``TransactionalMessageCopier``
per partition copies that topic to another in transactions, aborting some at random, with the
consumed offsets committed in the transaction (``--use-group-metadata``). The check, as in Kafka's
``replication_test.py`` and ``transactions_test.py``: every acknowledged value is in the input exactly
once, and the output holds exactly the input's values, each once (read_committed).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.drill.cluster import KafkaCluster
from pipelines.drill.reader import TopicReader
from pipelines.drill.verify import Check

__all__ = ["KafkaToolsLane"]

logger = logging.getLogger(__name__)

PARTITIONS = 3


@dataclass
class KafkaToolsLane:
    cluster: KafkaCluster
    prefix: str
    run_dir: Path
    throughput: int = 50  # messages per second while the drill runs
    acked: set[int] = field(default_factory=set)
    failed: int = 0
    _proc: subprocess.Popen[bytes] | None = None
    _reader: threading.Thread | None = None
    _stderr: IO[bytes] | None = None

    @property
    def input_topic(self) -> str:
        return f"{self.prefix}kt.input"

    @property
    def output_topic(self) -> str:
        return f"{self.prefix}kt.output"

    def create_topics(self, admin: AdminClient) -> None:
        new = [
            NewTopic(t, num_partitions=PARTITIONS, replication_factor=3, config={"min.insync.replicas": "2"})
            for t in (self.input_topic, self.output_topic)
        ]
        for future in admin.create_topics(new).values():
            future.result(30)

    def start_producer(self) -> None:
        config = self.run_dir / "kt-producer.properties"
        config.write_text(
            # VerifiableProducer sets retries=0 before it reads this file: an idempotent producer refuses that
            "enable.idempotence=true\nacks=all\nretries=2147483647\ndelivery.timeout.ms=300000\n"
        )
        argv, env = self.cluster.tool_argv(
            "org.apache.kafka.tools.VerifiableProducer",
            "--topic", self.input_topic, "--bootstrap-server", self.cluster.bootstrap_servers,
            "--throughput", str(self.throughput), "--acks", "-1", "--producer.config", str(config),
        )  # fmt: skip
        self._stderr = (self.run_dir / "logs" / "kt-producer.log").open("ab")
        self._proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=self._stderr)
        self._reader = threading.Thread(target=self._read_acks, name="kt-producer", daemon=True)
        self._reader.start()

    def _read_acks(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if event.get("name") == "producer_send_success":
                self.acked.add(int(event["value"]))
            elif event.get("name") == "producer_send_error":
                self.failed += 1

    def stop_producer(self) -> None:
        """SIGTERM: the producer flushes and closes (an unacknowledged value may still be written)."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(60)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._reader is not None:
            self._reader.join(10)
        if self._stderr is not None:
            self._stderr.close()

    def copy(self) -> list[int | None]:
        """One transactional copier per input partition, to the end of the input; their exit codes."""
        procs = []
        for partition in range(PARTITIONS):
            argv, env = self.cluster.tool_argv(
                "org.apache.kafka.tools.TransactionalMessageCopier",
                "--input-topic", self.input_topic, "--input-partition", str(partition),
                "--output-topic", self.output_topic, "--broker-list", self.cluster.bootstrap_servers,
                "--transactional-id", f"{self.prefix}copier-{partition}", "--consumer-group", f"{self.prefix}copier",
                "--transaction-size", "100", "--enable-random-aborts", "--use-group-metadata",
            )  # fmt: skip
            log = (self.run_dir / "logs" / f"kt-copier-{partition}.log").open("ab")
            procs.append((subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        codes: list[int | None] = []
        for proc, log in procs:
            try:
                codes.append(proc.wait(600))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(None)
            log.close()
        return codes

    def checks(self, kafka_config: dict[str, object]) -> list[Check]:
        reader = TopicReader(dict(kafka_config))
        values = Counter(
            int(r.value) for r in reader.read(self.input_topic, bytes.decode) if r.value is not None
        )
        lost = self.acked - set(values)
        dups = [v for v, n in values.items() if n > 1]
        produced = Check(
            "kafka-tools VerifiableProducer: every acked value once",
            not lost and not dups and bool(self.acked),
            f"{len(self.acked)} acked, {sum(values.values())} in {self.input_topic}, {len(lost)} lost, "
            f"{len(dups)} duplicated, {self.failed} send errors (retried values are not acked)",
        )
        codes = self.copy()
        copied = Counter(
            int(r.value) for r in reader.read(self.output_topic, bytes.decode) if r.value is not None
        )
        missing = set(values) - set(copied)
        extra = set(copied) - set(values)
        twice = [v for v, n in copied.items() if n > 1]
        copier = Check(
            "kafka-tools TransactionalMessageCopier: output = input, each once",
            bool(values) and not missing and not extra and not twice and all(c == 0 for c in codes),
            f"{sum(copied.values())} copied of {len(values)} with random aborts, {len(missing)} missing, "
            f"{len(twice)} twice, {len(extra)} foreign; copiers exited {codes}",
        )
        return [produced, copier]
