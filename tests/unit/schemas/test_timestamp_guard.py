"""The codec's time guard: every timestamp-millis we write lies in years 1970..9999 (no registry needed).

The contract test runs every record's example (``schemas/examples.py``) through the guard and through
``encode``, then moves each of its times to the edges of the range and beyond.
"""

from __future__ import annotations

from typing import Any

import pytest

from schemas.avsc import load_schema
from schemas.codec import MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS, AvroCodec, TimestampGuard
from schemas.errors import SchemaEncodeError
from schemas.examples import example
from schemas.models import RECORD_MODELS
from schemas.registry import RegistryClient

UNREACHABLE = "http://127.0.0.1:9/apis/ccompat/v7"  # the guard refuses before any registry call

#: every timestamp-millis field of every record, as a path into its example
TIME_FIELDS: dict[str, list[str]] = {
    "Alert": ["occurred_at"],
    "AuditEvent": ["occurred_at"],
    "Conflict": ["occurred_at", "window_start", "window_end"],
    "Decision": ["occurred_at", "route[0].eta", "route[1].eta", "eta"],
    "RobotRegistration": ["occurred_at"],
    "RobotStatus": ["occurred_at", "route[0].eta", "route[1].eta", "last_seen_at"],
    "RobotTelemetry": ["occurred_at", "route[0].eta", "route[1].eta"],
    "SiteMap": ["occurred_at"],
    "TaskCommand": ["occurred_at", "spec.deadline"],
    "TaskEvent": ["occurred_at", "spec.deadline"],
    "TaskSchedule": ["occurred_at", "template.deadline"],
    "TelemetryAggregate": ["occurred_at", "window_start", "window_end"],
    "Timer": ["occurred_at", "due_at"],
}


def _set(record: dict[str, Any], path: str, value: int) -> dict[str, Any]:
    """A deep copy of ``record`` with the field at ``path`` (``a.b``, ``a[1].b``) set to ``value``."""
    out: Any = {**record}
    node = out
    parts = path.replace("[", ".[").split(".")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part.startswith("["):
            index = int(part[1:-1])
            node[index] = value if last else {**node[index]}
            node = node[index]
        else:
            if last:
                node[part] = value
            else:
                node[part] = [*node[part]] if isinstance(node[part], list) else {**node[part]}
                node = node[part]
    return out


def _codec(record: str) -> AvroCodec:
    return AvroCodec.for_record(RegistryClient(UNREACHABLE, timeout=0.5), record, f"x.{record}-value")


def test_the_table_names_every_record_and_every_time_field() -> None:
    assert set(TIME_FIELDS) == set(RECORD_MODELS)

    def times(node: Any, path: str = "") -> list[str]:
        if isinstance(node, dict):
            if node.get("logicalType") == "timestamp-millis":
                return [path]
            if node.get("type") == "record":
                return [p for f in node["fields"] for p in times(f["type"], f"{path}.{f['name']}")]
            if node.get("type") == "array":
                return times(node["items"], f"{path}[]")
            return times(node.get("type"), path) if isinstance(node.get("type"), (dict, list)) else []
        if isinstance(node, list):
            return [p for branch in node for p in times(branch, path)]
        return []

    for record, paths in TIME_FIELDS.items():
        in_schema = {p.lstrip(".") for p in times(load_schema(record))}
        assert {p.replace("[0]", "[]").replace("[1]", "[]") for p in paths} == in_schema, record


@pytest.mark.parametrize("record", sorted(RECORD_MODELS))
def test_every_example_is_within_years_1970_to_9999(record: str) -> None:
    guard = TimestampGuard(load_schema(record))
    assert not guard.empty
    assert guard.violation(example(record)) is None


@pytest.mark.parametrize(("record", "path"), [(r, p) for r, paths in TIME_FIELDS.items() for p in paths])
def test_each_time_field_at_and_beyond_its_limits(record: str, path: str) -> None:
    guard = TimestampGuard(load_schema(record))
    for ok in (MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS):
        assert guard.violation(_set(example(record), path, ok)) is None
    for bad in (MIN_TIMESTAMP_MS - 1, MAX_TIMESTAMP_MS + 1, 1 << 62, 4611686018427387903, -(2**63)):
        assert guard.violation(_set(example(record), path, bad)) == (path, bad)


@pytest.mark.parametrize("record", ["Conflict", "Decision", "TaskEvent"])
def test_encode_refuses_a_time_out_of_range_naming_the_field(record: str) -> None:
    path = TIME_FIELDS[record][-1]
    with pytest.raises(SchemaEncodeError) as info:
        _codec(record).encode(_set(example(record), path, 4611686018427387903))
    assert info.value.reason == (
        f"value does not fit x.{record}-value: {path} = 4611686018427387903 is not a time in years "
        f"1970..9999 (timestamp-millis 0..253402300799999)"
    )


def test_the_traffic_open_window_sentinel_is_refused() -> None:
    """Issue 15: traffic wrote ``window_end = 1 << 62`` for an open conflict; the guard refuses such a value."""
    conflict = {**example("Conflict"), "window_end": 1 << 62}
    with pytest.raises(SchemaEncodeError, match=r"window_end = 4611686018427387904 is not a time"):
        _codec("Conflict").encode(conflict)


def test_nulls_and_non_integers_are_left_to_the_schema() -> None:
    guard = TimestampGuard(load_schema("Decision"))
    assert guard.violation({**example("Decision"), "eta": None, "route": []}) is None
    assert guard.violation({**example("Decision"), "eta": "soon"}) is None  # fastavro refuses the type
    assert guard.violation(None) is None


def test_named_types_nested_records_maps_and_unions_are_followed() -> None:
    ts = {"type": "long", "logicalType": "timestamp-millis"}
    schema = {
        "type": "record",
        "name": "Outer",
        "namespace": "x",
        "fields": [
            {"name": "at", "type": ts},
            {
                "name": "leg",
                "type": ["null", {"type": "record", "name": "Leg", "fields": [{"name": "due", "type": ts}]}],
            },
            {"name": "legs", "type": {"type": "array", "items": "x.Leg"}},
            {"name": "by_name", "type": {"type": "map", "values": "Leg"}},
            {"name": "plain", "type": "long"},
        ],
    }
    guard = TimestampGuard(schema)
    good = {"at": 1, "leg": {"due": 2}, "legs": [{"due": 3}], "by_name": {"a": {"due": 4}}, "plain": -7}
    assert guard.violation(good) is None
    assert guard.violation({**good, "leg": {"due": -1}}) == ("leg.due", -1)
    assert guard.violation({**good, "legs": [{"due": 3}, {"due": -2}]}) == ("legs[1].due", -2)
    assert guard.violation({**good, "by_name": {"b": {"due": -3}}}) == ("by_name['b'].due", -3)
    assert TimestampGuard({"type": "record", "name": "N", "fields": [{"name": "n", "type": "long"}]}).empty
