"""``fleet_consumer_lag`` from a real consumer's librdkafka statistics (``LagFromStats``)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from pipelines.metrics import CONSUMER_LAG, lag_stats_config


def _lag(processor: str, topic: str, partition: int) -> float | None:
    for family in CONSUMER_LAG.collect():
        for sample in family.samples:
            if sample.labels == {"processor": processor, "topic": topic, "partition": str(partition)}:
                return sample.value
    return None


def _poll_until(consumer: Consumer, check, timeout: float = 30.0) -> None:
    """Serve the consumer's callbacks (statistics) until ``check()`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the lag gauge never reached the expected value"
        msg = consumer.poll(0.1)
        assert msg is None or msg.error(), "the consumer was paused: no record may arrive"


def test_lag_follows_the_consumers_position(settings, unique_prefix, create_topics) -> None:
    (topic,) = create_topics([f"{unique_prefix}lag"], partitions=1)
    producer = Producer(settings.kafka_producer_config())
    for i in range(10):
        producer.produce(topic, key=str(i).encode(), value=b"x")
    assert producer.flush(30) == 0
    processor = f"probe-{uuid.uuid4().hex[:6]}"
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"{unique_prefix}lag-probe",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **lag_stats_config(processor, interval_ms=200),
        }
    )
    tp = TopicPartition(topic, 0)
    try:
        consumer.subscribe([topic])
        got = 0
        deadline = time.monotonic() + 30
        while got < 4:
            assert time.monotonic() < deadline, "records never arrived"
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got += 1
        consumer.pause([tp])
        _poll_until(consumer, lambda: _lag(processor, topic, 0) == 6)
        consumer.resume([tp])
        while got < 10:
            assert time.monotonic() < deadline + 30, "the rest of the records never arrived"
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got += 1
        consumer.pause([tp])
        _poll_until(consumer, lambda: _lag(processor, topic, 0) == 0)
        consumer.unsubscribe()
        # Partitions no longer owned lose their series.
        _poll_until(consumer, lambda: _lag(processor, topic, 0) is None)
    finally:
        consumer.close()
