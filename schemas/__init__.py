"""fleetstream contracts: Avro schemas, pydantic models, codec, topic catalog.

Typical use::

    from schemas import AvroCodec, RegistryClient

    registry = RegistryClient(**settings.registry_client_config())
    codec = AvroCodec.for_topic(registry, "robot.telemetry", settings.topic_prefix)
    data = codec.encode(record_dict)          # Confluent-framed Avro bytes
    record = codec.decode(data)               # dict, timestamps as int epoch ms

Quix Streams adapters live in :mod:`schemas.quix`, the RMF JSON codec in :mod:`schemas.rmf`, the
offline compatibility gate in :mod:`schemas.compat`.
"""

from schemas import catalog, models
from schemas.avsc import load_schema, record_names
from schemas.catalog import CatalogError, TopicSpec, dlq_topic, subject_name, topic, topics
from schemas.codec import AvroCodec, frame_header, split_frame
from schemas.errors import (
    FleetError,
    IncompatibleSchemaError,
    RecordError,
    RegistryError,
    RejectedRecord,
    SchemaDecodeError,
    SchemaEncodeError,
)
from schemas.ids import now_ms, uuid7
from schemas.registry import RegistryClient

__all__ = [
    "AvroCodec",
    "CatalogError",
    "FleetError",
    "IncompatibleSchemaError",
    "RecordError",
    "RegistryClient",
    "RegistryError",
    "RejectedRecord",
    "SchemaDecodeError",
    "SchemaEncodeError",
    "TopicSpec",
    "catalog",
    "dlq_topic",
    "frame_header",
    "load_schema",
    "models",
    "now_ms",
    "record_names",
    "split_frame",
    "subject_name",
    "topic",
    "topics",
    "uuid7",
]
