"""The registry-backed codec against the real registry: every record, malformed bytes, registration modes."""

from __future__ import annotations

import uuid

import pytest

from schemas.codec import AvroCodec, frame_header
from schemas.errors import RegistryError, SchemaDecodeError, SchemaEncodeError
from schemas.examples import example, example_model
from schemas.models import RECORD_MODELS, RobotTelemetry
from schemas.registry import RegistryClient


@pytest.mark.parametrize("record", sorted(RECORD_MODELS))
def test_every_record_round_trips(registry: RegistryClient, record: str) -> None:
    codec = AvroCodec.for_record(registry, record, f"t{uuid.uuid4().hex[:10]}.{record}-value")
    value = example(record)
    data = codec.encode(value)
    assert data is not None and data[:5] == frame_header(codec.schema_id)
    decoded = codec.decode(data)
    assert decoded == value
    # timestamps stay plain int epoch millis, never datetimes
    assert type(decoded["occurred_at"]) is int
    assert RECORD_MODELS[record].model_validate(decoded) == RECORD_MODELS[record].model_validate(value)


def test_models_encode_directly_and_decode_into_models(registry: RegistryClient, subject: str) -> None:
    codec = AvroCodec.for_topic(registry, "robot.telemetry", subject.removesuffix("robot.telemetry-value"))
    assert codec.subject == subject
    model = example_model("RobotTelemetry")
    assert codec.decode_model(codec.encode(model), RobotTelemetry) == model
    route_eta = codec.decode(codec.encode(model))["route"][0]["eta"]
    assert type(route_eta) is int


def test_bad_values_raise_schema_encode_error(registry: RegistryClient, subject: str) -> None:
    codec = AvroCodec.for_record(registry, "RobotTelemetry", subject)
    value = example("RobotTelemetry")
    for broken in ({**value, "mode": "FLYING"}, {**value, "battery": "full"}, {**value, "pose": None}):
        with pytest.raises(SchemaEncodeError, match=subject):
            codec.encode(broken)


def _malformed(codec: AvroCodec) -> dict[str, bytes]:
    good = codec.encode(example("RobotTelemetry"))
    assert good is not None
    return {
        "wrong magic byte": b"\x01" + good[1:],
        "unknown schema id": frame_header(1_999_999_999) + good[5:],
        "truncated payload": good[:-7],
        "header only": good[:5],
        "trailing bytes": good + b"\x00\x00",
        "garbage after header": good[:5] + b"\xff" * 40,
        "plain json": b'{"robot_id": "r1"}',
        "empty": b"",
    }


@pytest.mark.parametrize(
    "case",
    [
        "wrong magic byte",
        "unknown schema id",
        "truncated payload",
        "header only",
        "trailing bytes",
        "garbage after header",
        "plain json",
        "empty",
    ],
)
def test_malformed_bytes_raise_schema_decode_error(registry: RegistryClient, subject: str, case: str) -> None:
    codec = AvroCodec.for_record(registry, "RobotTelemetry", subject)
    with pytest.raises(SchemaDecodeError) as info:
        codec.decode(_malformed(codec)[case])
    assert info.value.reason


def test_unknown_id_reason_names_the_id(registry: RegistryClient, subject: str) -> None:
    codec = AvroCodec.for_record(registry, "RobotTelemetry", subject)
    with pytest.raises(SchemaDecodeError, match="unknown schema id 1999999999"):
        codec.decode(_malformed(codec)["unknown schema id"])


def test_auto_register_off_requires_prior_registration(registry: RegistryClient, subject: str) -> None:
    strict = AvroCodec.for_record(registry, "RobotTelemetry", subject, auto_register=False)
    with pytest.raises(RegistryError, match="fleet schemas register"):
        strict.encode(example("RobotTelemetry"))
    registered = AvroCodec.for_record(registry, "RobotTelemetry", subject).prepare()
    strict = AvroCodec.for_record(
        RegistryClient(registry.url), "RobotTelemetry", subject, auto_register=False
    )
    assert strict.prepare() == registered


def test_decode_only_codec_returns_writer_view(registry: RegistryClient, subject: str) -> None:
    writer = AvroCodec.for_record(registry, "Alert", subject)
    reader = AvroCodec(RegistryClient(registry.url), subject, None)
    value = example("Alert")
    assert reader.decode(writer.encode(value)) == value
    with pytest.raises(ValueError, match="decode-only"):
        reader.encode(example("Alert"))


def test_registry_is_called_once_per_id(registry: RegistryClient, subject: str) -> None:
    writer = AvroCodec.for_record(registry, "RobotTelemetry", subject)
    payloads = [writer.encode(example("RobotTelemetry")) for _ in range(100)]
    fresh = RegistryClient(registry.url)
    reader = AvroCodec.for_record(fresh, "RobotTelemetry", subject)
    for data in payloads:
        reader.decode(data)
    assert fresh.http_calls == 1


def _foreign(codec: AvroCodec, record: dict) -> bytes:
    """``record`` written by a producer that is not ours: plain fastavro with our registered schema id."""
    from io import BytesIO

    from fastavro import schemaless_writer

    from schemas.avsc import parse_plain

    out = BytesIO()
    out.write(frame_header(codec.schema_id))
    schemaless_writer(out, parse_plain(codec.schema), record)
    return out.getvalue()


def test_a_foreign_time_out_of_range_decodes_but_a_guarded_codec_refuses_it(
    registry: RegistryClient, subject: str
) -> None:
    codec = AvroCodec.for_record(registry, "Conflict", subject)
    guarded = AvroCodec.for_record(registry, "Conflict", subject, guard_decoded=True)
    sentinel = {**example("Conflict"), "window_end": 4611686018427387903}
    with pytest.raises(SchemaEncodeError, match="window_end = 4611686018427387903"):
        codec.encode(sentinel)  # we never write one
    data = _foreign(codec, sentinel)
    assert codec.decode(data) == sentinel  # a topology or the gateway still reads it as it is
    with pytest.raises(SchemaDecodeError) as info:
        guarded.decode(data)  # a sink dead-letters it with its bytes
    assert info.value.reason == (
        f"{subject} record: window_end = 4611686018427387903 is not a time in years 1970..9999 "
        "(timestamp-millis 0..253402300799999)"
    )
    good = example("Conflict")
    assert guarded.decode(codec.encode(good)) == good
