"""Interop with Confluent's own Avro serdes over the same registry (Apicurio ccompat)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from pipelines.settings import CommonSettings
from schemas.avsc import load_schema
from schemas.catalog import subject_name
from schemas.codec import AvroCodec
from schemas.examples import example
from schemas.registry import RegistryClient, canonical_schema_text


def _to_ms(value: Any) -> Any:
    """Confluent's deserializer turns timestamp-millis into datetimes; ours keeps int millis."""
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: _to_ms(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_ms(v) for v in value]
    return value


def _confluent_client(settings: CommonSettings) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": settings.schema_registry_url})


def test_our_bytes_read_by_confluent_deserializer(settings: CommonSettings, registry: RegistryClient) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.robot.status"
    codec = AvroCodec.for_record(registry, "RobotStatus", subject_name(topic))
    value = example("RobotStatus")
    data = codec.encode(value)

    deserializer = AvroDeserializer(_confluent_client(settings))
    decoded = deserializer(data, SerializationContext(topic, MessageField.VALUE))
    assert isinstance(decoded["occurred_at"], datetime)
    assert decoded["occurred_at"] == datetime.fromtimestamp(value["occurred_at"] / 1000, UTC)
    assert _to_ms(decoded) == value


def test_confluent_serializer_bytes_read_by_our_codec(
    settings: CommonSettings, registry: RegistryClient
) -> None:
    topic = f"t{uuid.uuid4().hex[:10]}.task.events"
    serializer = AvroSerializer(
        _confluent_client(settings),
        canonical_schema_text(load_schema("TaskEvent")),
        conf={"auto.register.schemas": True},
    )
    value = example("TaskEvent")
    data = serializer(value, SerializationContext(topic, MessageField.VALUE))
    assert data[0] == 0

    reader = AvroCodec.for_record(RegistryClient(registry.url), "TaskEvent", subject_name(topic))
    decoded = reader.decode(data)
    assert decoded == value
    assert type(decoded["spec"]["deadline"]) is int
    # same schema text -> same id: both serializers agree on the subject's version
    assert int.from_bytes(data[1:5], "big") == reader.schema_id
    assert registry.versions(subject_name(topic)) == [1]


def test_ids_follow_the_schema_text(settings: CommonSettings, registry: RegistryClient) -> None:
    """Apicurio does not normalise schema text: a pretty-printed copy gets its own id and version.
    Both still decode, because readers resolve the writer schema by id."""
    topic = f"t{uuid.uuid4().hex[:10]}.alerts"
    serializer = AvroSerializer(
        _confluent_client(settings),
        json.dumps(load_schema("Alert"), indent=2),
        conf={"auto.register.schemas": True},
    )
    value = example("Alert")
    theirs = serializer(value, SerializationContext(topic, MessageField.VALUE))
    codec = AvroCodec.for_record(registry, "Alert", subject_name(topic))
    ours = codec.encode(value)
    assert theirs[1:5] != ours[1:5]
    assert codec.decode(theirs) == codec.decode(ours) == value
