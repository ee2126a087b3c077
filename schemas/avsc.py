"""Loading the ``.avsc`` files and preparing schemas for fastavro."""

from __future__ import annotations

import copy
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from fastavro import parse_schema

__all__ = [
    "AVRO_DIR",
    "HISTORY_DIR",
    "history",
    "load_schema",
    "parse_plain",
    "record_names",
    "strip_logical_types",
]

AVRO_DIR = Path(__file__).parent / "avro"
HISTORY_DIR = AVRO_DIR / "history"
_VERSION_FILE = re.compile(r"^v(\d+)\.avsc$")
# Logical types fastavro would turn into Python objects; we keep the underlying int/str/bytes.
_STRIPPED_LOGICAL_TYPES = {
    "timestamp-millis",
    "timestamp-micros",
    "local-timestamp-millis",
    "local-timestamp-micros",
    "time-millis",
    "time-micros",
    "date",
    "uuid",
}


def record_names(directory: Path = AVRO_DIR) -> list[str]:
    """Names of every current record (one ``<Name>.avsc`` per record)."""
    return sorted(p.stem for p in Path(directory).glob("*.avsc"))


@cache
def _load_text(path: Path) -> str:
    return path.read_text()


def load_schema(record: str, directory: Path = AVRO_DIR) -> dict[str, Any]:
    """The current schema of ``record`` (e.g. ``"RobotTelemetry"``) as a fresh dict."""
    path = Path(directory) / f"{record}.avsc"
    if not path.is_file():
        raise KeyError(f"no schema {record!r}; known: {', '.join(record_names(directory))}")
    if Path(directory) == AVRO_DIR:
        return json.loads(_load_text(path))
    return json.loads(path.read_text())


def history(record: str, directory: Path = AVRO_DIR) -> list[tuple[int, dict[str, Any]]]:
    """Earlier versions of ``record`` kept in ``history/<Record>/v<N>.avsc``, oldest first."""
    folder = Path(directory) / "history" / record
    versions = []
    for path in folder.glob("v*.avsc") if folder.is_dir() else ():
        match = _VERSION_FILE.match(path.name)
        if match:
            versions.append((int(match.group(1)), json.loads(path.read_text())))
    return sorted(versions, key=lambda v: v[0])


def strip_logical_types(schema: Any) -> Any:
    """A deep copy of ``schema`` without the logical types fastavro would convert to Python objects.

    Timestamps then decode as plain ``int`` epoch milliseconds, as docs/records.md promises, and
    encoding skips the datetime checks. The binary encoding is the same.
    """
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if node.get("logicalType") in _STRIPPED_LOGICAL_TYPES:
                node = {k: v for k, v in node.items() if k != "logicalType"}
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def parse_plain(schema: str | dict[str, Any] | list[Any]) -> Any:
    """fastavro-parsed schema with logical types stripped (timestamps stay ``int``)."""
    raw = json.loads(schema) if isinstance(schema, str) else schema
    return parse_schema(strip_logical_types(raw))
