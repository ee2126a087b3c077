"""W3C trace context: parsing, spans, the current trace, trace ids of a batch."""

from __future__ import annotations

import contextvars

import pytest

from schemas.tracing import (
    TRACEPARENT,
    Trace,
    TraceContext,
    activate,
    current,
    current_header,
    current_trace_id,
    from_headers,
    outgoing_headers,
    parse_traceparent,
    trace_ids,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_parse_a_valid_traceparent_from_text_or_bytes() -> None:
    expected = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert parse_traceparent(VALID) == expected
    assert parse_traceparent(VALID.encode()) == expected
    assert parse_traceparent(f" {VALID}\t") == expected  # HTTP optional whitespace
    assert expected.traceparent == VALID


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        VALID.upper(),  # uppercase hex is invalid
        "ff" + VALID[2:],  # version ff is invalid
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        VALID + "-extra",  # version 00 has exactly four fields
        VALID[:-1],  # short flags
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # short trace id
        b"\xff\xfe",
    ],
)
def test_invalid_traceparents_are_ignored(value: str | bytes | None) -> None:
    assert parse_traceparent(value) is None


def test_a_later_version_may_append_fields() -> None:
    parsed = parse_traceparent("01" + VALID[2:] + "-what-comes-next")
    assert parsed is not None and parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_new_traces_and_child_spans() -> None:
    root = TraceContext.new()
    assert parse_traceparent(root.traceparent) == root
    child = root.child()
    assert child.trace_id == root.trace_id and child.span_id != root.span_id and child.flags == root.flags
    assert TraceContext.new().trace_id != root.trace_id


def test_headers_as_pairs_or_mapping() -> None:
    assert from_headers([("other", b"x"), (TRACEPARENT, VALID.encode())]) == parse_traceparent(VALID)
    assert from_headers({TRACEPARENT: VALID}) == parse_traceparent(VALID)
    assert from_headers(None) is None and from_headers([]) is None and from_headers([("other", b"1")]) is None


def test_a_trace_joins_the_incoming_context_lazily() -> None:
    trace = Trace([(TRACEPARENT, VALID.encode())], value={"tenant_id": "acme"}, topic="t")
    assert not trace.started
    span = trace.span
    assert trace.started and span.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.span_id != "00f067aa0ba902b7"  # this hop's own span
    assert trace.span is span and trace.header == span.traceparent.encode()
    assert trace.incoming == parse_traceparent(VALID)


def test_a_trace_without_a_valid_incoming_context_starts_a_new_one() -> None:
    for trace in (Trace(None), Trace([(TRACEPARENT, b"bad")]), Trace(traceparent="bad")):
        assert trace.incoming is None
        assert parse_traceparent(trace.traceparent) == trace.span


def test_the_current_trace_is_scoped() -> None:
    assert current() is None and current_trace_id() is None
    outside = parse_traceparent(current_header())
    assert outside is not None  # outside any work, a produced record starts a new trace
    trace = Trace(traceparent=VALID)
    with activate(trace):
        assert current() is trace
        assert current_trace_id() == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert outgoing_headers() == [(TRACEPARENT, trace.header)]
        # another context (e.g. another asyncio task started before) does not see it
        assert contextvars.Context().run(current) is None
    assert current() is None


def test_trace_ids_of_a_batch_are_distinct_valid_and_ordered() -> None:
    a, b = TraceContext.new(), TraceContext.new()
    batch = [
        [(TRACEPARENT, a.traceparent.encode())],
        None,
        [(TRACEPARENT, b"not a traceparent")],
        [("x", b"y"), (TRACEPARENT, b.traceparent.encode())],
        [(TRACEPARENT, a.child().traceparent.encode())],
    ]
    assert trace_ids(batch) == [a.trace_id, b.trace_id]
    assert trace_ids(batch, limit=1) == [a.trace_id]
    assert trace_ids([]) == []
