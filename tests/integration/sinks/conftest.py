"""Fixtures of the sink tests: a real dead-letter queue (a Kafka topic of the test's own) for the sinks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from pipelines.dlq import DeadLetterQueue
from pipelines.settings import CommonSettings
from schemas.catalog import CATALOG
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from sinks.deadletters import DeadLetterWriter


@dataclass
class DeadLetters:
    """A sink's dead letters going to a real Kafka topic; ``read`` returns what arrived there."""

    writer: DeadLetterWriter
    topic: str
    codecs: dict[str, AvroCodec]
    _settings: CommonSettings

    def read(self, expected: int, timeout: float = 15.0) -> list[Message]:
        """Every dead letter of the topic, waiting up to ``timeout`` for at least ``expected``."""
        consumer = Consumer(
            {
                **self._settings.kafka_client_config(),
                "group.id": f"{self.topic}-reader",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, 0)])
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    out.append(msg)
                elif len(out) >= expected:
                    break
        finally:
            consumer.close()
        return out


@pytest.fixture
def dead_letters(
    settings: CommonSettings, create_topics: Callable[..., list[str]], unique_prefix: str
) -> Iterator[DeadLetters]:
    """Dead letters of a sink under test, in ``<prefix>dlq.sink-test``. Sinks under test are fed records
    of unprefixed catalog topics (``sink.add(..., "alerts", ...)``); their codecs encode the dead letters."""
    (topic,) = create_topics([f"{unique_prefix}dlq.sink-test"])
    registry = RegistryClient(**settings.registry_client_config())
    queue = DeadLetterQueue(settings.kafka_client_config(), "sink-test", topic)
    codecs = {t.name: AvroCodec.for_topic(registry, t.name, unique_prefix) for t in CATALOG if t.is_avro}
    writer = DeadLetterWriter(queue.send, {name: codec.encode for name, codec in codecs.items()})
    yield DeadLetters(writer, topic, codecs, settings)
    queue.close()
    registry.close()
