"""The .avsc files follow docs/records.md conventions and cannot drift from the pydantic models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema
from pydantic import ValidationError

from schemas import models
from schemas.avrogen import avro_schema, drift, render
from schemas.avsc import AVRO_DIR, load_schema, record_names
from schemas.examples import example, example_model
from schemas.ids import uuid7_time_ms

RECORDS = [
    "RobotTelemetry",
    "RobotRegistration",
    "RobotStatus",
    "TelemetryAggregate",
    "SiteMap",
    "TaskCommand",
    "TaskSchedule",
    "TaskEvent",
    "Decision",
    "Conflict",
    "Alert",
    "AuditEvent",
    "Timer",
]
TIMESTAMP_FIELDS = {
    "occurred_at",
    "eta",
    "last_seen_at",
    "window_start",
    "window_end",
    "deadline",
    "due_at",
}


def _walk_named(schema: Any, out: dict[str, list[dict[str, Any]]]) -> None:
    if isinstance(schema, list):
        for s in schema:
            _walk_named(s, out)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "enum"):
            out.setdefault(schema["name"], []).append(schema)
            for f in schema.get("fields", ()):
                _walk_named(f["type"], out)
        elif schema.get("type") == "array":
            _walk_named(schema["items"], out)
        elif schema.get("type") == "map":
            _walk_named(schema["values"], out)


def _all_fields(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    named: dict[str, list[dict[str, Any]]] = {}
    _walk_named(schema, named)
    return [(f"{n}.{f['name']}", f) for n, defs in named.items() for d in defs for f in d.get("fields", ())]


def test_one_avsc_per_record_of_the_contract() -> None:
    assert record_names() == sorted(RECORDS)
    assert sorted(models.RECORD_MODELS) == sorted(RECORDS)


@pytest.mark.parametrize("record", RECORDS)
def test_avsc_equals_schema_derived_from_model(record: str) -> None:
    assert load_schema(record) == avro_schema(models.RECORD_MODELS[record])
    # and the file is exactly what the generator writes (no hand edits that json-equal hides)
    assert (AVRO_DIR / f"{record}.avsc").read_text() == render(avro_schema(models.RECORD_MODELS[record]))


def test_drift_check_reports_field_level_differences(tmp_path: Path) -> None:
    for path in AVRO_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    assert drift(tmp_path) == []
    schema = json.loads((tmp_path / "RobotTelemetry.avsc").read_text())
    next(f for f in schema["fields"] if f["name"] == "speed")["default"] = 1.0
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "error_code"]
    (tmp_path / "RobotTelemetry.avsc").write_text(json.dumps(schema))
    problems = drift(tmp_path)
    assert any("speed" in p and "default" in p for p in problems), problems
    assert any("RobotTelemetry" in p for p in problems)
    (tmp_path / "Extra.avsc").write_text('{"type": "record", "name": "Extra", "fields": []}')
    assert "Extra.avsc has no model in schemas.models" in drift(tmp_path)


@pytest.mark.parametrize("record", RECORDS)
def test_conventions(record: str) -> None:
    schema = load_schema(record)
    parse_schema(schema)  # valid Avro, defaults included
    assert schema["namespace"] == "io.fleetstream"
    assert schema["doc"]
    top = [f["name"] for f in schema["fields"]]
    assert top[:4] == ["event_id", "tenant_id", "site_id", "occurred_at"]
    for path, field in _all_fields(schema):
        assert field.get("doc"), f"{path} has no doc"
        ftype = field["type"]
        if field["name"] in TIMESTAMP_FIELDS:
            inner = ftype[1] if isinstance(ftype, list) else ftype
            assert inner == {"type": "long", "logicalType": "timestamp-millis"}, path
        if isinstance(ftype, list):
            assert ftype[0] == "null" and len(ftype) == 2, path
            assert field["default"] is None, path
        if isinstance(ftype, dict) and ftype.get("type") == "array" and "default" in field:
            assert field["default"] == [], path
    named: dict[str, list[dict[str, Any]]] = {}
    _walk_named(schema, named)
    for name, defs in named.items():
        assert len(defs) == 1, f"{name} defined twice in {record}"
        if defs[0]["type"] == "enum":
            assert defs[0]["default"] in defs[0]["symbols"], name
            assert defs[0]["namespace"] == "io.fleetstream"


def test_site_id_nullable_only_where_it_does_not_apply() -> None:
    for record in RECORDS:
        site = next(f for f in load_schema(record)["fields"] if f["name"] == "site_id")
        expected = ["null", "string"] if record in ("AuditEvent", "Timer") else "string"
        assert site["type"] == expected, record


def test_shared_types_are_identical_in_every_file() -> None:
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for record in RECORDS:
        named: dict[str, list[dict[str, Any]]] = {}
        _walk_named(load_schema(record), named)
        for name, (definition,) in named.items():
            if name in seen:
                assert definition == seen[name][1], f"{name} differs between {seen[name][0]} and {record}"
            else:
                seen[name] = (record, definition)
    # Pose, RouteWaypoint and TaskSpec are really shared
    assert {"Pose", "RouteWaypoint", "TaskSpec", "TaskState"} <= seen.keys()


def test_records_md_defaults() -> None:
    telemetry = {f["name"]: f for f in load_schema("RobotTelemetry")["fields"]}
    assert telemetry["task_phase"]["default"] == "NONE"
    assert telemetry["route"]["default"] == []
    assert telemetry["seq"]["type"] == "long"
    spec = next(f for f in load_schema("TaskCommand")["fields"] if f["name"] == "spec")["type"][1]
    spec_fields = {f["name"]: f for f in spec["fields"]}
    assert spec_fields["priority"]["default"] == 5
    assert spec_fields["max_attempts"]["default"] == 3
    assert spec_fields["labels"] == {
        **spec_fields["labels"],
        "type": {"type": "map", "values": "string"},
        "default": {},
    }
    assert spec_fields["on_dependency_failure"]["default"] == "CANCEL"
    decision = {f["name"]: f for f in load_schema("Decision")["fields"]}
    assert decision["planner"]["default"] == "in_process"
    alert = {f["name"]: f for f in load_schema("Alert")["fields"]}
    assert alert["severity"]["default"] == "WARNING"
    assert alert["severity"]["type"]["symbols"] == ["INFO", "WARNING", "CRITICAL"]


def test_enums_are_str_enums_with_avro_default() -> None:
    assert models.TaskState.QUEUED == "QUEUED"
    assert isinstance(models.TaskState.QUEUED, str)
    assert models.TaskPhase.__avro_default__ == "NONE"
    assert models.RobotState.__avro_default__ == "UNKNOWN"


@pytest.mark.parametrize("record", RECORDS)
def test_examples_round_trip_through_the_model(record: str) -> None:
    as_dict = example(record)
    model = models.RECORD_MODELS[record].model_validate(as_dict)
    assert model.model_dump(mode="json") == as_dict
    assert isinstance(as_dict["occurred_at"], int)


def test_model_defaults_and_validation() -> None:
    telemetry = models.RobotTelemetry(
        tenant_id="t",
        site_id="s",
        robot_id="r",
        fleet_id="f",
        seq=1,
        pose=models.Pose(x=0, y=0),
        battery=0.5,
        mode="IDLE",
    )
    assert uuid7_time_ms(telemetry.event_id) > 0
    assert telemetry.mode is models.TelemetryMode.IDLE
    assert telemetry.route == [] and telemetry.task_phase is models.TaskPhase.NONE
    with pytest.raises(ValidationError):
        models.RobotTelemetry.model_validate({**telemetry.model_dump(), "unexpected": 1})
    with pytest.raises(ValidationError):
        models.RobotTelemetry.model_validate({**telemetry.model_dump(), "mode": "FLYING"})
    assert example_model("AuditEvent").site_id is None
