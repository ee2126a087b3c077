"""Our producers put a key in the same partition as Quix Streams and aiokafka do (murmur2), so co-partitioned
inputs written by different producers (simulator, gateway, timer service) meet in one partition."""

from __future__ import annotations

from aiokafka.partitioner import murmur2
from confluent_kafka import Producer

from pipelines.settings import PRODUCER_DEFAULTS


def test_confluent_producer_partitions_like_aiokafka_and_quix(settings, create_topics, unique_prefix):
    partitions = 6
    topic = create_topics([f"{unique_prefix}partitioning"], partitions=partitions)[0]
    producer = Producer({**settings.kafka_client_config(), **PRODUCER_DEFAULTS})
    landed: dict[str, int] = {}
    keys = [f"robot-{i}" for i in range(60)] + ["demo", "site-7", "acme:robot-1"]
    for key in keys:
        producer.produce(
            topic,
            key=key.encode(),
            value=b"x",
            on_delivery=lambda err, msg, k=key: landed.__setitem__(k, msg.partition()),
        )
    assert producer.flush(30) == 0
    # aiokafka's DefaultPartitioner (and Java's, and Quix's "murmur2"): (murmur2(key) & 0x7fffffff) % n
    expected = {k: (murmur2(k.encode()) & 0x7FFFFFFF) % partitions for k in keys}
    assert landed == expected
    assert len(set(landed.values())) == partitions, "keys spread over every partition"
