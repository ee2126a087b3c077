"""What a table of the Postgres sink is: one mapping from its columns to the record, and its SQL.

A :class:`Table` maps every column it writes to where the value comes from (a record :class:`Column`:
a field and, where needed, a conversion); rows are built from that mapping and nothing else, so the
column order exists in one place. Its ``sql`` is the statement, as text, that moves a batch from its
staging table into the table (``sinks.postgres.tables`` defines them all).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import orjson

__all__ = [
    "MAX_MS",
    "MIN_MS",
    "Column",
    "MissingValue",
    "Row",
    "Table",
    "col",
    "epoch_ms",
    "jsonb",
    "or_default",
    "spec_category",
    "spec_depends_on",
    "spec_priority",
    "text",
    "text_list",
    "ts",
]

Row = tuple[Any, ...]


# ------------------------------------------------------------------------------------------ values
#: The epoch-ms times a row may hold: years 1..9999 (what Python's datetime, used by COPY, can hold).
MIN_MS = -62_135_596_800_000
MAX_MS = 253_402_300_799_999


def epoch_ms(value: int) -> datetime:
    """Epoch milliseconds as an aware datetime (what ``to_timestamp(value / 1000.0)`` gives)."""
    return datetime.fromtimestamp(value / 1000, UTC)


def _text(value: Any) -> Any:
    """Text without NUL characters (Postgres text refuses them)."""
    return value.replace("\x00", "") if isinstance(value, str) and "\x00" in value else value


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode().replace("\\u0000", "")


def _json_list(value: Any) -> str:
    return orjson.dumps(value or []).decode().replace("\\u0000", "")


def text_list(value: Any) -> list[Any]:
    """A list of texts without NUL characters (``[]`` for null)."""
    return [_text(v) for v in value or []]


def spec_category(spec: Any) -> Any:
    """A TaskSpec's category (null without a spec)."""
    return spec["category"] if spec else None


def spec_priority(spec: Any) -> Any:
    """A TaskSpec's priority (null without a spec)."""
    return spec.get("priority") if spec else None


def spec_depends_on(spec: Any) -> list[str] | None:
    """A TaskSpec's dependencies (null without a spec)."""
    return list(spec.get("depends_on") or []) if spec else None


def or_default(default: Any) -> Callable[[Any], Any]:
    """A conversion giving ``default`` for null."""

    def value_or_default(value: Any) -> Any:
        return default if value is None else value

    return value_or_default


@dataclass(frozen=True, slots=True)
class Column:
    """Where one column's value comes from: record ``field``, through ``convert`` (applied to None too).

    ``required``: the column is NOT NULL (or an id): a record without a value for it is refused.
    ``time``: the field is epoch ms and the column a ``timestamptz`` (staged as ``bigint``).
    """

    field: str
    convert: Callable[[Any], Any] | None = None
    required: bool = False
    time: bool = False


def col(name: str, *, required: bool = False) -> Column:
    """Record field ``name`` as it is."""
    return Column(name, None, required)


def text(name: str, *, required: bool = False) -> Column:
    """Text field ``name`` without NUL characters."""
    return Column(name, _text, required)


def ts(name: str, *, required: bool = False) -> Column:
    """Epoch-ms field ``name`` as a timestamptz."""
    return Column(name, None, required, time=True)


def jsonb(name: str, *, default_list: bool = False) -> Column:
    """Field ``name`` as JSON text (``[]`` for null when ``default_list``)."""
    return Column(name, _json_list if default_list else _json)


@dataclass(frozen=True)
class Table:
    """One write target: ``name`` names the writer and its staging table; ``table`` is the Postgres table."""

    name: str
    table: str
    columns: Mapping[str, Column]
    sql: str
    key: tuple[str, ...] = ()
    newest: tuple[str, ...] = ()  # per key, keep the row with the largest (newest)...
    keep_oldest: bool = False  # ...or the smallest
    sticky: tuple[str, ...] = ()  # filled from an older row of the batch when the newest has None
    names: tuple[str, ...] = field(init=False)
    index: dict[str, int] = field(init=False, compare=False)
    _build: Callable[[Mapping[str, Any]], Row] = field(init=False, compare=False, repr=False)
    times: tuple[int, ...] = field(init=False, compare=False)
    _required: Callable[[Row], tuple[Any, ...]] | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(self.columns)
        unknown = {*self.key, *self.newest, *self.sticky} - set(names)
        if unknown:
            raise ValueError(f"{self.name}: {sorted(unknown)} are not columns")
        setattr_ = object.__setattr__
        setattr_(self, "names", names)
        setattr_(self, "index", {n: i for i, n in enumerate(names)})
        setattr_(self, "_build", self._compile())
        setattr_(self, "times", tuple(i for i, c in enumerate(self.columns.values()) if c.time))
        required = [i for i, c in enumerate(self.columns.values()) if c.required]
        setattr_(self, "_required", itemgetter(*required, required[0]) if required else None)

    @property
    def insert_only(self) -> bool:
        """An event table: rows are facts, never updated (they are COPYed straight in when new)."""
        return not self.key

    def _compile(self) -> Callable[[Mapping[str, Any]], Row]:
        """The builder of this table's rows, generated from ``columns`` as ``dataclasses`` generates
        ``__init__``: one tuple expression, an item per column in the mapping's order, each the record
        field through its conversion. It runs once per record, so it is as fast as a hand-written one."""
        namespace: dict[str, Any] = {}
        items = []
        for i, column in enumerate(self.columns.values()):
            item = f"record[{column.field!r}]"
            if column.convert is not None:
                namespace[f"convert_{i}"] = column.convert
                item = f"convert_{i}({item})"
            items.append(item)
        exec(f"def build_row(record):\n    return ({', '.join(items)},)\n", namespace)
        build: Callable[[Mapping[str, Any]], Row] = namespace["build_row"]
        return build

    def row(self, record: Mapping[str, Any]) -> Row:
        """The row of ``record`` (times stay epoch ms).

        :raises KeyError: a field of the mapping is missing from the record.
        :raises MissingValue: a required column would be null or empty.
        :raises ValueError: naming the column whose value cannot be converted, or whose time lies
            outside years 1..9999.
        """
        try:
            values = self._build(record)
        except KeyError:
            raise
        except Exception:  # find the column and say which (the slow way, once)
            self._explain(record)
            raise
        for i in self.times:
            at = values[i]
            if at is not None and not MIN_MS <= at <= MAX_MS:
                raise ValueError(f"{self.names[i]} = {at!r} is not a time in years 1..9999")
        if self._required is not None:
            required = self._required(values)
            if None in required or "" in required:
                raise MissingValue(
                    next(
                        n
                        for n, c in self.columns.items()
                        if c.required and values[self.index[n]] in (None, "")
                    )
                )
        return values

    def _explain(self, record: Mapping[str, Any]) -> None:
        """Raise ValueError naming the first column whose conversion fails for ``record``."""
        for name, column in self.columns.items():
            if column.convert is not None:
                try:
                    column.convert(record[column.field])
                except (ValueError, OverflowError, TypeError, AttributeError) as exc:
                    raise ValueError(f"{name} = {record[column.field]!r}: {exc}") from exc


class MissingValue(ValueError):
    """A row would leave a required column null or empty (``column`` names it)."""

    def __init__(self, column: str) -> None:
        super().__init__(f"no {column}")
        self.column = column
