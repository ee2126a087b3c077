"""One logging setup per entrypoint: JSON lines carrying topic[partition]@offset and the ids we trace by.

While a record (or an HTTP request) is in hand, :class:`TraceContextFilter` adds what the current
:class:`schemas.tracing.Trace` knows to every line, unless the call passed it itself: ``trace_id`` and
``span_id``; the record's ``tenant_id``, ``site_id``, ``robot_id``, ``task_id`` and ``event_id``; and,
inside a Quix Streams processor, ``topic``, ``partition`` and ``offset`` (hence ``at``).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.tracing import current

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "TraceContextFilter", "setup_logging"]

# Extra attributes a log call may carry (``logger.info("...", extra={"robot_id": ...})``).
CONTEXT_FIELDS = (
    "processor",
    "topic",
    "partition",
    "offset",
    "tenant_id",
    "site_id",
    "robot_id",
    "task_id",
    "trace_id",
    "span_id",
    "event_id",
    "reason",
    "output_topic",
    "records",
    "trace_ids",
)
#: Fields a record's value may give the lines logged while it is processed.
RECORD_FIELDS = ("tenant_id", "site_id", "robot_id", "task_id", "event_id")

_quix_context: Callable[[], Any] | None = None


def _quix_location() -> tuple[str, int, int] | None:
    """topic, partition and offset of the record Quix Streams is processing in this context, if any."""
    global _quix_context
    if _quix_context is None:
        from quixstreams.context import message_context

        _quix_context = message_context
    try:
        ctx = _quix_context()
    except Exception:  # MessageContextNotSetError: not inside Quix's processing of a record
        return None
    return (ctx.topic, ctx.partition, ctx.offset) if ctx is not None else None


class TraceContextFilter(logging.Filter):
    """Adds the current trace's ids and its record's ids to a log record (never overrides ``extra``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace = current()
        if trace is None:
            return True
        attrs = record.__dict__
        if attrs.get("trace_id") is None:
            span = trace.span
            attrs["trace_id"] = span.trace_id
            attrs["span_id"] = span.span_id
        value = trace.value
        if type(value) is dict:
            for name in RECORD_FIELDS:
                if attrs.get(name) is None and (found := value.get(name)) is not None:
                    attrs[name] = found
        if trace.topic is not None and attrs.get("topic") is None:
            where = _quix_location()
            if where is not None:
                attrs["topic"], attrs["partition"], attrs["offset"] = where
            else:
                attrs["topic"] = trace.topic
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, the context fields present, and exc."""

    def __init__(self, processor: str | None = None) -> None:
        super().__init__()
        self._processor = processor

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._processor:
            out["processor"] = self._processor
        for field in CONTEXT_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                out[field] = value
        if "topic" in out and "partition" in out and "offset" in out:
            out["at"] = f"{out['topic']}[{out['partition']}]@{out['offset']}"
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class _TextFormatter(logging.Formatter):
    """``time LEVEL [processor] logger: message``, then ``trace=<trace id>`` when there is one."""

    def __init__(self, processor: str | None = None) -> None:
        prefix = f"[{processor}] " if processor else ""
        super().__init__(f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = record.__dict__.get("trace_id")
        return f"{line} trace={trace_id}" if trace_id else line


def setup_logging(level: str = "INFO", fmt: str = "json", processor: str | None = None) -> None:
    """Configure the root logger once for this process (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(TraceContextFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(processor))
    else:
        handler.setFormatter(_TextFormatter(processor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "aiokafka", "httpx", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
