"""Quix Streams adapters over :class:`schemas.codec.AvroCodec`.

    codec = AvroCodec.for_topic(registry, "robot.telemetry", topic_prefix)
    topic = app.topic(codec_topic_name, value_serializer=AvroSerializer(codec),
                      value_deserializer=AvroDeserializer(codec))

The deserializer raises :class:`schemas.errors.SchemaDecodeError` for malformed bytes (it does not wrap
or swallow it), so the application's error callback can route the record to the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from quixstreams.models.serializers import Deserializer, SerializationContext, Serializer

from schemas.codec import AvroCodec
from schemas.registry import RegistryClient

__all__ = ["AvroDeserializer", "AvroSerializer", "quix_serdes"]


class AvroSerializer(Serializer):
    """Quix value/key serializer writing Confluent-framed Avro through ``codec``."""

    def __init__(self, codec: AvroCodec) -> None:
        self.codec = codec
        if codec.schema is not None:
            codec.prepare()

    def __call__(self, value: Mapping[str, Any] | BaseModel, ctx: SerializationContext) -> bytes:
        data = self.codec.encode(value)
        assert data is not None
        return data


class AvroDeserializer(Deserializer):
    """Quix value/key deserializer reading Confluent-framed Avro into our current schema's dicts."""

    def __init__(self, codec: AvroCodec) -> None:
        super().__init__()
        self.codec = codec

    def __call__(self, value: bytes, ctx: SerializationContext) -> dict[str, Any]:
        record = self.codec.decode(value)
        assert record is not None
        return record


def quix_serdes(
    registry: RegistryClient, topic: str, topic_prefix: str = "", *, auto_register: bool = True
) -> tuple[AvroSerializer, AvroDeserializer]:
    """Serializer and deserializer for catalog topic ``topic`` (unprefixed name), sharing one codec."""
    codec = AvroCodec.for_topic(registry, topic, topic_prefix, auto_register=auto_register)
    return AvroSerializer(codec), AvroDeserializer(codec)
