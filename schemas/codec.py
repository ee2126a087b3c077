"""Avro codec in Confluent framing, backed by a schema registry.

Wire format: magic byte ``0``, 4-byte big-endian schema id, Avro binary (schemaless). Encoding writes
with our current schema (registered once, then the 5-byte header is precomputed). Decoding resolves the
writer schema from the id (fetched once, parsed once) and reads it into our current schema, so records
written by an older or newer compatible producer decode into today's shape. Timestamps are plain
``int`` epoch milliseconds in both directions.

Every ``timestamp-millis`` field we write lies in years 1970..9999 (:data:`MIN_TIMESTAMP_MS` ..
:data:`MAX_TIMESTAMP_MS`): ``encode`` refuses any other value with a :class:`SchemaEncodeError` naming the
field (a sentinel such as ``1 << 62`` for "open" is a bug of the producer; open is null). Records written
by producers that are not ours may hold anything; a codec made with ``guard_decoded=True`` (the sinks'
codecs) refuses those on decode with a :class:`SchemaDecodeError`, so the record is dead-lettered with
its original bytes instead of breaking the sink that cannot store it.

``codec.encode`` / ``codec.decode`` are plain callables (aiokafka ``value_serializer`` /
``value_deserializer``); tombstones (``None``) pass through unchanged.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
from collections.abc import Callable, Mapping
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from pydantic import BaseModel

from schemas import catalog
from schemas.avsc import load_schema, parse_plain
from schemas.errors import RegistryError, SchemaDecodeError, SchemaEncodeError
from schemas.registry import RegistryClient, canonical_schema_text

__all__ = [
    "MAGIC_BYTE",
    "MAX_TIMESTAMP_MS",
    "MIN_TIMESTAMP_MS",
    "AvroCodec",
    "TimestampGuard",
    "frame_header",
    "split_frame",
]

log = logging.getLogger(__name__)

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
_unpack_header = _HEADER.unpack_from


#: 1970-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the times a timestamp-millis field may hold.
MIN_TIMESTAMP_MS = 0
MAX_TIMESTAMP_MS = 253_402_300_799_999

#: A compiled check of one schema node: None if the value is fine, else (path below the node, bad value).
_Check = Callable[[Any], "tuple[str, Any] | None"]


class TimestampGuard:
    """Finds the ``timestamp-millis`` values of a record (by its Avro schema) outside years 1970..9999.

    Nested records, arrays, maps and unions are followed; named types are resolved. The check is
    compiled once per schema into small closures over the timestamp fields only, so a record without
    nested timestamps costs one comparison per timestamp field.
    """

    def __init__(self, schema: Mapping[str, Any] | list[Any] | str) -> None:
        self._named: dict[str, _Check | None] = {}
        self._check = self._compile(schema, "")

    @property
    def empty(self) -> bool:
        """The schema has no timestamp-millis field."""
        return self._check is None

    def violation(self, value: Any) -> tuple[str, Any] | None:
        """``(field path, value)`` of the first timestamp out of range, e.g. ``("route[2].eta", -5)``."""
        if self._check is None or value is None:
            return None
        try:
            found = self._check(value)
        except TypeError:  # a time that is not a number: not ours to judge (fastavro refuses it)
            return None
        return None if found is None else (found[0].lstrip("."), found[1])

    def reason(self, value: Any, what: str) -> str | None:
        """A sentence naming the field whose time is out of range, or None if every time is fine."""
        found = self.violation(value)
        if found is None:
            return None
        path, bad = found
        return (
            f"{what}: {path} = {bad!r} is not a time in years 1970..9999 "
            f"(timestamp-millis {MIN_TIMESTAMP_MS}..{MAX_TIMESTAMP_MS})"
        )

    # ------------------------------------------------------------------------------------ compiling
    def _compile(self, node: Any, namespace: str) -> _Check | None:
        if isinstance(node, str):
            return self._named.get(node, self._named.get(f"{namespace}.{node}"))
        if isinstance(node, list):
            return _union([c for c in (self._compile(branch, namespace) for branch in node) if c])
        if not isinstance(node, Mapping):
            return None
        kind = node.get("type")
        if node.get("logicalType") == "timestamp-millis" and kind == "long":
            return _timestamp
        if kind == "record":
            space = node.get("namespace", namespace)
            names = [node["name"], f"{space}.{node['name']}" if space else node["name"]]
            for name in names:
                self._named[name] = None  # a self-reference is not followed
            fields = [(f["name"], self._compile(f["type"], space)) for f in node.get("fields", [])]
            check = _record([(name, c) for name, c in fields if c is not None])
            for name in names:
                self._named[name] = check
            return check
        if kind == "array":
            return _each(self._compile(node.get("items"), namespace), keyed=False)
        if kind == "map":
            return _each(self._compile(node.get("values"), namespace), keyed=True)
        if isinstance(kind, (Mapping, list)):
            return self._compile(kind, namespace)
        return None


def _timestamp(value: Any) -> tuple[str, Any] | None:
    if type(value) is int and not MIN_TIMESTAMP_MS <= value <= MAX_TIMESTAMP_MS:
        return "", value
    return None


def _record(fields: list[tuple[str, _Check]]) -> _Check | None:
    """A record's check: its own timestamp fields compared inline (the hot path), nested ones by call."""
    if not fields:
        return None
    leaves = tuple(name for name, sub in fields if sub is _timestamp)
    nested = tuple((name, sub) for name, sub in fields if sub is not _timestamp)
    low, high = MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS

    def check(value: Any) -> tuple[str, Any] | None:
        if type(value) is not dict and not isinstance(value, Mapping):
            return None
        get = value.get
        for name in leaves:
            inner = get(name)
            if inner is not None and not low <= inner <= high and type(inner) is int:
                return f".{name}", inner
        for name, sub in nested:
            inner = get(name)
            if inner is not None:
                found = sub(inner)
                if found is not None:
                    return f".{name}{found[0]}", found[1]
        return None

    check.leaves = leaves if not nested else None  # type: ignore[attr-defined]
    return check


