"""The codec through real Kafka: transactions (aborted records invisible to read_committed) and the
Quix Streams adapters in an application."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from quixstreams import Application
from quixstreams.models.serializers import SerializationContext

from pipelines.settings import CommonSettings
from schemas.catalog import topic as catalog_topic
from schemas.codec import AvroCodec
from schemas.errors import SchemaDecodeError
from schemas.examples import example
from schemas.quix import AvroDeserializer, AvroSerializer, quix_serdes
from schemas.registry import RegistryClient


def _telemetry(seq: int, robot: str = "robot-0001") -> dict[str, Any]:
    return {**example("RobotTelemetry"), "robot_id": robot, "seq": seq}


def _consume(
    settings: CommonSettings, topic: str, isolation: str, expect: int, timeout: float = 20
) -> list[bytes]:
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"g-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(values) < expect:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            values.append(msg.value())
        # a little longer: nothing more (e.g. aborted records) may arrive
        settle = time.monotonic() + 2
        while time.monotonic() < settle:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(msg.value())
    finally:
        consumer.close()
    return values


def test_transactional_produce_aborted_records_invisible(
    settings: CommonSettings,
    registry: RegistryClient,
    unique_prefix: str,
    create_topics: Callable[..., list[str]],
) -> None:
    (name,) = create_topics([f"{unique_prefix}robot.telemetry"], partitions=1)
    codec = AvroCodec.for_topic(registry, "robot.telemetry", unique_prefix)
    producer = Producer({**settings.kafka_client_config(), "transactional.id": f"tx-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(30)

    producer.begin_transaction()
    for seq in (1, 2, 3):
        producer.produce(name, key=b"robot-0001", value=codec.encode(_telemetry(seq)))
    producer.commit_transaction(30)

    producer.begin_transaction()
    for seq in (100, 101):
        producer.produce(name, key=b"robot-0001", value=codec.encode(_telemetry(seq)))
    producer.flush(30)  # the records reach the log, then the transaction is aborted
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(name, key=b"robot-0001", value=codec.encode(_telemetry(4)))
    producer.commit_transaction(30)

    committed = [codec.decode(v)["seq"] for v in _consume(settings, name, "read_committed", expect=4)]
    assert committed == [1, 2, 3, 4]
    everything = [codec.decode(v)["seq"] for v in _consume(settings, name, "read_uncommitted", expect=6)]
    assert everything == [1, 2, 3, 100, 101, 4]


def test_quix_application_with_our_serdes(
    settings: CommonSettings,
    registry: RegistryClient,
    unique_prefix: str,
    create_topics: Callable[..., list[str]],
) -> None:
    spec = catalog_topic("robot.telemetry", unique_prefix)
    create_topics([spec.name], partitions=2)
    serializer, deserializer = quix_serdes(registry, "robot.telemetry", unique_prefix)
    app = Application(
        broker_address=settings.kafka_bootstrap_servers,
        consumer_group=f"g-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        auto_create_topics=False,
        use_changelog_topics=False,
        commit_interval=0.5,
        state_dir=None,
    )
    topic = app.topic(
        spec.name,
        key_serializer="str",
        key_deserializer="str",
        value_serializer=serializer,
        value_deserializer=deserializer,
    )
    sent = [_telemetry(seq, robot=f"robot-{seq % 2}") for seq in range(1, 6)]
    with app.get_producer() as producer:
        for value in sent:
            message = topic.serialize(key=value["robot_id"], value=value)
            producer.produce(topic.name, key=message.key, value=message.value)

    app.dataframe(topic)
    rows = app.run(count=len(sent), timeout=30)
    assert sorted(r["seq"] for r in rows) == [1, 2, 3, 4, 5]
    by_seq = {r["seq"]: r for r in rows}
    assert by_seq[3] == sent[2]
    assert type(by_seq[3]["occurred_at"]) is int


def test_quix_deserializer_raises_schema_decode_error(registry: RegistryClient, unique_prefix: str) -> None:
    codec = AvroCodec.for_topic(registry, "robot.telemetry", unique_prefix)
    serializer, deserializer = AvroSerializer(codec), AvroDeserializer(codec)
    ctx = SerializationContext(topic=f"{unique_prefix}robot.telemetry", field="value")
    data = serializer(_telemetry(7), ctx)
    assert deserializer(data, ctx)["seq"] == 7
    with pytest.raises(SchemaDecodeError, match="magic byte"):
        deserializer(b"\x07" + data[1:], ctx)
    with pytest.raises(SchemaDecodeError):
        deserializer(data[:-4], ctx)
