"""Derive Avro schemas from the pydantic models, so models and ``.avsc`` files cannot drift.

``avro_schema(RobotTelemetry)`` returns the schema as a dict, with every named type defined inline at
its first use and referenced by full name afterwards (each schema is self-contained). The unit tests
compare it with ``schemas/avro/<Record>.avsc`` and fail on any difference; after changing a model run
``python -m schemas.avrogen`` to rewrite the files (and keep the previous version under
``schemas/avro/history/``).
"""

from __future__ import annotations

import json
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from schemas.avrotypes import AvroType

__all__ = ["NAMESPACE", "avro_schema", "drift", "render", "write_all"]

NAMESPACE = "io.fleetstream"
_PRIMITIVES: dict[Any, str] = {str: "string", int: "int", float: "double", bool: "boolean", bytes: "bytes"}


class _Builder:
    def __init__(self) -> None:
        self.defined: set[str] = set()

    def record(self, model: type[BaseModel]) -> Any:
        name = model.__name__
        if name in self.defined:
            return f"{NAMESPACE}.{name}"
        self.defined.add(name)
        fields = [self.field(fname, info) for fname, info in model.model_fields.items()]
        doc = (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""
        if not doc:
            raise TypeError(f"{name} needs a docstring: it becomes the Avro record doc")
        return {"type": "record", "name": name, "namespace": NAMESPACE, "doc": doc, "fields": fields}

    def enum(self, enum: type[Enum]) -> Any:
        name = enum.__name__
        if name in self.defined:
            return f"{NAMESPACE}.{name}"
        self.defined.add(name)
        symbols = [m.value for m in enum]
        default = getattr(enum, "__avro_default__", None)
        if default not in symbols:
            raise TypeError(f"enum {name}: default symbol {default!r} is not one of {symbols}")
        return {
            "type": "enum",
            "name": name,
            "namespace": NAMESPACE,
            "doc": (enum.__doc__ or name).strip().splitlines()[0],
            "symbols": symbols,
            "default": default,
        }

    def field(self, name: str, info: FieldInfo) -> dict[str, Any]:
        if not info.description:
            raise TypeError(f"field {name} needs a description: it becomes the Avro doc")
        avro_type = self.type(info.annotation, info.metadata)
        out: dict[str, Any] = {"name": name, "type": avro_type, "doc": info.description}
        if info.default is not PydanticUndefined:
            out["default"] = _avro_default(info.default)
        elif info.default_factory in (list, dict):
            out["default"] = info.default_factory()
        return out

    def type(self, annotation: Any, metadata: list[Any] | None = None) -> Any:
        for meta in metadata or ():
            if isinstance(meta, AvroType):
                return meta.avro
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            base, *extra = typing.get_args(annotation)
            return self.type(base, list(extra))
        if origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1 or len(typing.get_args(annotation)) != 2:
                raise TypeError(f"only Optional[T] unions are supported, got {annotation}")
            return ["null", self.type(args[0])]
        if origin is list:
            (item,) = typing.get_args(annotation)
            return {"type": "array", "items": self.type(item)}
        if origin is dict:
            key, value = typing.get_args(annotation)
            if key is not str:
                raise TypeError("Avro maps have string keys")
            return {"type": "map", "values": self.type(value)}
        if isinstance(annotation, type) and issubclass(annotation, Enum):
            return self.enum(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return self.record(annotation)
        if annotation in _PRIMITIVES:
            return _PRIMITIVES[annotation]
        raise TypeError(f"no Avro mapping for {annotation!r}")


def _avro_default(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return value


def avro_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The Avro schema of a record model, as a dict (self-contained, named types inlined once)."""
    schema = _Builder().record(model)
    assert isinstance(schema, dict)
    return schema


def render(schema: dict[str, Any]) -> str:
    """The canonical text of an ``.avsc`` file (2-space JSON, trailing newline)."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_all(directory: Path | None = None) -> list[Path]:
    """Write ``<Record>.avsc`` for every record model; returns the files that changed."""
    from schemas.models import RECORD_MODELS

    directory = directory or Path(__file__).parent / "avro"
    changed = []
    for name, model in RECORD_MODELS.items():
        path = directory / f"{name}.avsc"
        text = render(avro_schema(model))
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


def drift(directory: Path | None = None) -> list[str]:
    """Differences between the models and the ``.avsc`` files, one line each ([] when in sync)."""
    from schemas.models import RECORD_MODELS

    directory = directory or Path(__file__).parent / "avro"
    problems = []
    files = {p.stem for p in directory.glob("*.avsc")}
    for name in sorted(files - RECORD_MODELS.keys()):
        problems.append(f"{name}.avsc has no model in schemas.models")
    for name, model in RECORD_MODELS.items():
        path = directory / f"{name}.avsc"
        if not path.is_file():
            problems.append(f"model {name} has no {path.name}")
            continue
        expected = avro_schema(model)
        actual = json.loads(path.read_text())
        if actual != expected:
            problems.extend(f"{name}: {d}" for d in _differences(expected, actual, name))
    return problems


def _named_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and "name" in v for v in value)


def _differences(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in expected.keys() | actual.keys():
            if key not in actual:
                out.append(f"{path}.{key}: in the model, missing from the .avsc")
            elif key not in expected:
                out.append(f"{path}.{key}: in the .avsc, not in the model")
            else:
                out.extend(_differences(expected[key], actual[key], f"{path}.{key}"))
        return out
    if _named_list(expected) and _named_list(actual):  # record fields: compare by name, then order
        exp = {e["name"]: e for e in expected}
        act = {a["name"]: a for a in actual}
        out = [f"{path}[{n}]: in the model, missing from the .avsc" for n in exp if n not in act]
        out += [f"{path}[{n}]: in the .avsc, not in the model" for n in act if n not in exp]
        for name in exp.keys() & act.keys():
            out.extend(_differences(exp[name], act[name], f"{path}[{name}]"))
        if not out and list(exp) != list(act):
            out.append(f"{path}: field order differs (model: {list(exp)})")
        return out
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            label = e.get("name", i) if isinstance(e, dict) else i
            out.extend(_differences(e, a, f"{path}[{label}]"))
        return out
    if expected != actual:
        return [f"{path}: model says {json.dumps(expected)[:200]}, .avsc says {json.dumps(actual)[:200]}"]
    return []


if __name__ == "__main__":
    for changed_path in write_all():
        sys.stdout.write(f"wrote {changed_path}\n")
