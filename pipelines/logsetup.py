"""One logging setup per entrypoint: JSON lines carrying topic[partition]@offset and the ids we trace by."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = ["CONTEXT_FIELDS", "JsonFormatter", "setup_logging"]

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
    "event_id",
    "reason",
)


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


def setup_logging(level: str = "INFO", fmt: str = "json", processor: str | None = None) -> None:
    """Configure the root logger once for this process (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(processor))
    else:
        prefix = f"[{processor}] " if processor else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {prefix}%(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kafka", "aiokafka", "httpx", "urllib3", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