def _each(sub: _Check | None, *, keyed: bool) -> _Check | None:
    if sub is None:
        return None
    leaves = getattr(sub, "leaves", None)
    if leaves is not None and not keyed:  # e.g. a route: records whose only times are their own fields
        low, high = MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS

        def check_items(value: Any) -> tuple[str, Any] | None:
            if type(value) is not list and not isinstance(value, (list, tuple)):
                return None
            for item in value:
                if type(item) is not dict and not isinstance(item, Mapping):
                    continue
                for name in leaves:
                    inner = item.get(name)
                    if inner is not None and not low <= inner <= high and type(inner) is int:
                        return f"[{next(i for i, x in enumerate(value) if x is item)}].{name}", inner
            return None

        return check_items

    def check(value: Any) -> tuple[str, Any] | None:
        if keyed:
            if not isinstance(value, Mapping):
                return None
            items: Any = value.items()
        elif isinstance(value, (list, tuple)):
            items = enumerate(value)
        else:
            return None
        for at, inner in items:
            if inner is not None:
                found = sub(inner)
                if found is not None:
                    return f"[{at!r}]{found[0]}" if keyed else f"[{at}]{found[0]}", found[1]
        return None

    return check


def _union(branches: list[_Check]) -> _Check | None:
    if len(branches) < 2:
        return branches[0] if branches else None

    def check(value: Any) -> tuple[str, Any] | None:
        for branch in branches:
            found = branch(value)
            if found is not None:
                return found
        return None

    return check


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
    :param guard_decoded: refuse (``SchemaDecodeError``) a decoded record whose timestamp-millis fields
        lie outside years 1970..9999; ``encode`` always refuses them.
    """

    def __init__(
        self,
        registry: RegistryClient,
        subject: str,
        schema: str | dict[str, Any] | None,
        *,
        auto_register: bool = True,
        guard_decoded: bool = False,
    ) -> None:
        self.registry = registry
        self.subject = subject
        self.auto_register = auto_register
        self._schema: dict[str, Any] | None = json.loads(schema) if isinstance(schema, str) else schema
        guard = TimestampGuard(self._schema) if self._schema is not None else None
        self.guard: TimestampGuard | None = None if guard is None or guard.empty else guard
        self._guard_decoded = guard_decoded and self.guard is not None
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
        cls,
        registry: RegistryClient,
        record: str,
        subject: str,
        *,
        auto_register: bool = True,
        guard_decoded: bool = False,
    ) -> AvroCodec:
        """Codec of the current ``schemas/avro/<record>.avsc`` under ``subject``."""
        return cls(
            registry, subject, load_schema(record), auto_register=auto_register, guard_decoded=guard_decoded
        )

    @classmethod
    def for_topic(
        cls,
        registry: RegistryClient,
        topic: str,
        topic_prefix: str = "",
        *,
        auto_register: bool = True,
        guard_decoded: bool = False,
    ) -> AvroCodec:
        """Codec of catalog topic ``topic`` (unprefixed name) in the environment of ``topic_prefix``."""
        spec = catalog.topic(topic, topic_prefix)
        if not spec.is_avro:
            raise ValueError(f"topic {topic} carries {spec.value}, not Avro")
        return cls.for_record(
            registry, spec.value, spec.subject, auto_register=auto_register, guard_decoded=guard_decoded
        )

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
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        if self.guard is not None and self.guard.violation(value) is not None:
            raise SchemaEncodeError(self.guard.reason(value, f"value does not fit {self.subject}") or "")
        if not self._header:
            self.prepare()
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
        if self._guard_decoded and self.guard is not None and self.guard.violation(record) is not None:
            raise SchemaDecodeError(self.guard.reason(record, f"{self.subject} record") or "")
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
