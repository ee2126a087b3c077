"""The simulator against the real local Kafka and schema registry: what it sends is what comes back."""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest
from confluent_kafka import Consumer

from pipelines.settings import CommonSettings
from pipelines.simulator import FaultConfig, SimConfig, SimStats, demo_site, run_simulation
from schemas.codec import AvroCodec
from schemas.errors import SchemaDecodeError
from schemas.ids import now_ms
from schemas.registry import RegistryClient

pytestmark = pytest.mark.integration

logger = logging.getLogger(__name__)

TOPICS = {"site.maps": 1, "robot.registry": 3, "robot.telemetry": 3}


@pytest.fixture
def sim_topics(create_topics, unique_prefix: str) -> str:
    for name, partitions in TOPICS.items():
        create_topics([f"{unique_prefix}{name}"], partitions=partitions)
    return unique_prefix


def _config(settings: CommonSettings, prefix: str, **kw: Any) -> SimConfig:
    return SimConfig(
        kafka_config=settings.kafka_client_config(),
        registry_config=settings.registry_client_config(),
        topic_prefix=prefix,
        **kw,
    )


def _decode(codec: AvroCodec, value: bytes) -> dict[str, Any]:
    record = codec.decode(value)
    assert record is not None
    return record


def _consume(
    settings: CommonSettings, topics: list[str], expected: int, timeout_s: float = 60.0
) -> list[Any]:
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"it-sim-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe(topics)
    messages: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(500, 1.0):
                assert msg.error() is None, msg.error()
                messages.append(msg)
        # Anything beyond what was expected would be a bug too: drain briefly.
        extra_deadline = time.monotonic() + 1.0
        while time.monotonic() < extra_deadline:
            messages.extend(m for m in consumer.consume(500, 0.2) if m.error() is None)
    finally:
        consumer.close()
    return messages


def test_map_registrations_and_telemetry_round_trip_with_exactly_the_injected_faults(
    settings: CommonSettings, sim_topics: str
) -> None:
    robots, ticks = 8, 250
    faults = FaultConfig(drop_prob=0.005, duplicate_prob=0.02, reorder_prob=0.02, malformed=5, seed=11)
    config = _config(
        settings, sim_topics, robots=robots, rate_hz=2.0, max_rate=True, max_ticks=ticks, faults=faults
    )
    stats: SimStats = run_simulation(config, threading.Event())
    logger.info(
        "simulator produced %d telemetry records in %.2f s: %.0f records/s", stats.produced, stats.elapsed_s,
        stats.records_per_s,
    )  # fmt: skip

    assert stats.ticks == ticks and stats.delivery_errors == 0
    assert stats.malformed == 5 and stats.duplicates > 0 and stats.reordered > 0 and stats.dropped > 0
    assert stats.telemetry == ticks * robots - stats.dropped + stats.duplicates
    assert stats.delivered == 1 + robots + stats.produced
    assert stats.end_ms <= now_ms()  # running ahead of the wall clock, the start was set back

    names = {name: f"{sim_topics}{name}" for name in TOPICS}
    messages = _consume(settings, list(names.values()), expected=1 + robots + stats.produced)
    by_topic: dict[str, list[Any]] = defaultdict(list)
    for msg in messages:
        by_topic[msg.topic()].append(msg)
    assert {t: len(m) for t, m in by_topic.items()} == {
        names["site.maps"]: 1,
        names["robot.registry"]: robots,
        names["robot.telemetry"]: stats.produced,
    }

    registry = RegistryClient(**settings.registry_client_config())
    codec = {name: AvroCodec.for_topic(registry, name, sim_topics) for name in TOPICS}

    (map_msg,) = by_topic[names["site.maps"]]
    site_map = _decode(codec["site.maps"], map_msg.value())
    assert map_msg.key() == b"demo"
    assert site_map == demo_site("demo", "acme", 0, occurred_at=stats.start_ms)

    regs = [_decode(codec["robot.registry"], m.value()) for m in by_topic[names["robot.registry"]]]
    assert all(
        m.key().decode() == r["robot_id"]
        for m, r in zip(by_topic[names["robot.registry"]], regs, strict=True)
    )
    assert sorted(r["robot_id"] for r in regs) == [f"demo-amr-{i:03d}" for i in range(1, robots + 1)]

    valid: list[tuple[Any, dict[str, Any]]] = []
    undecodable = 0
    for msg in by_topic[names["robot.telemetry"]]:
        try:
            valid.append((msg, _decode(codec["robot.telemetry"], msg.value())))
        except SchemaDecodeError:
            undecodable += 1
    assert undecodable == stats.malformed == 5
    assert len(valid) == stats.telemetry
    assert all(msg.key().decode() == rec["robot_id"] for msg, rec in valid)

    copies = Counter((rec["robot_id"], rec["seq"], rec["event_id"]) for _, rec in valid)
    assert sum(n - 1 for n in copies.values()) == stats.duplicates
    assert len(copies) == ticks * robots - stats.dropped
    # Out of order: one robot's records sit in one partition, so its seq goes back once per swap.
    seqs: dict[str, list[int]] = defaultdict(list)
    for _msg, rec in sorted(valid, key=lambda mr: (mr[0].partition(), mr[0].offset())):
        seqs[rec["robot_id"]].append(rec["seq"])
    assert sum(1 for s in seqs.values() for a, b in itertools.pairwise(s) if b < a) == stats.reordered


def test_real_time_run_is_paced_by_the_rate_and_stops_on_the_event(
    settings: CommonSettings, sim_topics: str
) -> None:
    config = _config(settings, sim_topics, robots=3, rate_hz=5.0, site_id="paced")
    stop = threading.Event()
    threading.Timer(1.5, stop.set).start()
    started = now_ms()
    stats = run_simulation(config, stop)
    logger.info(
        "paced run: %d ticks in %.2f s, %.0f records/s", stats.ticks, stats.elapsed_s, stats.records_per_s
    )

    assert 5 <= stats.ticks <= 10  # 1.5 s at 5 Hz, ticks at 0, 0.2, ... 1.4 s
    assert stats.produced == 3 * stats.ticks and stats.delivery_errors == 0
    messages = _consume(settings, [f"{sim_topics}robot.telemetry"], expected=stats.produced)
    codec = AvroCodec.for_topic(
        RegistryClient(**settings.registry_client_config()), "robot.telemetry", sim_topics
    )
    records = [_decode(codec, m.value()) for m in messages]
    assert len(records) == stats.produced
    times = sorted({r["occurred_at"] for r in records})
    assert all(b - a == 200 for a, b in itertools.pairwise(times))
    assert started - 1000 <= times[0] and times[-1] <= now_ms()  # real time: no record from the future
    assert {r["site_id"] for r in records} == {"paced"}
