"""Benchmarks run by ``fleet bench`` (``make bench``): one module each with ``run() -> list[dict]``.

Each row: ``{"name", "value", "unit", "baseline", "ratio", "goal"}`` where ``baseline`` is a raw figure
measured in the same run on the same data (e.g. schemaless fastavro, a raw COPY), ``ratio`` is
value/baseline and ``goal`` states the target. Benchmarks measure; they never assert.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["process_cpu_s", "replication"]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def replication() -> tuple[int, dict[str, str]]:
    """Replication factor and extra topic config of the topics a benchmark creates: 1 by default (the
    stack's single broker); ``FLEET_BENCH_REPLICATION`` / ``FLEET_BENCH_MIN_ISR`` on a cluster (the
    ``cluster`` benchmark sets 3 and 2)."""
    rf = int(os.environ.get("FLEET_BENCH_REPLICATION", 1))
    min_isr = os.environ.get("FLEET_BENCH_MIN_ISR")
    return rf, ({"min.insync.replicas": min_isr} if min_isr else {})
