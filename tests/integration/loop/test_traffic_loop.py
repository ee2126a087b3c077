"""The closed loop with traffic control on the real stack: 30 simulated robots follow scheduler.decisions
from dispatch (ASSIGN) and traffic (GRANT: they drive only onto nodes granted to them) while the real
processors (telemetry, timers, tasks, dispatch, traffic, sink-postgres) run, and the simulator's ground
truth must show no collision. Robots drive twice as fast as real ones (speed_scale 2) to keep the test
short and go home as soon as they are idle. Tasks: 6 deliveries in the first minute, from random pickups
to random docks.

``FLEET_TRAFFIC_LOOP_MINUTES=30`` makes it the long run of the traffic issue instead: real speed, tasks
created for that many minutes, then up to a third as long again for the fleet to finish them, the same
checks; with ``FLEET_TRAFFIC_LOOP_ROBOTS=200 FLEET_TRAFFIC_LOOP_LAYOUT=small`` on the small generated
warehouse (``tasks_per_minute`` from ``FLEET_TRAFFIC_LOOP_RATE``, default one task per 8 robots and minute,
under what such a fleet does there), and ``FLEET_TRAFFIC_LOOP_COMMIT_S`` as every processor's checkpoint
period (default 0.2). It logs the decision latency, status -> decision received by the simulator (wall
clock) and -> applied at the robot's next tick, p50 / p99, and each processor's CPU over the run (what the
checkpoint period costs).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from pipelines.simulator import SimConfig, run_simulation
from pipelines.simulator.layouts import small_warehouse
from sinks.postgres import connect
from tests.integration.loop.test_closed_loop import LOOP_TOPICS
from tests.integration.sinks.test_postgres_support import pg_schema
from tests.integration.tasks.test_tasks_support import TaskStack, open_task_stack

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

__all__ = ["pg_schema"]  # fixture, imported for pytest

TENANT, SITE = "acme", "traffic-loop"
MINUTES = float(os.environ.get("FLEET_TRAFFIC_LOOP_MINUTES", "0"))  # 0: the short run
ROBOTS = int(os.environ.get("FLEET_TRAFFIC_LOOP_ROBOTS", "30"))
LAYOUT = small_warehouse() if os.environ.get("FLEET_TRAFFIC_LOOP_LAYOUT") == "small" else None
COMMIT_S = float(os.environ.get("FLEET_TRAFFIC_LOOP_COMMIT_S", "0.2"))
if MINUTES:
    TASKS_PER_MINUTE = float(os.environ.get("FLEET_TRAFFIC_LOOP_RATE", ROBOTS / 8))
    TASKS, SPEED_SCALE = round(TASKS_PER_MINUTE * MINUTES), 1.0
else:
    TASKS, TASKS_PER_MINUTE, SPEED_SCALE = 6, 6.0, 2.0


@pytest.fixture
def traffic_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[TaskStack]:
    with open_task_stack(
        prefixed_settings, kafka_admin, tmp_path, (*LOOP_TOPICS, "dlq.traffic", "timers.due.traffic")
    ) as stack:
        yield stack


def _rows(pg_dsn: str, schema: str, sql: str) -> list[tuple[Any, ...]]:
    with connect(pg_dsn, schema) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.timeout(MINUTES * 80 + 600 if MINUTES else 300)
def test_thirty_robots_under_traffic_control_do_not_collide(
    traffic_stack: TaskStack, pg_schema: str, pg_dsn: str
) -> None:
    s = traffic_stack
    common = {"commit_interval_s": COMMIT_S}
    s.start("telemetry", offline_timeout_s=10, **common)
    s.start("timers")
    s.start("tasks", **common)
    s.start("dispatch", **common)
    s.start("traffic", traffic_speed_mps=1.2 * SPEED_SCALE, **common)
    s.start("sink-postgres", postgres_schema=pg_schema)
    processors = ("telemetry", "tasks", "dispatch", "traffic", "sink-postgres")
    for processor in processors:
        s.wait_started(processor, timeout=90)
    cpu_at_start, started = {p: s.cpu_seconds(p) for p in processors}, time.monotonic()

    settings = s.settings
    config = SimConfig(
        site_id=SITE,
        tenant_id=TENANT,
        robots=ROBOTS,
        rate_hz=4.0,
        seed=3,
        follow_decisions=True,
        tasks_per_minute=TASKS_PER_MINUTE,
        task_limit=TASKS,
        speed_scale=SPEED_SCALE,
        work_ms=1500,
        return_home_ms=0,
        record_history=True,
        site_map=LAYOUT,
        progress_interval_s=10.0,
        kafka_config=settings.kafka_producer_config(),
        registry_config=settings.registry_client_config(),
        topic_prefix=settings.topic_prefix,
    )
    stop = threading.Event()
    result: dict[str, Any] = {}

    def _run() -> None:
        result["stats"] = run_simulation(config, stop)

    sim_thread = threading.Thread(target=_run, name="simulator", daemon=True)
    sim_thread.start()
    deadline = time.monotonic() + (MINUTES * 80 if MINUTES else 150)
    counts: dict[str, int] = {}
    try:
        while time.monotonic() < deadline:
            counts = dict(_rows(pg_dsn, pg_schema, "SELECT state, count(*) FROM tasks GROUP BY state"))
            if counts.get("SUCCEEDED", 0) >= TASKS:
                break
            for name, proc in s.procs.items():
                assert proc.poll() is None, f"{name} exited:\n{s.log(name)[-3000:]}"
            assert sim_thread.is_alive(), f"the simulator stopped: {result}"
            time.sleep(10.0 if MINUTES else 2.0)
        time.sleep(5.0)  # robots drive home; their conflicts are resolved (or not) meanwhile
        # What the checkpoint period costs: each processor's CPU over the run, as a share of one core.
        elapsed = time.monotonic() - started
        cpu = {p: s.cpu_seconds(p) - cpu_at_start[p] for p in processors}
        logger.info(
            "traffic loop: checkpoints %.2f s, %.0f s of wall time: processor CPU %s",
            COMMIT_S,
            elapsed,
            ", ".join(f"{p} {c:.0f} s ({c / elapsed:.0%} of a core)" for p, c in cpu.items()),
        )
    finally:
        stop.set()
        sim_thread.join(30)
    stats = result["stats"]
    summary = stats.as_dict()
    logger.info("traffic loop: %s; tasks %s", summary, counts)
    logger.info(
        "traffic loop: %d robots, %.0f min, checkpoints %.2f s: decision latency to the simulator p50 %d ms, "
        "p99 %d ms, max %d ms; to the robot's next tick p50 %d ms, p99 %d ms",
        ROBOTS,
        MINUTES,
        COMMIT_S,
        stats.arrival_ms(0.5),
        stats.arrival_ms(0.99),
        stats.arrival_ms(1.0),
        stats.latency_ms(0.5),
        stats.latency_ms(0.99),
    )

    # Ground truth: no two robots at one node, none head-on on one lane.
    assert (stats.vertex_collisions, stats.edge_collisions) == (0, 0), summary
    # Tasks complete under traffic control (a robot that waits long at its start for a clear way may
    # still be on its way when the test ends: none failed, most succeeded).
    assert counts.get("SUCCEEDED", 0) >= TASKS - 2, (counts, summary)
    if MINUTES:
        logger.info("long run: %.0f minutes, %d tasks: %s", MINUTES, TASKS, counts)
    assert set(counts) <= {"SUCCEEDED", "ASSIGNED", "DISPATCHED", "EXECUTING", "QUEUED"}, counts

    # Every robot drove on grants: traffic granted the nodes, nobody was held (there is nothing to hold
    # a robot that only drives onto what it was granted), and no conflict was left unresolved.
    applied = stats.decisions_by_kind
    assert applied.get("GRANT", 0) >= ROBOTS, summary
    assert applied.get("HOLD", 0) == 0, summary
    # What the robots applied is what was decided: every GRANT reaches Postgres, a checkpoint or two
    # after the robot had it (the sink commits on its own period).
    sql = "SELECT count(*) FROM decisions WHERE kind = 'GRANT'"
    written = time.monotonic() + 30
    grants = _rows(pg_dsn, pg_schema, sql)[0][0]
    while grants < applied["GRANT"] and time.monotonic() < written:
        time.sleep(1.0)
        grants = _rows(pg_dsn, pg_schema, sql)[0][0]
    assert grants >= applied["GRANT"], (grants, summary)
    unresolved = _rows(pg_dsn, pg_schema, "SELECT message FROM alerts WHERE kind = 'CONFLICT_UNRESOLVED'")
    assert unresolved == [], unresolved
    # Decisions took the pipeline's time to reach the robots, within the grants' lookahead (4 s): a robot
    # gets its next grant before it reaches the end of the last one.
    assert 0 < stats.latency_ms(0.5) <= stats.latency_ms(0.99) < 4_000, summary
    assert 0 < stats.arrival_ms(0.5) <= stats.arrival_ms(0.99) < 4_000, summary
    assert s.log("traffic").count("Traceback") == 0
