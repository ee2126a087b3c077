"""The VDA 5050 bridge's decision forwarder against real Kafka: scheduler.decisions -> vda5050.decisions,
re-keyed by robot into the partition of the vehicle's messages, its tenant only, committed decisions only,
bytes unchanged; undecodable records dead-lettered; at least once across a restart."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

from confluent_kafka import Consumer, Producer

from pipelines.dlq import DeadLetterQueue
from pipelines.vda5050.decisions import DecisionForwarder
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from tests.unit.topologies.vda5050.support import decision
from topologies.kernel.inbox import murmur2_partition

PARTITIONS = 3


def _read(settings: Any, topic: str, count: int, timeout: float = 30.0) -> list[Any]:
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"probe-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    consumer.subscribe([topic])
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < count:
            out += [m for m in consumer.consume(100, timeout=0.5) if m.error() is None]
        # a moment more: nothing beyond ``count`` may arrive
        out += [m for m in consumer.consume(100, timeout=1.0) if m.error() is None]
    finally:
        consumer.close()
    return out


def _forwarder(settings: Any, codec: AvroCodec, group: str) -> DecisionForwarder:
    p = settings.topic_prefix
    return DecisionForwarder(
        settings.kafka_client_config(),
        source=f"{p}scheduler.decisions",
        target=f"{p}vda5050.decisions",
        tenant_id="acme",
        decode=codec.decode,
        group_id=group,
        processor="vda5050",
        dlq=DeadLetterQueue(settings.kafka_client_config(), "vda5050", f"{p}dlq.vda5050"),
    ).start()


def _forward(settings: Any, codec: AvroCodec, group: str, count: int) -> tuple[DecisionForwarder, list[Any]]:
    """Run a forwarder of ``group`` until ``vda5050.decisions`` holds ``count`` records (or 30 s), stop it."""
    forwarder = _forwarder(settings, codec, group)
    try:
        return forwarder, _read(settings, f"{settings.topic_prefix}vda5050.decisions", count)
    finally:
        forwarder.close()


def test_decisions_are_rekeyed_by_robot_for_one_tenant_committed_only(prefixed_settings, create_topics):
    settings = prefixed_settings
    p = settings.topic_prefix
    create_topics([f"{p}scheduler.decisions"], partitions=PARTITIONS)
    create_topics([f"{p}vda5050.decisions"], partitions=2)
    create_topics([f"{p}dlq.vda5050"])
    registry = RegistryClient(**settings.registry_client_config())
    codec = AvroCodec.for_topic(registry, "scheduler.decisions", p)
    # Not our producer settings: librdkafka's default partitioner (CRC32), keyed by task as dispatch keys.
    producer = Producer({**settings.kafka_client_config()})
    sent: dict[str, tuple[str, bytes, int]] = {}  # decision id -> robot, value, timestamp
    for i in range(20):
        robot = f"acme-agv-{i % 5}"
        record = decision("ASSIGN", ["a0", "a1"], robot=robot, decision_id=f"d{i}", task_id=f"t{i}",
                          pickup_node="a0", dropoff_node="a1", labels={"loadId": f"L{i}"})  # fmt: skip
        value = codec.encode(record)
        stamp = 1_700_000_000_000 + i
        producer.produce(f"{p}scheduler.decisions", key=f"t{i}".encode(), value=value, timestamp=stamp,
                         headers=[("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")])  # fmt: skip
        sent[f"d{i}"] = (robot, value, stamp)
    for i in range(3):  # another tenant's: not this bridge's vehicles
        other = {
            **decision("ASSIGN", ["a0"], robot=f"beta-agv-{i}", decision_id=f"o{i}"),
            "tenant_id": "beta",
        }
        producer.produce(f"{p}scheduler.decisions", key=f"o{i}".encode(), value=codec.encode(other))
    producer.produce(f"{p}scheduler.decisions", key=b"junk", value=b"not an avro record")
    producer.flush(10)
    # an aborted transaction's decision is never forwarded
    tx = Producer({**settings.kafka_client_config(), "transactional.id": f"{p}tx"})
    tx.init_transactions(10)
    tx.begin_transaction()
    aborted = decision("ASSIGN", ["a0"], robot="acme-agv-0", decision_id="aborted")
    tx.produce(f"{p}scheduler.decisions", key=b"aborted", value=codec.encode(aborted))
    tx.flush(10)
    tx.abort_transaction(10)

    forwarder, out = _forward(settings, codec, f"{p}fwd", 20)
    assert forwarder.error is None
    got = {codec.decode(m.value())["decision_id"]: m for m in out}
    assert len(out) == 20 and set(got) == set(sent), sorted(got)
    for decision_id, msg in got.items():
        robot, value, stamp = sent[decision_id]
        assert msg.key() == robot.encode() and msg.value() == value and msg.timestamp()[1] == stamp
        assert msg.partition() == murmur2_partition(robot.encode(), 2)  # where the ingress puts its messages
        assert dict(msg.headers() or [])["traceparent"].startswith(b"00-0af7651916cd43dd")
    assert codec.decode(got["d3"].value())["labels"] == {"loadId": "L3"}
    assert forwarder.forwarded == 20 and forwarder.skipped == 3
    (dead,) = _read(settings, f"{p}dlq.vda5050", 1)
    assert dead.value() == b"not an avro record"
    reason = dict(dead.headers())
    assert (
        b"magic byte" in reason["fleet-dlq-error"]
        and reason["fleet-dlq-topic"] == f"{p}scheduler.decisions".encode()
    )

    # offsets were committed when it closed: a new forwarder of the group forwards only what is new
    later = decision("GRANT", ["a0", "a1"], robot="acme-agv-1", decision_id="later", granted=2)
    producer.produce(f"{p}scheduler.decisions", key=b"acme-agv-1", value=codec.encode(later))
    producer.flush(10)
    again, out = _forward(settings, codec, f"{p}fwd", 21)
    counts = Counter(codec.decode(m.value())["decision_id"] for m in out)
    assert counts["later"] == 1 and again.forwarded == 1 and max(counts.values()) == 1
    registry.close()
