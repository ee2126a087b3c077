"""Log lines carry the current trace and its record's ids, in JSON and in text."""

from __future__ import annotations

import logging

import orjson

from pipelines.logsetup import JsonFormatter, TraceContextFilter, _TextFormatter
from schemas.tracing import TRACEPARENT, Trace, TraceContext, activate

PARENT = TraceContext.new()


def _record(msg: str = "hello", **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("unit", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def _json(record: logging.LogRecord) -> dict:
    TraceContextFilter().filter(record)
    return orjson.loads(JsonFormatter("unit").format(record))


def test_outside_any_work_a_line_has_no_trace() -> None:
    line = _json(_record())
    assert "trace_id" not in line and line["msg"] == "hello" and line["processor"] == "unit"


def test_a_line_carries_the_trace_and_the_records_ids() -> None:
    value = {
        "tenant_id": "acme",
        "robot_id": "r1",
        "task_id": "t1",
        "site_id": "s1",
        "event_id": "e1",
        "x": 1,
    }
    trace = Trace([(TRACEPARENT, PARENT.traceparent.encode())], value=value, topic="p.task.commands")
    with activate(trace):
        line = _json(_record())
    assert line["trace_id"] == PARENT.trace_id and line["span_id"] == trace.span.span_id != PARENT.span_id
    assert {k: line[k] for k in ("tenant_id", "robot_id", "task_id", "site_id", "event_id")} == {
        k: value[k] for k in ("tenant_id", "robot_id", "task_id", "site_id", "event_id")
    }
    assert line["topic"] == "p.task.commands"  # outside Quix's processing: no partition or offset
    assert "x" not in line


def test_what_a_call_passes_wins_over_the_trace() -> None:
    trace = Trace(value={"tenant_id": "acme"}, topic="t")
    with activate(trace):
        line = _json(_record(tenant_id="other", topic="mine", partition=2, offset=7, trace_id="given"))
    assert (line["tenant_id"], line["trace_id"], line["at"]) == ("other", "given", "mine[2]@7")


def test_text_lines_end_with_the_trace_id() -> None:
    formatter = _TextFormatter("unit")
    record = _record()
    with activate(Trace(traceparent=PARENT.traceparent)):
        TraceContextFilter().filter(record)
    assert formatter.format(record).endswith(f"unit: hello trace={PARENT.trace_id}")
    plain = _record()
    TraceContextFilter().filter(plain)
    assert "trace=" not in formatter.format(plain)
