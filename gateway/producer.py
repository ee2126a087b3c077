"""The gateway's only write: producing records to Kafka (idempotent producer, acks=all, Avro framed)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError, MessageSizeTooLargeError
from pydantic import BaseModel

from gateway.errors import RecordTooLarge, Unavailable
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from schemas.tracing import TRACEPARENT, current_header

__all__ = ["OUTPUT_TOPICS", "EventProducer"]

logger = logging.getLogger(__name__)

#: Catalog topics the gateway produces to.
OUTPUT_TOPICS: tuple[str, ...] = (
    catalog.TASK_COMMANDS,
    catalog.ROBOT_REGISTRY,
    catalog.SITE_MAPS,
    catalog.TASK_SCHEDULES,
    catalog.AUDIT_LOG,
)

#: The largest produce request (aiokafka's default; brokers take 1 MiB records by default).
_MAX_REQUEST_SIZE = 1024 * 1024


class EventProducer:
    """Encodes pydantic records with the registry-backed codec and produces them, awaiting the ack.

    :param kafka_config: aiokafka connection arguments (``CommonSettings.aiokafka_config()``).
    :param registry: schema registry client.
    :param topic_prefix: environment prefix of every topic.
    """

    def __init__(
        self,
        kafka_config: dict[str, Any],
        registry: RegistryClient,
        topic_prefix: str = "",
        *,
        auto_register: bool = True,
        linger_ms: int = 2,
        request_timeout_ms: int = 10000,
    ) -> None:
        self._kafka_config = kafka_config
        self._prefix = topic_prefix
        self._codecs = {
            name: AvroCodec.for_topic(registry, name, topic_prefix, auto_register=auto_register)
            for name in OUTPUT_TOPICS
        }
        self._linger_ms = linger_ms
        self._request_timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None

    @property
    def client(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise RuntimeError("producer not started")
        return self._producer

    async def start(self) -> None:
        # Resolve every schema id before serving, so the hot path never calls the registry.
        await asyncio.gather(*(asyncio.to_thread(c.prepare) for c in self._codecs.values()))
        self._producer = AIOKafkaProducer(
            **self._kafka_config,
            acks="all",
            enable_idempotence=True,
            linger_ms=self._linger_ms,
            request_timeout_ms=self._request_timeout_ms,
            client_id="fleet-gateway",
            max_request_size=_MAX_REQUEST_SIZE,
        )
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def topic(self, name: str) -> str:
        return f"{self._prefix}{name}"

    async def send(self, topic: str, key: str, record: BaseModel, *, max_bytes: int | None = None) -> None:
        """Produce ``record`` to catalog topic ``topic`` with ``key`` and wait until the broker has it.

        The record carries ``traceparent``: the request's trace (``gateway.middleware``), or a new one.

        :raises RecordTooLarge: the record encodes larger than ``max_bytes`` (or than Kafka takes).
        :raises Unavailable: no broker acknowledged it within ``request_timeout_ms`` (Kafka is down or has no
            leader); the producer keeps it and writes it, once, when a broker is back.
        """
        value = self._codecs[topic].encode(record)
        assert value is not None  # a record, not a tombstone
        if max_bytes is not None and len(value) > max_bytes:
            raise RecordTooLarge(topic, len(value), max_bytes)
        headers = [(TRACEPARENT, current_header())]
        timeout = self._request_timeout_ms / 1000
        try:
            # send() itself gives up after request_timeout_ms (no metadata, no room in the buffer). The
            # idempotent producer never gives up on a record it holds (it retries until a broker takes it),
            # so the wait for the acknowledgement is bounded here: a record not acknowledged in time stays
            # with the producer and may still be written, once, later.
            delivery = await self.client.send(
                self.topic(topic), value=value, key=key.encode(), headers=headers
            )
            done, _ = await asyncio.wait((delivery,), timeout=timeout)
            if not done:
                raise Unavailable("kafka", f"no broker acknowledged the record within {timeout:g} s")
            delivery.result()
        except MessageSizeTooLargeError as exc:
            raise RecordTooLarge(topic, len(value), _MAX_REQUEST_SIZE) from exc
        except KafkaError as exc:
            if isinstance(exc, KafkaTimeoutError) or exc.retriable:
                raise Unavailable("kafka", f"{type(exc).__name__}: {exc}") from exc
            raise
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "produced a record to %s",
                topic,
                extra={
                    "output_topic": topic,
                    **{f: getattr(record, f, None) for f in ("tenant_id", "site_id", "robot_id", "task_id")},
                },
            )

    async def ping(self) -> None:
        """Raise unless a broker answers a metadata request."""
        client = self.client.client
        ok = await client.fetch_all_metadata()
        if ok is None or not ok.brokers():
            raise ConnectionError("no broker in metadata")
