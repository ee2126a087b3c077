"""Schema evolution against the real registry: a compatible v2 in both directions, incompatible
changes refused by the offline gate AND by the registry under FULL_TRANSITIVE."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from schemas.avsc import load_schema
from schemas.codec import AvroCodec
from schemas.compat import check_record
from schemas.errors import RegistryError
from schemas.examples import example
from schemas.registry import RegistryClient

V1 = load_schema("RobotTelemetry")


def _v2() -> dict[str, Any]:
    v2 = copy.deepcopy(V1)
    v2["fields"].append(
        {
            "name": "firmware_version",
            "type": ["null", "string"],
            "doc": "Firmware the robot runs (added in v2).",
            "default": None,
        }
    )
    return v2


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _changed(change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    schema = copy.deepcopy(V1)
    change(schema)
    return schema


def test_v2_with_optional_field_is_accepted_and_readable_both_ways(
    registry: RegistryClient, subject: str
) -> None:
    registry.set_compatibility("FULL_TRANSITIVE", subject)
    v1_producer = AvroCodec(registry, subject, V1)
    v1_id = v1_producer.prepare()

    assert check_record("RobotTelemetry", _v2(), [(1, V1)]) == []
    assert registry.check_compatibility(subject, _v2()) == (True, [])
    v2_producer = AvroCodec(registry, subject, _v2())
    v2_id = v2_producer.prepare()
    assert v2_id != v1_id
    assert registry.versions(subject) == [1, 2]

    # separate clients for consumers: they learn the writer schema from the id in each message
    v1_consumer = AvroCodec(RegistryClient(registry.url), subject, V1)
    v2_consumer = AvroCodec(RegistryClient(registry.url), subject, _v2())
    old = example("RobotTelemetry")
    new = {**example("RobotTelemetry"), "firmware_version": "2.4.1"}

    # v1 producer -> v2 consumer: the new field takes its default
    assert v2_consumer.decode(v1_producer.encode(old)) == {**old, "firmware_version": None}
    # v2 producer -> v1 consumer: the new field is skipped
    decoded = v1_consumer.decode(v2_producer.encode(new))
    assert decoded == old | {"event_id": new["event_id"]}
    assert "firmware_version" not in decoded
    # and each side still reads its own
    assert v2_consumer.decode(v2_producer.encode(new)) == new
    assert v1_consumer.decode(v1_producer.encode(old)) == old


INCOMPATIBLE = {
    "new field without default": (
        lambda s: s["fields"].append({"name": "firmware_version", "type": "string", "doc": "x"}),
        "RobotTelemetry.firmware_version",
        "field-added-without-default",
    ),
    "type change": (
        lambda s: _field(s, "battery").__setitem__("type", "string"),
        "RobotTelemetry.battery",
        "type-changed",
    ),
    "enum symbol removed without default": (
        lambda s: (
            _field(s, "mode")["type"]["symbols"].remove("ERROR"),
            _field(s, "mode")["type"].pop("default"),
        ),
        "RobotTelemetry.mode",
        "enum-symbol-unknown",
    ),
    "required field removed": (
        lambda s: s["fields"].remove(_field(s, "fleet_id")),
        "RobotTelemetry.fleet_id",
        "field-removed-without-default",
    ),
}


@pytest.mark.parametrize("case", list(INCOMPATIBLE))
def test_incompatible_change_refused_by_gate_and_registry(
    registry: RegistryClient, subject: str, case: str
) -> None:
    change, path, rule = INCOMPATIBLE[case]
    broken = _changed(change)

    # the offline gate names record, field and rule
    problems = check_record("RobotTelemetry", broken, [(1, V1)])
    assert any(p.path == path and p.rule == rule for p in problems), [str(p) for p in problems]

    # the registry refuses it too once the subject is FULL_TRANSITIVE
    registry.set_compatibility("FULL_TRANSITIVE", subject)
    registry.register(subject, V1)
    compatible, _messages = registry.check_compatibility(subject, broken)
    assert compatible is False
    with pytest.raises(RegistryError) as info:
        registry.register(subject, broken)
    assert info.value.status_code == 409
    assert "Incompatible" in str(info.value) or "incompatible" in str(info.value)
    print(f"registry refused {case!r}: {info.value}")  # the reason, visible with -s
    assert registry.versions(subject) == [1]


COMPATIBLE = {
    "optional field added": lambda s: s["fields"].append(
        {"name": "firmware_version", "type": ["null", "string"], "default": None, "doc": "x"}
    ),
    "field with default removed": lambda s: s["fields"].remove(_field(s, "speed")),
    "enum symbol added (enum has default)": lambda s: _field(s, "mode")["type"]["symbols"].append("DOCKING"),
    "enum symbol removed (enum has default)": lambda s: _field(s, "mode")["type"]["symbols"].remove("ERROR"),
    "optional field added to nested record": lambda s: _field(s, "pose")["type"]["fields"].append(
        {"name": "z", "type": ["null", "double"], "default": None, "doc": "height"}
    ),
}


@pytest.mark.parametrize("case", list(COMPATIBLE))
def test_gate_and_registry_agree_on_compatible_changes(
    registry: RegistryClient, subject: str, case: str
) -> None:
    evolved = _changed(COMPATIBLE[case])
    assert check_record("RobotTelemetry", evolved, [(1, V1)]) == []
    registry.set_compatibility("FULL_TRANSITIVE", subject)
    registry.register(subject, V1)
    assert registry.check_compatibility(subject, evolved)[0] is True
    registry.register(subject, evolved)
    assert registry.versions(subject) == [1, 2]
