"""Offline schema-evolution gate: Avro schema resolution rules, applied FULL_TRANSITIVE.

A new schema is FULL compatible with an old one when each can read what the other wrote (Avro spec,
"Schema Resolution"): new reader / old writer (BACKWARD) and old reader / new writer (FORWARD).
FULL_TRANSITIVE asks that of every earlier version kept in ``schemas/avro/history/<Record>/v<N>.avsc``.

Rules checked, with the names used in messages:

- ``field-added-without-default``: the reader has a field the writer lacks, with no default.
  (BACKWARD: a field was added without default; FORWARD: a field was removed that had no default.)
- ``field-removed-without-default``: the FORWARD view of the same problem: the new writer no longer
  writes a field the old reader needs and has no default for.
- ``type-changed``: writer type not readable as the reader type (promotions allowed:
  int→long/float/double, long→float/double, float→double, string↔bytes).
- ``enum-symbol-unknown``: the writer may write a symbol the reader lacks and the reader enum has no
  ``default`` (removing a symbol, or adding one when old readers have no default).
- ``name-changed``: record, enum or fixed full names differ.
- ``fixed-size-changed``: fixed sizes differ.
- ``union-branch-unreadable``: a writer union branch matches no reader branch.
- ``invalid-default``: a default that does not match its field's type (first union branch).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.avsc import AVRO_DIR, history, load_schema, record_names

__all__ = [
    "Incompatibility",
    "check_all",
    "check_pair",
    "check_record",
    "default_problems",
    "reader_problems",
]

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = {"record", "error", "enum", "fixed"}


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """One broken rule between two versions of a record."""

    record: str
    against: str  # e.g. "v1"
    direction: str  # "BACKWARD (new reads old)" or "FORWARD (old reads new)"
    path: str  # e.g. "RobotTelemetry.pose.heading"
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{self.record} vs {self.against} [{self.direction}] {self.path}: {self.rule}: {self.detail}"


# ----------------------------------------------------------------------------------- name handling


class _Names:
    """Named types of one schema by full name, so references can be followed."""

    def __init__(self, schema: Any) -> None:
        self.types: dict[str, dict[str, Any]] = {}
        self._collect(schema, "")

    @staticmethod
    def fullname(node: dict[str, Any], namespace: str) -> str:
        name = str(node["name"])
        if "." in name:
            return name
        ns = node.get("namespace", namespace)
        return f"{ns}.{name}" if ns else name

    def _collect(self, node: Any, namespace: str) -> None:
        if isinstance(node, list):
            for branch in node:
                self._collect(branch, namespace)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in _NAMED:
                full = self.fullname(node, namespace)
                self.types[full] = node
                inner_ns = full.rpartition(".")[0]
                for f in node.get("fields", ()):
                    self._collect(f["type"], inner_ns)
            elif kind == "array":
                self._collect(node["items"], namespace)
            elif kind == "map":
                self._collect(node["values"], namespace)
            elif isinstance(kind, dict | list):
                self._collect(kind, namespace)

    def resolve(self, node: Any, namespace: str) -> tuple[Any, str]:
        """Follow a name reference; unwrap ``{"type": "long", "logicalType": ...}``. Returns (node, ns)."""
        while True:
            if isinstance(node, str):
                if node in PRIMITIVES:
                    return node, namespace
                full = node if "." in node else (f"{namespace}.{node}" if namespace else node)
                target = self.types.get(full) or self.types.get(node)
                if target is None:
                    raise ValueError(f"unknown type name {node!r}")
                return target, full.rpartition(".")[0]
            if isinstance(node, dict) and node.get("type") not in _NAMED | {"array", "map"}:
                node = node["type"]  # primitive with attributes, e.g. a logical type
                continue
            if isinstance(node, dict) and node.get("type") in _NAMED:
                return node, self.fullname(node, namespace).rpartition(".")[0]
            return node, namespace


def _kind(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "union"
    return str(node["type"])


def _describe(node: Any, names: _Names, ns: str) -> str:
    kind = _kind(node)
    if kind in _NAMED:
        return f"{kind} {names.fullname(node, ns)}"
    if kind == "array":
        return "array"
    if kind == "map":
        return "map"
    if kind == "union":
        return "union"
    return kind


# ------------------------------------------------------------------------------ resolution checker


class _Checker:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.rnames = _Names(reader)
        self.wnames = _Names(writer)
        self.problems: list[tuple[str, str, str]] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, path: str, rule: str, detail: str) -> None:
        self.problems.append((path, rule, detail))

    def readable(self, r: Any, w: Any, rns: str, wns: str) -> bool:
        """Whether ``w`` can be read as ``r`` (silent; used to pick union branches)."""
        sub = _Checker.__new__(_Checker)
        sub.rnames, sub.wnames, sub.problems, sub._seen = self.rnames, self.wnames, [], set(self._seen)
        sub.check(r, w, rns, wns, "")
        return not sub.problems

    def check(self, r: Any, w: Any, rns: str, wns: str, path: str) -> None:
        r, rns = self.rnames.resolve(r, rns)
        w, wns = self.wnames.resolve(w, wns)
        rk, wk = _kind(r), _kind(w)

        if wk == "union":
            for branch in w:
                b, bns = self.wnames.resolve(branch, wns)
                if rk == "union":
                    if not any(self.readable(rb, b, rns, bns) for rb in r):
                        self.add(
                            path,
                            "union-branch-unreadable",
                            f"writer branch {_describe(b, self.wnames, bns)} matches no reader branch",
                        )
                else:
                    self.check(r, b, rns, bns, path)
            return
        if rk == "union":
            # first reader branch that can read the writer; report the closest mismatch otherwise
            for rb in r:
                if self.readable(rb, w, rns, wns):
                    return
            same_kind = [rb for rb in r if _kind(self.rnames.resolve(rb, rns)[0]) == wk]
            if same_kind:
                self.check(same_kind[0], w, rns, wns, path)
            else:
                self.add(
                    path,
                    "type-changed",
                    f"writer type {_describe(w, self.wnames, wns)} is not in reader union "
                    f"[{', '.join(_describe(self.rnames.resolve(b, rns)[0], self.rnames, rns) for b in r)}]",
                )
            return

        if rk in PRIMITIVES or wk in PRIMITIVES:
            if rk != wk and rk not in _PROMOTIONS.get(wk, set()):
                self.add(
                    path,
                    "type-changed",
                    f"writer type {_describe(w, self.wnames, wns)} cannot be read as {_describe(r, self.rnames, rns)}",
                )
            return
        if rk != wk:
            self.add(
                path,
                "type-changed",
                f"writer type {_describe(w, self.wnames, wns)} cannot be read as {_describe(r, self.rnames, rns)}",
            )
            return
        if rk == "array":
            self.check(r["items"], w["items"], rns, wns, f"{path}[]")
        elif rk == "map":
            self.check(r["values"], w["values"], rns, wns, f"{path}{{}}")
        elif rk in ("record", "error"):
            self._record(r, w, rns, wns, path)
        elif rk == "enum":
            self._enum(r, w, rns, wns, path)
        elif rk == "fixed":
            if not self._same_name(r, w, rns, wns, path):
                return
            if r.get("size") != w.get("size"):
                self.add(
                    path, "fixed-size-changed", f"writer size {w.get('size')}, reader size {r.get('size')}"
                )

    def _same_name(self, r: dict[str, Any], w: dict[str, Any], rns: str, wns: str, path: str) -> bool:
        rfull = self.rnames.fullname(r, rns)
        wfull = self.wnames.fullname(w, wns)
        aliases = {a if "." in a else f"{rfull.rpartition('.')[0]}.{a}" for a in r.get("aliases", ())}
        if rfull == wfull or wfull in aliases or r["name"].split(".")[-1] == w["name"].split(".")[-1]:
            return True
        self.add(path, "name-changed", f"writer {_kind(w)} {wfull} is not reader {rfull} (nor an alias)")
        return False

    def _record(self, r: dict[str, Any], w: dict[str, Any], rns: str, wns: str, path: str) -> None:
        rfull = self.rnames.fullname(r, rns)
        key = (rfull, self.wnames.fullname(w, wns))
        if key in self._seen:  # recursive types: already being checked
            return
        self._seen.add(key)
        if not self._same_name(r, w, rns, wns, path):
            return
        base = path or rfull.rpartition(".")[2]
        wfields = {f["name"]: f for f in w.get("fields", ())}
        for rf in r.get("fields", ()):
            fpath = f"{base}.{rf['name']}"
            names = [rf["name"], *rf.get("aliases", ())]
            wf = next((wfields[n] for n in names if n in wfields), None)
            if wf is not None:
                self.check(rf["type"], wf["type"], rns, wns, fpath)
            elif "default" not in rf:
                self.add(
                    fpath,
                    "field-added-without-default",
                    "the reader needs this field, the writer does not write it, and it has no default",
                )

    def _enum(self, r: dict[str, Any], w: dict[str, Any], rns: str, wns: str, path: str) -> None:
        if not self._same_name(r, w, rns, wns, path):
            return
        missing = [s for s in w.get("symbols", ()) if s not in r.get("symbols", ())]
        if missing and "default" not in r:
            self.add(
                path or self.rnames.fullname(r, rns),
                "enum-symbol-unknown",
                f"writer symbols {missing} are unknown to reader enum {self.rnames.fullname(r, rns)}, "
                "which has no default symbol",
            )


def reader_problems(reader: Any, writer: Any) -> list[tuple[str, str, str]]:
    """Problems reading data written with ``writer`` using ``reader``: ``(path, rule, detail)``."""
    checker = _Checker(reader, writer)
    top = reader.get("name", "") if isinstance(reader, dict) else ""
    checker.check(reader, writer, "", "", str(top).rpartition(".")[2])
    return checker.problems


# ------------------------------------------------------------------------------------ default check


def _default_matches(schema: Any, value: Any, names: _Names, ns: str) -> bool:
    node, ns = names.resolve(schema, ns)
    kind = _kind(node)
    if kind == "union":
        return _default_matches(node[0], value, names, ns)
    checks: dict[str, Any] = {
        "null": lambda v: v is None,
        "boolean": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
        "long": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63,
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "bytes": lambda v: isinstance(v, str),
        "string": lambda v: isinstance(v, str),
        "fixed": lambda v: isinstance(v, str),
        "enum": lambda v: v in node.get("symbols", ()),
    }
    if kind in checks:
        return bool(checks[kind](value))
    if kind == "array":
        return isinstance(value, list) and all(_default_matches(node["items"], v, names, ns) for v in value)
    if kind == "map":
        return isinstance(value, dict) and all(
            _default_matches(node["values"], v, names, ns) for v in value.values()
        )
    if kind in ("record", "error"):
        if not isinstance(value, dict):
            return False
        inner = names.fullname(node, ns).rpartition(".")[0]
        return all(
            (f["name"] in value and _default_matches(f["type"], value[f["name"]], names, inner))
            or (f["name"] not in value and "default" in f)
            for f in node.get("fields", ())
        )
    return False


def default_problems(schema: Any) -> list[tuple[str, str, str]]:
    """Field and enum defaults that do not fit their type."""
    names = _Names(schema)
    out: list[tuple[str, str, str]] = []
    for full, node in names.types.items():
        ns = full.rpartition(".")[0]
        short = full.rpartition(".")[2]
        if node["type"] == "enum" and "default" in node and node["default"] not in node.get("symbols", ()):
            out.append((short, "invalid-default", f"enum default {node['default']!r} is not a symbol"))
        for f in node.get("fields", ()):
            if "default" in f and not _default_matches(f["type"], f["default"], names, ns):
                out.append(
                    (
                        f"{short}.{f['name']}",
                        "invalid-default",
                        f"default {f['default']!r} does not match the field type (first union branch)",
                    )
                )
    return out


# ------------------------------------------------------------------------------------------ the gate

BACKWARD = "BACKWARD (new reads old)"
FORWARD = "FORWARD (old reads new)"


def check_pair(record: str, new: Any, old: Any, against: str, level: str = "FULL") -> list[Incompatibility]:
    """Problems between ``new`` and one earlier version ``old`` under BACKWARD, FORWARD or FULL."""
    out: list[Incompatibility] = []
    if level in ("BACKWARD", "FULL"):
        for path, rule, detail in reader_problems(new, old):
            out.append(Incompatibility(record, against, BACKWARD, path, rule, detail))
    if level in ("FORWARD", "FULL"):
        for path, rule, detail in reader_problems(old, new):
            if rule == "field-added-without-default":
                rule = "field-removed-without-default"
                detail = "the new writer no longer writes it and old readers have no default for it"
            out.append(Incompatibility(record, against, FORWARD, path, rule, detail))
    return out


def check_record(
    record: str,
    current: Any | None = None,
    earlier: Iterable[tuple[int, Any]] | None = None,
    directory: Path = AVRO_DIR,
) -> list[Incompatibility]:
    """FULL_TRANSITIVE check of ``record``'s current schema against every earlier version."""
    current = load_schema(record, directory) if current is None else current
    earlier = history(record, directory) if earlier is None else earlier
    out = [Incompatibility(record, "itself", "DEFAULTS", *p) for p in default_problems(current)]
    for version, old in earlier:
        out.extend(check_pair(record, current, old, f"v{version}"))
    return out


def check_all(
    records: Iterable[str] | None = None, directory: Path = AVRO_DIR
) -> dict[str, list[Incompatibility]]:
    """:func:`check_record` for every record (default: every ``.avsc``); maps record -> problems."""
    names = records or record_names(directory)
    return {name: check_record(name, directory=directory) for name in names}
