"""The offline FULL_TRANSITIVE gate: Avro resolution rules both ways, and `fleet schemas check`."""

from __future__ import annotations

import argparse
import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipelines.commands.schemas import check as check_command
from schemas.avsc import AVRO_DIR, load_schema
from schemas.compat import check_all, check_record, default_problems, reader_problems

V1 = load_schema("RobotTelemetry")


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _changed(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    schema = copy.deepcopy(V1)
    change(schema)
    return schema


def _add(field: dict[str, Any]) -> Callable[[dict[str, Any]], Any]:
    return lambda s: s["fields"].append({"doc": "added", **field})


def _drop(name: str) -> Callable[[dict[str, Any]], Any]:
    return lambda s: s["fields"].remove(_field(s, name))


def _mode_enum(s: dict[str, Any]) -> dict[str, Any]:
    return _field(s, "mode")["type"]


COMPATIBLE = {
    "optional field added": _add({"name": "firmware", "type": ["null", "string"], "default": None}),
    "field with default added": _add({"name": "load_kg", "type": "double", "default": 0.0}),
    "optional field removed": _drop("error_code"),
    "field with default removed": _drop("speed"),
    "enum symbol added (enum has default)": lambda s: _mode_enum(s)["symbols"].append("DOCKING"),
    "enum symbol removed (enum has default)": lambda s: _mode_enum(s)["symbols"].remove("ERROR"),
    "doc changed": lambda s: _field(s, "battery").__setitem__("doc", "another doc"),
    "optional field added to nested record": lambda s: _field(s, "pose")["type"]["fields"].append(
        {"name": "z", "type": ["null", "double"], "default": None, "doc": "height"}
    ),
}

INCOMPATIBLE = {
    "field added without default": (
        _add({"name": "firmware", "type": "string"}),
        "RobotTelemetry.firmware",
        "field-added-without-default",
    ),
    "required field removed": (_drop("robot_id"), "RobotTelemetry.robot_id", "field-removed-without-default"),
    "type changed": (
        lambda s: _field(s, "battery").__setitem__("type", "string"),
        "RobotTelemetry.battery",
        "type-changed",
    ),
    "type narrowed long to int": (
        lambda s: _field(s, "seq").__setitem__("type", "int"),
        "RobotTelemetry.seq",
        "type-changed",
    ),
    "enum symbol removed without enum default": (
        lambda s: (_mode_enum(s)["symbols"].remove("ERROR"), _mode_enum(s).pop("default")),
        "RobotTelemetry.mode",
        "enum-symbol-unknown",
    ),
    "nested required field added": (
        lambda s: _field(s, "pose")["type"]["fields"].append({"name": "z", "type": "double", "doc": "h"}),
        "RobotTelemetry.pose.z",
        "field-added-without-default",
    ),
    "array item type changed": (
        lambda s: _field(s, "route")["type"]["items"]["fields"][1].__setitem__("type", "string"),
        "RobotTelemetry.route[].eta",
        "type-changed",
    ),
    "optional made required": (
        lambda s: (
            _field(s, "error_code").__setitem__("type", "string"),
            _field(s, "error_code").pop("default"),
        ),
        "RobotTelemetry.error_code",
        "type-changed",
    ),
    "record renamed": (lambda s: s.__setitem__("name", "RobotSample"), "RobotTelemetry", "name-changed"),
}


@pytest.mark.parametrize("change", COMPATIBLE.values(), ids=COMPATIBLE.keys())
def test_compatible_changes_pass(change: Callable[[dict[str, Any]], Any]) -> None:
    assert check_record("RobotTelemetry", _changed(change), [(1, V1)]) == []


@pytest.mark.parametrize(("change", "path", "rule"), INCOMPATIBLE.values(), ids=INCOMPATIBLE.keys())
def test_incompatible_changes_are_named(
    change: Callable[[dict[str, Any]], Any], path: str, rule: str
) -> None:
    problems = check_record("RobotTelemetry", _changed(change), [(1, V1)])
    assert problems, "incompatible change passed the gate"
    assert any(p.path == path and p.rule == rule for p in problems), [str(p) for p in problems]
    assert all(p.record == "RobotTelemetry" and p.against == "v1" for p in problems)
    assert f"{path}: {rule}" in str(problems[0]) or any(f"{path}: {rule}" in str(p) for p in problems)


def test_transitive_checks_every_earlier_version() -> None:
    # a type change is reported against every earlier version that had the old type
    v1 = _changed(_add({"name": "legacy", "type": "string", "default": ""}))
    v2 = _changed(_add({"name": "legacy", "type": "string", "default": "x"}))
    v3 = _changed(_add({"name": "legacy", "type": "int", "default": 0}))
    problems = check_record("RobotTelemetry", v3, [(1, v1), (2, v2)])
    assert {p.against for p in problems} == {"v1", "v2"}
    # dropping a field is compatible with v2 (it had a default) but not with v1 (it had none): refused
    v1_strict = _changed(_add({"name": "legacy", "type": "string"}))
    v2_ok = _changed(_add({"name": "legacy", "type": "string", "default": ""}))
    v3_drop = copy.deepcopy(V1)
    assert check_record("RobotTelemetry", v3_drop, [(2, v2_ok)]) == []
    assert [p.rule for p in check_record("RobotTelemetry", v3_drop, [(1, v1_strict), (2, v2_ok)])] == [
        "field-removed-without-default"
    ]


def test_promotions_are_allowed_one_way() -> None:
    assert reader_problems("long", "int") == []
    assert reader_problems("double", "float") == []
    assert reader_problems("string", "bytes") == []
    assert reader_problems("bytes", "string") == []
    assert [r for _, r, _ in reader_problems("int", "long")] == ["type-changed"]
    assert reader_problems(["null", "long"], "int") == []
    assert [r for _, r, _ in reader_problems("long", ["null", "long"])] == ["type-changed"]


def test_union_branch_unreadable() -> None:
    problems = reader_problems(["null", "string"], ["null", "string", "long"])
    assert [r for _, r, _ in problems] == ["union-branch-unreadable"]


def test_invalid_defaults_are_reported() -> None:
    broken = _changed(lambda s: _field(s, "speed").__setitem__("default", "fast"))
    assert [(p, r) for p, r, _ in default_problems(broken)] == [("RobotTelemetry.speed", "invalid-default")]
    assert default_problems(V1) == []


def test_current_schemas_pass_the_gate() -> None:
    assert {name: [str(p) for p in problems] for name, problems in check_all().items() if problems} == {}


def _args(avro_dir: Path, skip_models: bool = True) -> argparse.Namespace:
    return argparse.Namespace(avro_dir=str(avro_dir), records=[], skip_models=skip_models)


def _workspace(tmp_path: Path) -> Path:
    for path in AVRO_DIR.glob("*.avsc"):
        shutil.copy(path, tmp_path / path.name)
    history = tmp_path / "history" / "RobotTelemetry"
    history.mkdir(parents=True)
    shutil.copy(AVRO_DIR / "RobotTelemetry.avsc", history / "v1.avsc")
    return tmp_path


def test_cli_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert check_command(argparse.Namespace(avro_dir=None, records=[], skip_models=False)) == 0
    assert "13 record(s) compatible" in capsys.readouterr().out


def test_cli_check_accepts_a_compatible_v2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = _workspace(tmp_path)
    v2 = _changed(COMPATIBLE["optional field added"])
    (work / "RobotTelemetry.avsc").write_text(json.dumps(v2))
    assert check_command(_args(work)) == 0
    assert "ok     RobotTelemetry (FULL_TRANSITIVE against v1)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "case", ["field added without default", "type changed", "enum symbol removed without enum default"]
)
def test_cli_check_refuses_incompatible_change(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    change, path, rule = INCOMPATIBLE[case]
    work = _workspace(tmp_path)
    (work / "RobotTelemetry.avsc").write_text(json.dumps(_changed(change)))
    assert check_command(_args(work)) == 1
    err = capsys.readouterr().err
    assert "RobotTelemetry vs v1" in err and f"{path}: {rule}" in err, err


def test_cli_check_reports_model_drift(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = _workspace(tmp_path)
    (work / "RobotTelemetry.avsc").write_text(json.dumps(_changed(COMPATIBLE["optional field added"])))
    assert check_command(_args(work, skip_models=False)) == 1
    assert "DRIFT  RobotTelemetry: RobotTelemetry.fields[firmware]: in the .avsc, not in the model" in (
        capsys.readouterr().err
    )


def test_cli_check_reports_invalid_avro(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = _workspace(tmp_path)
    (work / "Alert.avsc").write_text(
        '{"type": "record", "name": "Alert", "fields": [{"name": "x", "type": "nope"}]}'
    )
    assert check_command(_args(work)) == 1
    assert "FAIL   Alert: not a valid Avro schema" in capsys.readouterr().err
