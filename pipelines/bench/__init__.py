"""Benchmarks run by ``fleet bench`` (``make bench``): one module each with ``run() -> list[dict]``.

Each row: ``{"name", "value", "unit", "baseline", "ratio", "goal"}`` where ``baseline`` is a raw figure
measured in the same run on the same data (e.g. schemaless fastavro, a raw COPY), ``ratio`` is
value/baseline and ``goal`` states the target. Benchmarks measure; they never assert.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["process_cpu_s"]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
