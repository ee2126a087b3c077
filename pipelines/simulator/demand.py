"""Task lists from files: what a warehouse asks of its fleet, to try traffic control on one's own demand.

One task request per line, in CSV (with a header) or JSON lines (``.jsonl``/``.ndjson``), fields:

| field | meaning |
| --- | --- |
| ``at_s`` | seconds after the start of the run: one task then |
| ``per_min`` | instead of ``at_s``: this task again and again, so many per minute (from ``at_s`` or 0) |
| ``pickup`` | node id of the pickup (optional when there is a drop-off) |
| ``dropoff`` | node id of the drop-off (optional when there is a pickup) |
| ``priority`` | 0..10 (optional, default: random 3..7) |

Example (CSV)::

    at_s,per_min,pickup,dropoff,priority
    0,,PICK001,DROP010,5
    ,2.5,PICK003,DROP004,
    30,,,DROP020,9

A line that cannot be used is refused with its line number and the reason; node ids are checked against
the site map when the run starts (:class:`~pipelines.simulator.follow.TaskFeeder`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TaskRequest", "load_tasks"]


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """One line of a task list (see the module doc)."""

    at_s: float | None = None
    per_minute: float | None = None
    pickup: str | None = None
    dropoff: str | None = None
    priority: int | None = None

    def __post_init__(self) -> None:
        if self.at_s is None and not self.per_minute:
            raise ValueError("needs at_s (a time) or per_min (a rate)")
        if self.at_s is not None and self.at_s < 0:
            raise ValueError("at_s must be >= 0")
        if self.per_minute is not None and self.per_minute <= 0:
            raise ValueError("per_min must be > 0")
        if not self.pickup and not self.dropoff:
            raise ValueError("needs a pickup or a dropoff node")
        if self.priority is not None and not 0 <= self.priority <= 10:
            raise ValueError("priority must be within 0..10")


def _number(value: Any, cast: type) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return cast(value)


def _request(row: dict[str, Any]) -> TaskRequest:
    unknown = set(row) - {"at_s", "per_min", "pickup", "dropoff", "priority"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    return TaskRequest(
        at_s=_number(row.get("at_s"), float),
        per_minute=_number(row.get("per_min"), float),
        pickup=(str(row["pickup"]).strip() or None) if row.get("pickup") else None,
        dropoff=(str(row["dropoff"]).strip() or None) if row.get("dropoff") else None,
        priority=_number(row.get("priority"), int),
    )


def load_tasks(path: str | Path) -> tuple[TaskRequest, ...]:
    """Read a task list (CSV, or JSON lines by extension); ValueError names the line and the reason."""
    p = Path(path)
    text = p.read_text()
    rows: list[tuple[int, dict[str, Any]]] = []
    if p.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{p}:{n}: not JSON: {exc.msg}") from None
                if not isinstance(value, dict):
                    raise ValueError(f"{p}:{n}: a task request is a JSON object")
                rows.append((n, value))
    else:
        reader = csv.DictReader(text.splitlines())
        for n, row in enumerate(reader, start=2):
            rows.append((n, {k.strip(): v for k, v in row.items() if k is not None}))
    out = []
    for n, row in rows:
        try:
            out.append(_request(row))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{p}:{n}: {exc}") from None
    if not out:
        raise ValueError(f"{p}: no task requests")
    return tuple(out)
