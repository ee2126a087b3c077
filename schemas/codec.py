"""Avro codec in Confluent framing, backed by a schema registry.

Wire format: magic byte ``0``, 4-byte big-endian schema id, Avro binary (schemaless). Encoding writes
with our current schema (registered once, then the 5-byte header is precomputed). Decoding resolves the
writer schema from the id (fetched once, parsed once) and reads it into our current schema, so records
written by an older or newer compatible producer decode into today's shape. Timestamps are plain
``int`` epoch milliseconds in both directions.

``codec.encode`` / ``codec.decode`` are plain callables (aiokafka ``value_serializer`` /
``value_deserializer``); tombstones (``None``) pass through unchanged.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from collections.abc import Mapping
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from pydantic import BaseModel

from schemas import catalog
from schemas.avsc import load_schema, parse_plain
from schemas.errors import RegistryError, SchemaDecodeError, SchemaEncodeError
from schemas.registry import RegistryClient, canonical_schema_text

__all__ = ["MAGIC_BYTE", "AvroCodec", "frame_header", "split_frame"]

log = logging.getLogger(__name__)

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
_unpack_header = _HEADER.unpack_from


def frame_header(schema_id: int) -> bytes:
    """The 5-byte Confluent header for ``schema_id``."""
    return _HEADER.pack(MAGIC_BYTE, schema_id)


def split_frame(data: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """``(schema_id, avro_payload)`` of a framed message; raises SchemaDecodeError if not framed."""
    if len(data) < 5:
        raise SchemaDecodeError(f"not a Confluent-framed Avro message: {len(data)} bytes, need at least 5")
    if data[0] != MAGIC_BYTE:
        raise SchemaDecodeError(f"not a Confluent-framed Avro message: magic byte {data[0]}, expected 0")
    return int.from_bytes(data[1:5], "big"), memoryview(data)[5:]


class AvroCodec:
    """Encode dicts to framed Avro and back, for one subject and one (reader/writer) schema.

    :param registry: the registry client (shared between codecs; it caches).
    :param subject: the value subject, ``<topic>-value`` (see :func:`schemas.catalog.subject_name`).
    :param schema: our current schema (dict or JSON text): the writer schema when encoding and the
        reader schema when decoding. ``None`` makes a decode-only codec that returns the writer's view.
    :param auto_register: register the schema on first encode; when False it must already be registered
        under ``subject`` (``fleet schemas register`` does that at deploy time).
    """

    def __init__(
        self,
        registry: RegistryClient,
        subject: str,
        schema: str | dict[str, Any] | None,
        *,
        auto_register: bool = True,
    ) -> None:
        self.registry = registry
        self.subject = subject
        self.auto_register = auto_register
        self._schema: dict[str, Any] | None = json.loads(schema) if isinstance(schema, str) else schema
        self._parsed: Any = parse_plain(self._schema) if self._schema is not None else None
        self._canonical_plain = _plain_key(self._schema) if self._schema is not None else None
        self._schema_id: int | None = None
        self._header = b""
        # id -> (writer parsed, reader parsed or None when writer == reader)
        self._readers: dict[int, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    # -------------------------------------------------------------------------------- constructors

    @classmethod
    def for_record(
        cls, registry: RegistryClient, record: str, subject: str, *, auto_register: bool = True
    ) -> AvroCodec:
        """Codec of the current ``schemas/avro/<record>.avsc`` under ``subject``."""
        return cls(registry, subject, load_schema(record), auto_register=auto_register)

    @classmethod
    def for_topic(
        cls, registry: RegistryClient, topic: str, topic_prefix: str = "", *, auto_register: bool = True
    ) -> AvroCodec:
        """Codec of catalog topic ``topic`` (unprefixed name) in the environment of ``topic_prefix``."""
        spec = catalog.topic(topic, topic_prefix)
        if not spec.is_avro:
            raise ValueError(f"topic {topic} carries {spec.value}, not Avro")
        return cls.for_record(registry, spec.value, spec.subject, auto_register=auto_register)

    # ------------------------------------------------------------------------------------- writing

    @property
    def schema(self) -> dict[str, Any] | None:
        return self._schema

    @property
    def schema_id(self) -> int:
        """The id our schema is registered under (registers or looks it up on first use)."""
        if self._schema_id is None:
            self.prepare()
        assert self._schema_id is not None
        return self._schema_id

    def prepare(self) -> int:
        """Resolve (and if allowed register) our schema's id now, so the hot path never calls out."""
        if self._schema is None:
            raise ValueError("a decode-only codec (schema=None) cannot encode")
        with self._lock:
            if self._schema_id is None:
                if self.auto_register:
                    schema_id = self.registry.register(self.subject, self._schema)
                else:
                    found = self.registry.lookup(self.subject, self._schema)
                    if found is None:
                        raise RegistryError(
                            f"schema not registered under {self.subject}; run `fleet schemas register`"
                        )
                    schema_id = found
                self._readers[schema_id] = (self._parsed, None)
                self._header = frame_header(schema_id)
                self._schema_id = schema_id
        return self._schema_id

    def encode(self, value: Mapping[str, Any] | BaseModel | None) -> bytes | None:
        """Framed Avro bytes of ``value`` (a dict or a pydantic model); ``None`` stays ``None``."""
        if value is None:
            return None
        if not self._header:
            self.prepare()
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        out = BytesIO()
        out.write(self._header)
        try:
            schemaless_writer(out, self._parsed, value)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SchemaEncodeError(
                f"value does not fit {self.subject}: {type(exc).__name__}: {exc}"
            ) from exc
        return out.getvalue()

    # ------------------------------------------------------------------------------------- reading

    def decode(self, data: bytes | bytearray | memoryview | None) -> dict[str, Any] | None:
        """The record in ``data`` as a dict in our current schema's shape; ``None`` stays ``None``.

        :raises SchemaDecodeError: bad magic byte, unknown schema id, truncated or trailing bytes,
            or a writer schema that cannot be read into ours.
        :raises RegistryError: the registry is unreachable (an infrastructure error, retry).
        """
        if data is None:
            return None
        try:
            magic, schema_id = _unpack_header(data)
        except struct.error:
            magic = -1
        if magic != MAGIC_BYTE:
            split_frame(data)  # raises with the precise reason
        pair = self._readers.get(schema_id)
        if pair is None:
            pair = self._resolve(schema_id)
        stream = BytesIO(data)
        stream.seek(5)
        try:
            record = schemaless_reader(stream, pair[0], pair[1])
        except Exception as exc:
            raise SchemaDecodeError(
                f"cannot decode {self.subject} record with schema id {schema_id}: {type(exc).__name__}: {exc}"
            ) from exc
        size = len(data)
        if stream.tell() != size:
            raise SchemaDecodeError(
                f"{size - stream.tell()} trailing bytes after the {self.subject} record "
                f"(schema id {schema_id}): not one Avro record"
            )
        return record  # type: ignore[return-value]

    def decode_model(self, data: bytes, model: type[BaseModel]) -> BaseModel | None:
        """Decode into a pydantic model (slow path, for the gateway and tests)."""
        record = self.decode(data)
        return None if record is None else model.model_validate(record)

    def _resolve(self, schema_id: int) -> tuple[Any, Any]:
        text = self.registry.schema_by_id(schema_id)
        if text is None:
            raise SchemaDecodeError(
                f"unknown schema id {schema_id}: the registry at {self.registry.url} has none"
            )
        try:
            writer = parse_plain(text)
        except Exception as exc:
            raise SchemaDecodeError(f"schema id {schema_id} is not a valid Avro schema: {exc}") from exc
        reader = None
        if self._schema is not None and _plain_key(json.loads(text)) != self._canonical_plain:
            reader = self._parsed
        with self._lock:
            self._readers[schema_id] = (writer, reader)
        log.debug(
            "resolved schema id %d for %s (resolution: %s)", schema_id, self.subject, reader is not None
        )
        return writer, reader


def _plain_key(schema: Any) -> str:
    """A comparison key of a schema ignoring documentation (doc fields do not change the encoding)."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items() if k != "doc"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return canonical_schema_text(walk(schema))
