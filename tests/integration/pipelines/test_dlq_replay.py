"""`fleet dlq replay` re-processes dead letters after the cause is fixed: none lost, none duplicated."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from confluent_kafka import Consumer

from pipelines.dlq import DeadLetterQueue


def _read_all(settings, topic: str, expect: int, timeout_s: float = 15) -> list:
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"probe-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    out, deadline, eof = [], time.monotonic() + timeout_s, False
    while time.monotonic() < deadline and not (eof and len(out) >= expect):
        msg = consumer.poll(0.3)
        if msg is None:
            continue
        if msg.error():
            eof = True
            continue
        out.append(msg)
    consumer.close()
    return out


def _replay_cli(settings) -> str:
    env = {
        **os.environ,
        "FLEET_TOPIC_PREFIX": settings.topic_prefix,
        "FLEET_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
    }
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "dlq", "replay", "probe", "--idle-timeout", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_replay_sends_each_dead_letter_back_exactly_once(prefixed_settings, create_topics):
    s = prefixed_settings
    origin, dlq_topic = create_topics([s.topic("probe.input"), s.topic("dlq.probe")])
    dlq = DeadLetterQueue(s.kafka_client_config(), "probe", dlq_topic)

    def dead_letter(i: int) -> None:
        dlq.send(
            key=f"robot-{i}".encode(),
            value=f"payload-{i}".encode(),
            headers=[("traceparent", b"00-abc-01")],
            error=ValueError(f"bad record {i}"),
            topic=origin,
            partition=0,
            offset=i,
        )

    for i in range(5):
        dead_letter(i)
    assert _replay_cli(s) == f"{dlq_topic}: read 5, replayed 5, skipped 0"

    replayed = _read_all(s, origin, expect=5)
    assert sorted((m.key(), m.value()) for m in replayed) == [
        (f"robot-{i}".encode(), f"payload-{i}".encode()) for i in range(5)
    ]
    for m in replayed:
        headers = dict(m.headers())
        assert headers["traceparent"] == b"00-abc-01", "original headers are kept"
        assert not any(k.startswith("fleet-dlq-") for k in headers), "dead-letter headers are stripped"
        assert headers["fleet-replayed-from"].decode().startswith(f"{origin}[0]@")

    assert _replay_cli(s) == f"{dlq_topic}: read 0, replayed 0, skipped 0", "a second replay re-sends nothing"
    for i in (5, 6):
        dead_letter(i)
    assert _replay_cli(s) == f"{dlq_topic}: read 2, replayed 2, skipped 0", (
        "only new dead letters are replayed"
    )
    final = _read_all(s, origin, expect=7)
    assert sorted(m.key() for m in final) == sorted(f"robot-{i}".encode() for i in range(7)), (
        "none lost, none twice"
    )


def test_a_record_read_again_is_dead_lettered_once(prefixed_settings, create_topics):
    """A sink's backpressure seeks back to the committed offset: the re-read bad record is not re-sent."""
    s = prefixed_settings
    origin, dlq_topic = create_topics([s.topic("probe.input"), s.topic("dlq.probe")])
    dlq = DeadLetterQueue(s.kafka_client_config(), "probe", dlq_topic)
    for _ in range(3):  # the same two positions, read three times
        for offset in (7, 8):
            dlq.send(key=b"k", value=b"not avro", headers=None, error=ValueError("bad"),
                     topic=origin, partition=0, offset=offset)  # fmt: skip
    dlq.send(
        key=b"k",
        value=b"not avro",
        headers=None,
        error=ValueError("bad"),
        topic=origin,
        partition=1,
        offset=7,
    )
    dlq.close()
    dead = _read_all(s, dlq_topic, expect=3)
    positions = sorted(
        (dict(m.headers())["fleet-dlq-partition"], dict(m.headers())["fleet-dlq-offset"]) for m in dead
    )
    assert positions == [(b"0", b"7"), (b"0", b"8"), (b"1", b"7")]
