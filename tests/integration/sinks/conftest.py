"""Fixtures of the sink tests: a real dead-letter queue (a Kafka topic of the test's own) for the sinks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from pipelines.dlq import DeadLetterQueue
from pipelines.settings import CommonSettings
from schemas.catalog import CATALOG
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from sinks.deadletters import DeadLetterWriter

#: The first test on InfluxDB 1.12 may wait for its build (``make test`` starts it in the background;
#: 15-20 min cold on 2 cores): pytest-timeout's 300 s would cut it.
INFLUXD_BUILD_TIMEOUT_S = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on InfluxDB 1.12 may wait for its build first: give them the build's time limit."""
    here = Path(__file__).parent
    for item in items:
        if here not in item.path.parents:
            continue
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "influx2_url" in getattr(item, "fixturenames", ()) or any("@1.12" in str(p) for p in params):
            item.add_marker(pytest.mark.timeout(INFLUXD_BUILD_TIMEOUT_S))


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
