"""The typed dicts of ``schemas.records`` match the Avro contract field by field (names, Python types,
nullability, nested records), and the task-state sets match the TaskState enum."""

from __future__ import annotations

import types
import typing
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

from schemas import records
from schemas.avsc import load_schema, record_names
from schemas.models import TaskState

_PRIMITIVES = {
    "string": str,
    "long": int,
    "int": int,
    "double": float,
    "float": float,
    "boolean": bool,
    "bytes": bytes,
}


def _named_types(schema: dict[str, Any]) -> dict[str, Any]:
    """Every named type (record, enum) defined anywhere in ``schema``, by name."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("record", "enum") and "name" in node:
                found[node["name"]] = node
                found[f"{node.get('namespace', 'io.fleetstream')}.{node['name']}"] = node
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


def _check(avro: Any, hint: Any, named: dict[str, Any], where: str) -> None:
    """``hint`` (a Python annotation) is what the codec gives for the Avro type ``avro``."""
    if isinstance(avro, list):  # a union: only [null, T] is used by our records
        assert "null" in avro and len(avro) == 2, f"{where}: unexpected union {avro}"
        assert get_origin(hint) in (Union, types.UnionType), f"{where}: nullable in Avro, not in the dict"
        args = [a for a in get_args(hint) if a is not type(None)]
        assert len(args) == 1 and type(None) in get_args(hint), f"{where}: {hint}"
        _check(next(a for a in avro if a != "null"), args[0], named, where)
        return
    assert get_origin(hint) not in (Union, types.UnionType), f"{where}: nullable in the dict, not in Avro"
    if isinstance(avro, str) and avro in named:
        avro = named[avro]
    if isinstance(avro, str):
        assert hint is _PRIMITIVES[avro], f"{where}: Avro {avro} but {hint}"
        return
    kind = avro["type"]
    if kind in _PRIMITIVES:  # a primitive with a logical type
        assert hint is _PRIMITIVES[kind], f"{where}: Avro {kind} but {hint}"
    elif kind == "enum":
        assert hint is str, f"{where}: an enum is a str, not {hint}"
    elif kind == "array":
        assert get_origin(hint) is list, f"{where}: Avro array but {hint}"
        _check(avro["items"], get_args(hint)[0], named, f"{where}[]")
    elif kind == "map":
        assert get_origin(hint) is dict and get_args(hint)[0] is str, f"{where}: Avro map but {hint}"
        _check(avro["values"], get_args(hint)[1], named, f"{where}{{}}")
    elif kind == "record":
        _check_record(avro, hint, named, where)
    else:  # pragma: no cover - a new Avro construct needs a rule here
        raise AssertionError(f"{where}: no rule for Avro type {kind}")


def _check_record(avro: dict[str, Any], typed: Any, named: dict[str, Any], where: str) -> None:
    assert typing.is_typeddict(typed), f"{where}: {typed} is not a TypedDict"
    hints = get_type_hints(typed)
    fields = {f["name"]: f["type"] for f in avro["fields"]}
    assert list(hints) == list(fields), f"{where}: fields differ (order too): {list(hints)} != {list(fields)}"
    assert typed.__required_keys__ == frozenset(fields), f"{where}: every field is present in decoded records"
    for name, avro_type in fields.items():
        _check(avro_type, hints[name], named, f"{where}.{name}")


@pytest.mark.parametrize("name", sorted(records.RECORD_TYPES))
def test_typed_dict_matches_its_avro_schema(name: str) -> None:
    schema = load_schema(name)
    _check_record(schema, records.RECORD_TYPES[name], _named_types(schema), name)


def test_every_record_a_topology_uses_is_typed() -> None:
    assert set(records.RECORD_TYPES) == set(record_names()) - {"AuditEvent"}  # the gateway's alone


def test_task_state_sets_are_the_enum_symbols() -> None:
    symbols = [s.value for s in TaskState if s.value != "UNKNOWN"]
    assert list(records.TASK_STATES) == symbols
    assert set(symbols) == records.TERMINAL_TASK_STATES | records.ACTIVE_TASK_STATES
    assert records.RUNNING_TASK_STATES <= records.ACTIVE_TASK_STATES


def test_a_new_task_spec_has_every_field_and_is_a_fresh_dict() -> None:
    spec = records.task_spec(category="rmf", labels={"origin": "rmf"})
    assert set(spec) == set(records.TaskSpec.__annotations__)
    assert (spec["category"], spec["priority"], spec["max_attempts"], spec["labels"]) == (
        "rmf",
        5,
        1,
        {"origin": "rmf"},
    )
    other = records.task_spec()
    other["labels"]["x"] = "y"
    assert records.task_spec()["labels"] == {}  # no default shared between specs
