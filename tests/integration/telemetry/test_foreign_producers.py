"""Telemetry from standard Kafka clients, against the real Kafka and registry (issue 15 item 4): a robot that
produces with confluent-kafka's AvroSerializer and librdkafka's default partitioner (CRC32, so many of its
records sit on another partition than the robot's registration), or with aiokafka's default partitioner,
is accepted like our own producers' records."""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from collections import Counter
from typing import Any

from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.avsc import load_schema
from schemas.ids import now_ms
from topologies.kernel import murmur2_partition

from .conftest import Stack
from .test_telemetry_processor import registration, sample

PARTITIONS = 2  # the robot group's partitions in these tests (conftest)


def _crc32_misplaced(count: int) -> list[str]:
    """Robot ids that librdkafka's default partitioner (CRC32) puts on another partition than murmur2."""
    ids = (f"crc-{i}" for i in range(1000))
    return [
        r for r in ids if zlib.crc32(r.encode()) % PARTITIONS != murmur2_partition(r.encode(), PARTITIONS)
    ][:count]


def _avro_serializer(stack: Stack) -> AvroSerializer:
    client = SchemaRegistryClient({"url": stack.settings.schema_registry_url})
    return AvroSerializer(
        client, json.dumps(load_schema("RobotTelemetry")), conf={"auto.register.schemas": True}
    )


def _accepted(stack: Stack, wanted: Counter[str]) -> Counter[str]:
    def done(records: list[dict[str, Any]]) -> bool:
        got = Counter(r["robot_id"] for r in records)
        return all(got[r] >= n for r, n in wanted.items())

    records = stack.read("robot.telemetry.accepted", until=done, timeout=45)
    return Counter(r["robot_id"] for r in records if r["robot_id"] in wanted)


def test_librdkafka_default_partitioner_with_confluent_avro_serializer(stack: Stack) -> None:
    robots = _crc32_misplaced(3)
    for robot in robots:
        stack.produce("robot.registry", robot, registration(robot))  # ours: murmur2
    stack.flush()
    stack.start("telemetry", commit_interval_s=0.2)
    serialize = _avro_serializer(stack)
    topic = stack.settings.topic("robot.telemetry")
    producer = Producer({"bootstrap.servers": stack.settings.kafka_bootstrap_servers})  # CRC32 by default
    t = now_ms()
    for seq in range(1, 6):
        for robot in robots:
            value = serialize(sample(robot, seq, t + seq), SerializationContext(topic, MessageField.VALUE))
            producer.produce(topic, key=robot.encode(), value=value)
    assert producer.flush(10) == 0
    assert _accepted(stack, Counter(dict.fromkeys(robots, 5))) == Counter(dict.fromkeys(robots, 5))
    statuses = stack.read("robot.status", until=lambda s: len(s) >= 3, timeout=20)
    assert {s["robot_id"] for s in statuses} == set(robots)
    assert stack.read("dlq.telemetry", timeout=3, raw=True) == []


def test_aiokafka_default_partitioner(stack: Stack) -> None:
    robots = [f"aio-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    for robot in robots:
        stack.produce("robot.registry", robot, registration(robot))
    stack.flush()
    stack.start("telemetry", commit_interval_s=0.2)
    serialize = _avro_serializer(stack)
    topic = stack.settings.topic("robot.telemetry")

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap_servers)
        await producer.start()
        try:
            t = now_ms()
            for seq in range(1, 6):
                for robot in robots:
                    value = serialize(
                        sample(robot, seq, t + seq), SerializationContext(topic, MessageField.VALUE)
                    )
                    await producer.send(topic, key=robot.encode(), value=value)
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(produce())
    assert _accepted(stack, Counter(dict.fromkeys(robots, 5))) == Counter(dict.fromkeys(robots, 5))
    assert stack.read("dlq.telemetry", timeout=3, raw=True) == []
