"""Codec behaviour that needs no registry: framing, and errors raised before any lookup."""

from __future__ import annotations

import pytest

from schemas.avsc import load_schema, parse_plain, strip_logical_types
from schemas.codec import AvroCodec, frame_header, split_frame
from schemas.errors import RecordError, RegistryError, SchemaDecodeError
from schemas.registry import RegistryClient, canonical_schema_text

UNREACHABLE = "http://127.0.0.1:9/apis/ccompat/v7"  # nothing listens on the discard port


def _codec() -> AvroCodec:
    return AvroCodec.for_record(RegistryClient(UNREACHABLE, timeout=0.5), "RobotTelemetry", "x-value")


def test_frame_header_is_magic_byte_and_big_endian_id() -> None:
    assert frame_header(1) == b"\x00\x00\x00\x00\x01"
    assert frame_header(0x01020304) == b"\x00\x01\x02\x03\x04"
    schema_id, payload = split_frame(b"\x00\x00\x00\x01\x00abc")
    assert schema_id == 256 and bytes(payload) == b"abc"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "0 bytes, need at least 5"),
        (b"\x00\x00\x00", "3 bytes, need at least 5"),
        (b"\x01\x00\x00\x00\x01\x02", "magic byte 1, expected 0"),
        (b'{"json": true}', "magic byte 123, expected 0"),
    ],
)
def test_unframed_bytes_raise_schema_decode_error_without_a_lookup(data: bytes, reason: str) -> None:
    with pytest.raises(SchemaDecodeError, match=reason) as info:
        _codec().decode(data)
    assert isinstance(info.value, RecordError)  # routed to the DLQ, the partition moves on


def test_unreachable_registry_is_an_infrastructure_error_not_a_poison_record() -> None:
    with pytest.raises(RegistryError, match="unreachable") as info:
        _codec().decode(b"\x00\x00\x00\x00\x07\x02")
    assert not isinstance(info.value, RecordError)


def test_tombstones_pass_through() -> None:
    codec = _codec()
    assert codec.decode(None) is None
    assert codec.encode(None) is None


def test_logical_types_are_stripped_for_fastavro_only() -> None:
    schema = load_schema("RobotTelemetry")
    plain = strip_logical_types(schema)
    occurred = next(f for f in plain["fields"] if f["name"] == "occurred_at")
    assert occurred["type"] == {"type": "long"}
    assert next(f for f in schema["fields"] if f["name"] == "occurred_at")["type"]["logicalType"]
    assert "logicalType" not in canonical_schema_text(parse_plain(schema))


def test_canonical_schema_text_is_stable() -> None:
    schema = load_schema("Alert")
    assert canonical_schema_text(schema) == canonical_schema_text(canonical_schema_text(schema))
    assert " " not in canonical_schema_text({"type": "record", "name": "A", "fields": []})
