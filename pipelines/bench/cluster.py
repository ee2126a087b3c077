"""Benchmark: the telemetry and tasks topologies on the three-node cluster next to the single broker.

The ``telemetry`` and ``tasks`` benchmarks run twice in this one run: on the stack's single broker (one
processor, replication 1, as ``make bench`` runs them) and on the stack's separate three-node cluster
(``stack.sh up cluster``, started if needed) with replication 3, ``min.insync.replicas`` 2 and two
processor instances in one consumer group. Each row gives the cluster's figure, the single broker's as
its baseline, and their ratio: what replication (every write waits for a second copy) and a second
instance cost or gain on this machine. Both brokers and every process share the same two cores, so the
ratio measures overheads, not the scaling a cluster of machines gives.

Sizes are smaller than the single benchmarks' defaults (both run twice); ``FLEET_BENCH_*`` variables
set in the environment win.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from pipelines.bench import tasks, telemetry
from pipelines.drill.cluster import KafkaCluster

__all__ = ["run"]

logger = logging.getLogger(__name__)

SIZES = {"FLEET_BENCH_RECORDS": "40000", "FLEET_BENCH_ROUNDS": "2", "FLEET_BENCH_COMMANDS": "10000"}
#: The rows compared, per benchmark: the name stem of the throughput and CPU rows.
COMPARED = {
    "telemetry": ("telemetry.throughput", "telemetry.cpu_per_record"),
    "tasks": ("tasks topology, backlog",),
}


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _rows(
    name: str, bench: Callable[[], list[dict[str, Any]]], cluster: KafkaCluster
) -> list[dict[str, Any]]:
    sizes = {k: v for k, v in SIZES.items() if k not in os.environ}
    with _env({**sizes, "FLEET_BENCH_REPLICATION": "1", "FLEET_BENCH_INSTANCES": "1"}):
        single = bench()
    with _env(
        {
            **sizes,
            "FLEET_KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
            "FLEET_BENCH_REPLICATION": "3",
            "FLEET_BENCH_MIN_ISR": "2",
            "FLEET_BENCH_INSTANCES": "2",
        }
    ):
        clustered = bench()
    out = []
    for stem in COMPARED[name]:
        one = next(r for r in single if r["name"].startswith(stem))
        three = next(r for r in clustered if r["name"].startswith(stem))
        ratio = three["value"] / one["value"] if one["value"] else None
        out.append(
            {
                "name": f"cluster {stem} (rf 3, 2 instances)",
                "value": round(three["value"], 1),
                "unit": three["unit"],
                "baseline": round(one["value"], 1),
                "ratio": round(ratio, 3) if ratio is not None else None,
                "goal": "report: 3-node cluster vs single broker, same run (baseline: single broker, 1 instance)",
            }
        )
        logger.info(
            "%s: single broker %s %s (raw %s), cluster %s %s (raw %s)",
            stem, one["value"], one["unit"], one.get("baseline"), three["value"], three["unit"], three.get("baseline"),
        )  # fmt: skip
    return out


def run() -> list[dict[str, Any]]:
    """Run the benchmark; returns result rows (name, value, unit, baseline, ratio, goal)."""
    cluster = KafkaCluster.from_env()
    cluster.ensure_up()
    return _rows("telemetry", telemetry.run, cluster) + _rows("tasks", tasks.run, cluster)
