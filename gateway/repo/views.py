"""An in-memory view of a compacted topic (latest value per key), kept up to date by a background task.

The gateway uses it for ``task.schedules``: the gateway is the topic's only producer, the topic is
small, and the view gives read-your-writes on the instance that produced (and on every other instance
as soon as its consumer has read the record).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from gateway.sse import topic_partitions

__all__ = ["CompactedView"]

logger = logging.getLogger(__name__)


class CompactedView:
    """Latest decoded value per view key (derived from the value) of one topic; tombstones delete."""

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        decode: Callable[[bytes], Any],
        key_of: Callable[[dict[str, Any]], str],
    ) -> None:
        self._config = kafka_config
        self.topic = topic
        self._decode = decode
        self._key_of = key_of
        self._values: dict[str, dict[str, Any]] = {}
        self._view_keys: dict[str, str] = {}  # Kafka key -> view key, for tombstones
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._positions: dict[int, int] = {}
        self.caught_up = asyncio.Event()

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self._config, enable_auto_commit=False, group_id=None)
        await self._consumer.start()
        parts = (await topic_partitions(self._config, [self.topic])).get(self.topic, set())
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._end = {}
        if not tps:
            logger.warning("topic %s does not exist: the view stays empty", self.topic)
            self.caught_up.set()
            return
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._end = await self._consumer.end_offsets(tps)
        self._task = asyncio.create_task(self._run(), name=f"view:{self.topic}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def _check_caught_up(self) -> None:
        if all(self._positions.get(tp.partition, 0) >= end for tp, end in self._end.items()):
            self.caught_up.set()

    async def _run(self) -> None:
        assert self._consumer is not None
        self._check_caught_up()
        while True:
            batches = await self._consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                for rec in records:
                    key = rec.key.decode() if rec.key else ""
                    try:
                        value = self._decode(rec.value) if rec.value is not None else None
                    except Exception:  # a poison record must not stop the view
                        logger.exception(
                            "undecodable record",
                            extra={"topic": tp.topic, "partition": tp.partition, "offset": rec.offset},
                        )
                        continue
                    if value is None:
                        self._values.pop(self._view_keys.pop(key, key), None)
                    else:
                        view_key = self._key_of(value)
                        self._view_keys[key] = view_key
                        self._values[view_key] = value
                    self._positions[tp.partition] = rec.offset + 1
            if not self.caught_up.is_set():
                for tp in self._end:
                    self._positions[tp.partition] = max(
                        self._positions.get(tp.partition, 0), await self._consumer.position(tp)
                    )
                self._check_caught_up()

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Apply a value this process just produced, ahead of reading it back (read-your-writes)."""
        self._values[key] = value

    def get(self, key: str) -> dict[str, Any] | None:
        return self._values.get(key)

    def values(self) -> list[dict[str, Any]]:
        return list(self._values.values())
