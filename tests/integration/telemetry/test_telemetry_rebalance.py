"""Two telemetry processes share the partitions; one is SIGKILLed mid-stream and the other takes its
partition over (recovering that partition's state from the changelog). Quix revokes and reassigns the
survivor's partitions on every rebalance (range assignment), so this also drives the checkpoint commits
made while revoking, where the topology stores the robots it kept in memory (``StateFlush``). Every
output topic, read_committed, must hold exactly what the pure state machine computes."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import defaultdict
from typing import Any

from confluent_kafka.admin import AdminClient

from schemas.ids import now_ms
from tests.integration.processes import FLEET
from topologies.telemetry import TelemetryConfig

from .conftest import Stack
from .test_telemetry_sigkill import ROBOTS, expected_outputs, registration, stream

SETTINGS = {"commit_interval_s": 0.2, "kafka_session_timeout_s": 6}

#: The field of each output record that is its Kafka key.
KEY_FIELD = {
    "robot.status": "robot_id",
    "alerts": "subject_id",
    "robot.telemetry.1m": "robot_id",
    "timers": "timer_id",
}


def _wait_until_both_own_a_partition(stack: Stack, timeout: float = 60.0) -> None:
    """Until the group has two members and each is assigned a robot.telemetry partition (a member that
    joined late may own nothing for a while: then killing the other would take nothing over)."""
    admin = AdminClient(stack.settings.kafka_client_config())
    group = f"{stack.prefix}fleet-telemetry"
    topic = stack.settings.topic("robot.telemetry")
    deadline = time.monotonic() + timeout
    owners: list[int] = []
    while time.monotonic() < deadline:
        described = admin.describe_consumer_groups([group])[group].result(10)
        owners = [
            sum(1 for tp in m.assignment.topic_partitions if tp.topic == topic) for m in described.members
        ]
        if len(owners) == 2 and all(owners):
            return
        time.sleep(0.5)
    raise AssertionError(f"the two instances did not split robot.telemetry: partitions per member {owners}")


def test_a_killed_instances_partition_moves_to_the_other_exactly_once(stack: Stack, tmp_path):
    config = TelemetryConfig(offline_timeout_ms=10_000, heartbeat_ms=30_000)
    for r in range(ROBOTS):
        stack.produce("robot.registry", f"k{r:02d}", registration(f"k{r:02d}"))
    stack.flush()
    records = stream(base=now_ms() - 3_600_000)
    expected = expected_outputs(records, config)
    total_status = sum(len(v) for v in expected["robot.status"].values())

    stack.start("telemetry", state_dir=tmp_path / "a", **SETTINGS)
    log_b = open(tmp_path / "telemetry-b.log", "ab")  # noqa: SIM115 - owned by the process
    stack.procs["telemetry-b"] = subprocess.Popen(
        [str(FLEET), "run", "telemetry"],
        env=stack.env(state_dir=tmp_path / "b", **SETTINGS),
        stdout=log_b,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stack.wait_started("telemetry")
    _wait_until_both_own_a_partition(stack)

    produced = threading.Event()

    def produce() -> None:  # ~160 records/s for ~24 s, so the kill lands mid-stream
        for i, record in enumerate(records):
            stack.produce("robot.telemetry", record["robot_id"], record)
            if i % 32 == 31:
                time.sleep(0.2)
        stack.flush()
        produced.set()

    threading.Thread(target=produce, daemon=True).start()
    seen = len(stack.read("robot.status", until=lambda s: len(s) > total_status // 4, timeout=60, quiet=0))
    assert seen > total_status // 4, stack.log("telemetry")[-3000:]
    b_log = (tmp_path / "telemetry-b.log").read_text(errors="replace")
    assert "is now processing incoming messages" in b_log, b_log[-3000:]
    assert not produced.is_set(), "the stream ended before the kill: nothing to take over mid-stream"
    stack.kill("telemetry")  # SIGKILL: its partition goes to the other instance after the session timeout
    assert produced.wait(60)

    statuses = stack.read("robot.status", until=lambda s: len(s) >= total_status, timeout=120, quiet=2)
    survivor = stack.procs["telemetry-b"]
    b_log = (tmp_path / "telemetry-b.log").read_text(errors="replace")
    assert survivor.poll() is None, b_log[-3000:]
    assert "Recovery successful" in b_log, b_log[-3000:]  # it took a partition over from the changelog
    got: dict[str, list[str]] = defaultdict(list)
    for status in statuses:
        got[status["robot_id"]].append(status["event_id"])
    assert got == expected["robot.status"], f"statuses differ (killed after {seen} of {total_status})"
    for topic in ("alerts", "robot.telemetry.1m", "timers"):
        want = expected[topic]
        out: list[dict[str, Any]] = stack.read(
            topic, until=lambda r, n=sum(map(len, want.values())): len(r) >= n, timeout=30
        )
        by_key: dict[str, list[str]] = defaultdict(list)
        for value in out:
            by_key[value[KEY_FIELD[topic]]].append(value["event_id"])
        assert by_key == want, topic
