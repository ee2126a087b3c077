"""Where the Redis views are rebuilt from: the topics themselves, from a point in time to their end.

Redis holds only the latest view of each robot and task, and the log is the truth: when Redis lost its
data (restarted without persistence, flushed, replaced), ``sinks.redis.RedisSink`` rebuilds the views
from ``robot.status`` (compacted: the latest status of every robot) and ``task.events``, reading each
from the time its views could still be alive (``now - ttl``). :class:`TopicReplay` is that read: a plain
consumer (no group, nothing committed), ``read_committed``, each partition from the first offset at or
after the time to the end it has when the read starts.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from schemas.errors import RecordError

__all__ = ["Replay", "TopicReplay"]

logger = logging.getLogger(__name__)

#: ``replay(catalog topic, since_ms)``: the decoded records of the topic from ``since_ms`` to its end.
Replay = Callable[[str, int], Iterator[Any]]


class TopicReplay:
    """Reads catalog topics from a time to their current end.

    :param kafka_config: librdkafka client settings (brokers, security).
    :param topics: catalog name -> (real topic name, value decoder).
    :param timeout_s: the longest one read may take (a broker that does not answer raises).
    """

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        topics: Mapping[str, tuple[str, Callable[[bytes], Any]]],
        *,
        timeout_s: float = 120.0,
    ) -> None:
        self._config = dict(kafka_config)
        self._topics = dict(topics)
        self._timeout = timeout_s

    def __call__(self, name: str, since_ms: int) -> Iterator[Any]:
        topic, decode = self._topics[name]
        consumer = Consumer(
            {
                **self._config,
                "group.id": f"fleet-views-replay-{uuid.uuid4().hex[:8]}",  # never commits
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "latest",
            }
        )
        try:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            wanted = [TopicPartition(topic, p, since_ms) for p in metadata.partitions]
            starts = [tp for tp in consumer.offsets_for_times(wanted, timeout=10) if tp.offset >= 0]
            if not starts:
                return
            consumer.assign(starts)
            open_partitions = {tp.partition for tp in starts}
            deadline = time.monotonic() + self._timeout
            while open_partitions:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"reading {topic} from {since_ms} took over {self._timeout:.0f} s")
                for msg in consumer.consume(num_messages=500, timeout=0.5):
                    error = msg.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            open_partitions.discard(msg.partition())
                            continue
                        raise KafkaException(error)
                    value = msg.value()
                    if value is None:
                        continue
                    try:
                        yield decode(value)
                    except RecordError as exc:  # dead-lettered by the sink when it first read it
                        logger.debug("skipped %s[%d]@%d: %s", topic, msg.partition(), msg.offset(), exc)
        finally:
            consumer.close()
