"""W3C trace context: the ``traceparent`` header every record carries, and the trace of the work in hand.

The wire format is W3C Trace Context level 1 (https://www.w3.org/TR/trace-context/)::

    traceparent: 00-<trace-id: 32 lowercase hex>-<parent-id: 16 lowercase hex>-<flags: 2 hex>

The same value travels as an HTTP request header into the gateway and as a Kafka record header
(key ``traceparent``, value the ASCII bytes) on every record the gateway and the processors produce.
Each hop that handles a record is a span: it keeps the trace id, makes a span id of its own, and puts
``00-<trace-id>-<its span id>-<flags>`` on what it produces. A record without a valid ``traceparent``
starts a new trace at the hop that handles it.

:class:`Trace` is the trace of one unit of work (a consumed record, an HTTP request). It is cheap to
create: the incoming header is parsed and this hop's span id is made only when someone asks (a log
line, a produced record). :func:`activate` / :func:`current` keep it in a ``ContextVar``, so log
formatters and producers find it without it being passed around (asyncio tasks and Quix Streams'
per-message contexts each see their own).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, NamedTuple

__all__ = [
    "TRACEPARENT",
    "Trace",
    "TraceContext",
    "activate",
    "current",
    "current_header",
    "current_trace_id",
    "from_headers",
    "outgoing_headers",
    "parse_traceparent",
    "reset_current",
    "set_current",
    "trace_id_of",
    "trace_ids",
]

TRACEPARENT = "traceparent"

_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
_rand = random.getrandbits  # reseeded in forked children by the random module itself


def _new_trace_id() -> str:
    return f"{_rand(128) or 1:032x}"


def _new_span_id() -> str:
    return f"{_rand(64) or 1:016x}"


class TraceContext(NamedTuple):
    """One span of a trace: the trace id, this span's id and the trace flags (``01``: sampled).

    A named tuple: made once per produced record's span, where a frozen dataclass costs 3x as much.
    """

    trace_id: str
    span_id: str
    flags: str = "01"

    @classmethod
    def new(cls) -> TraceContext:
        """The root span of a new trace (both ids from one draw of random bits: this runs per record)."""
        bits = f"{_rand(192):048x}"
        trace_id, span_id = bits[:32], bits[32:]
        if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:  # pragma: no cover - 2**-64 odds
            return cls(_new_trace_id(), _new_span_id())
        return cls(trace_id, span_id)

    def child(self) -> TraceContext:
        """A new span of the same trace (its parent is this one)."""
        return TraceContext(self.trace_id, _new_span_id(), self.flags)

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"


def parse_traceparent(value: str | bytes | None) -> TraceContext | None:
    """The context of a ``traceparent`` value, or None when it is absent or invalid.

    Follows the W3C rules: lowercase hex only, version ``ff`` and all-zero ids are invalid, version
    ``00`` has exactly four fields, a later version may append fields after a dash.
    """
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            return None
    match = _FORMAT.fullmatch(value.strip(" \t"))
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, flags)


def _header_value(headers: Any) -> Any:
    """The raw ``traceparent`` value of Kafka headers (list of pairs or a mapping), or None."""
    if not headers:
        return None
    if isinstance(headers, Mapping):
        return headers.get(TRACEPARENT)
    for key, value in headers:
        if key == TRACEPARENT:
            return value
    return None


def from_headers(headers: Sequence[tuple[str, Any]] | Mapping[str, Any] | None) -> TraceContext | None:
    """The context carried by Kafka record headers, or None."""
    return parse_traceparent(_header_value(headers))


def trace_id_of(headers: Sequence[tuple[str, Any]] | Mapping[str, Any] | None) -> str | None:
    """The trace id of Kafka record headers (validated), or None."""
    parsed = from_headers(headers)
    return parsed.trace_id if parsed is not None else None


def trace_ids(headers: Iterable[Any], limit: int | None = None) -> list[str]:
    """The distinct trace ids of many records' headers, in first-seen order (at most ``limit``).

    Meant for a sink's per-batch log line: call it only when that line is logged.
    """
    seen: dict[str, None] = {}
    for item in headers:
        parsed = parse_traceparent(_header_value(item))
        if parsed is None:
            continue
        seen[parsed.trace_id] = None
        if limit is not None and len(seen) >= limit:
            break
    return list(seen)


class Trace:
    """The trace of one unit of work: the incoming context (from headers or HTTP) and this hop's span.

    ``value`` and ``topic`` are what a log formatter may add to lines logged while the work is in hand
    (tenant, robot, task ids of the record). Nothing is parsed or generated until it is asked for.
    """

    __slots__ = ("_header", "_headers", "_raw", "_span", "topic", "value")

    def __init__(
        self,
        headers: Sequence[tuple[str, Any]] | Mapping[str, Any] | None = None,
        value: Any = None,
        topic: str | None = None,
        *,
        traceparent: str | bytes | None = None,
    ) -> None:
        # Only references are kept here: this runs once per consumed record.
        self._headers = headers
        self._raw = traceparent
        self._span: TraceContext | None = None
        self._header: bytes | None = None
        self.value = value
        self.topic = topic

    @property
    def incoming(self) -> TraceContext | None:
        """The caller's context, if it sent a valid one."""
        raw = self._raw if self._raw is not None else _header_value(self._headers)
        return parse_traceparent(raw)

    @property
    def span(self) -> TraceContext:
        """This hop's span: a child of the incoming context, or the root of a new trace."""
        span = self._span
        if span is None:
            parent = self.incoming
            span = self._span = parent.child() if parent is not None else TraceContext.new()
        return span

    @property
    def started(self) -> bool:
        """Whether this hop's span has been made (something logged or produced with it)."""
        return self._span is not None

    @property
    def trace_id(self) -> str:
        return self.span.trace_id

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` of records produced while handling this work."""
        return self.span.traceparent

    @property
    def header(self) -> bytes:
        """:attr:`traceparent` as a Kafka header value."""
        header = self._header
        if header is None:
            header = self._header = self.span.traceparent.encode()
        return header


_CURRENT: ContextVar[Trace | None] = ContextVar("fleet_trace", default=None)
#: Fast access for per-record wrappers: ``set_current(Trace(...))`` inside a copied context, or
#: ``token = set_current(trace)`` ... ``reset_current(token)``.
set_current = _CURRENT.set
reset_current = _CURRENT.reset


def current() -> Trace | None:
    """The trace of the work in hand (None outside one)."""
    return _CURRENT.get()


def current_trace_id() -> str | None:
    trace = _CURRENT.get()
    return trace.trace_id if trace is not None else None


@contextmanager
def activate(trace: Trace) -> Iterator[Trace]:
    """Make ``trace`` current for the ``with`` block."""
    token: Token[Trace | None] = _CURRENT.set(trace)
    try:
        yield trace
    finally:
        _CURRENT.reset(token)


def outgoing_headers() -> list[tuple[str, bytes]]:
    """Headers for a record produced now: the current span's ``traceparent``, or a new trace's."""
    return [(TRACEPARENT, current_header())]


def current_header() -> bytes:
    """The ``traceparent`` header value for a record produced now (a new trace outside any work)."""
    trace = _CURRENT.get()
    return trace.header if trace is not None else TraceContext.new().traceparent.encode()
