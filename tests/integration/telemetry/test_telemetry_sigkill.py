"""Exactly once across crashes: `fleet run telemetry` is SIGKILLed twice mid-stream (the second restart
also loses its local state, so it recovers from the changelog). Every output topic, read_committed, must
hold exactly what the pure state machine computes for the same input: no duplicate, nothing missing."""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from typing import Any

from schemas.ids import now_ms
from topologies.telemetry import TelemetryConfig, on_telemetry

from .conftest import Stack

ROBOTS = 16
SAMPLES = 250
TENANT = "acme"

#: The field of each output record that is its Kafka key.
KEY_FIELD = {
    "robot.status": "robot_id",
    "alerts": "subject_id",
    "robot.telemetry.1m": "robot_id",
    "timers": "timer_id",
}


def registration(robot_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": "s1", "occurred_at": now_ms(),
        "robot_id": robot_id, "fleet_id": "f1", "name": robot_id, "model": None, "capabilities": [],
        "max_payload_kg": None, "managed_by": "FLEETSTREAM", "active": True,
    }  # fmt: skip


def stream(base: int) -> list[dict[str, Any]]:
    """Interleaved samples of every robot, one a second of event time each; modes change every few
    samples (a different period per robot) and the battery drains and recharges."""
    modes = ["IDLE", "MOVING", "WORKING", "MOVING", "CHARGING"]
    out = []
    for seq in range(1, SAMPLES + 1):
        for r in range(ROBOTS):
            period = 4 + r * 3
            battery = abs(((seq + r * 7) % 120) - 60) / 60  # 0..1 triangle wave
            out.append({
                "event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": "s1",
                "occurred_at": base + seq * 1000 + r, "robot_id": f"k{r:02d}", "fleet_id": "f1", "seq": seq,
                "pose": {"x": float(seq % 40), "y": float(r), "yaw": 0.0, "node_id": None, "map_name": None},
                "battery": battery, "speed": 0.5 * (seq % 3), "mode": modes[(seq // period) % len(modes)],
                "error_code": None, "task_id": None, "task_phase": "NONE", "route": [],
            })  # fmt: skip
    return out


def expected_outputs(
    records: list[dict[str, Any]], config: TelemetryConfig
) -> dict[str, dict[str, list[str]]]:
    """topic -> key -> event ids, in order, as the pure transitions produce them."""
    states: dict[str, Any] = {}
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        rid = record["robot_id"]
        states[rid], outputs = on_telemetry(states.get(rid), record, config)
        for o in outputs:
            out[o.topic][o.key].append(o.value["event_id"])
    return out


def test_sigkill_mid_stream_loses_and_duplicates_nothing(stack: Stack, tmp_path):
    config = TelemetryConfig(offline_timeout_ms=10_000, heartbeat_ms=30_000)
    for r in range(ROBOTS):
        stack.produce("robot.registry", f"k{r:02d}", registration(f"k{r:02d}"))
    stack.flush()
    records = stream(base=now_ms() - 3_600_000)
    expected = expected_outputs(records, config)
    total_status = sum(len(v) for v in expected["robot.status"].values())

    produced = threading.Event()

    def produce() -> None:  # ~160 records/s for ~25 s, so both kills land mid-stream
        for i, record in enumerate(records):
            stack.produce("robot.telemetry", record["robot_id"], record)
            if i % 16 == 15:
                time.sleep(0.1)
        stack.flush()
        produced.set()

    settings = {"commit_interval_s": 0.2}
    stack.start("telemetry", **settings)
    producer = threading.Thread(target=produce, daemon=True)
    producer.start()

    def wait_for_progress(beyond: int) -> None:
        """Until this instance has produced statuses (it owns the partitions and is mid-stream)."""
        count = len(stack.read("robot.status", until=lambda s: len(s) > beyond, timeout=60, quiet=0))
        assert count > beyond, stack.log("telemetry")[-3000:]

    seen_at_kills = [0]
    for restart_state_dir in (None, tmp_path / "fresh-state"):
        wait_for_progress(seen_at_kills[-1])
        time.sleep(0.7)
        stack.kill("telemetry")  # SIGKILL: no checkpoint, no clean shutdown
        seen_at_kills.append(len(stack.read("robot.status", timeout=3, quiet=0.5)))
        if restart_state_dir is not None:
            settings["state_dir"] = restart_state_dir  # local state gone: recover from the changelog
        stack.start("telemetry", **settings)

    assert produced.wait(60)

    def complete(got: list[dict[str, Any]]) -> bool:
        return len(got) >= total_status

    statuses = stack.read("robot.status", until=complete, timeout=120, quiet=2)
    log = stack.log("telemetry")
    assert 0 < seen_at_kills[1] < seen_at_kills[2] < total_status, (seen_at_kills, log[-2000:])
    assert log.count("Starting the Application") == 3

    got: dict[str, list[str]] = defaultdict(list)
    for status in statuses:
        got[status["robot_id"]].append(status["event_id"])
    assert got == expected["robot.status"], f"statuses differ (kills after {seen_at_kills} statuses)"

    for topic in ("alerts", "robot.telemetry.1m", "timers"):
        want = expected[topic]
        records_out = stack.read(
            topic, until=lambda r, n=sum(map(len, want.values())): len(r) >= n, timeout=30
        )
        by_key: dict[str, list[str]] = defaultdict(list)
        for value in records_out:
            by_key[value[KEY_FIELD[topic]]].append(value["event_id"])
        assert by_key == want, topic
