"""The closed loop with traffic control on the real stack: 30 simulated robots follow scheduler.decisions
from dispatch (ASSIGN) and traffic (HOLD / RESUME / REROUTE) while the real processors (telemetry,
timers, tasks, dispatch, traffic, sink-postgres) run, and the simulator's ground truth must show no
collision. Robots drive twice as fast as real ones (speed_scale 2) to keep the test short; they set off
3 s after they are given a route (so that a HOLD can still keep them where they stand) and go home as
soon as they are idle. Tasks: 6 deliveries in the first minute, from random pickups to random docks.

``FLEET_TRAFFIC_LOOP_MINUTES=30`` makes it the long run of the traffic issue instead: real speed, a
delivery every 30 s for that many minutes, the same checks (about as long in wall time).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from pipelines.simulator import SimConfig, run_simulation
from sinks.postgres import connect
from tests.integration.loop.test_closed_loop import LOOP_TOPICS
from tests.integration.sinks.test_postgres_support import pg_schema
from tests.integration.tasks.test_tasks_support import TaskStack, open_task_stack

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

__all__ = ["pg_schema"]  # fixture, imported for pytest

TENANT, SITE = "acme", "traffic-loop"
ROBOTS = 30
MINUTES = float(os.environ.get("FLEET_TRAFFIC_LOOP_MINUTES", "0"))  # 0: the short run
if MINUTES:
    TASKS, TASKS_PER_MINUTE, SPEED_SCALE = round(2 * MINUTES), 2.0, 1.0
else:
    TASKS, TASKS_PER_MINUTE, SPEED_SCALE = 6, 6.0, 2.0


@pytest.fixture
def traffic_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[TaskStack]:
    with open_task_stack(prefixed_settings, kafka_admin, tmp_path, (*LOOP_TOPICS, "dlq.traffic")) as stack:
        yield stack


def _rows(pg_dsn: str, schema: str, sql: str) -> list[tuple[Any, ...]]:
    with connect(pg_dsn, schema) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.timeout(MINUTES * 60 + 600 if MINUTES else 300)
def test_thirty_robots_under_traffic_control_do_not_collide(
    traffic_stack: TaskStack, pg_schema: str, pg_dsn: str
) -> None:
    s = traffic_stack
    common = {"commit_interval_s": 0.2}
    s.start("telemetry", offline_timeout_s=10, **common)
    s.start("timers")
    s.start("tasks", **common)
    s.start("dispatch", **common)
    s.start("traffic", traffic_speed_mps=1.2 * SPEED_SCALE, traffic_latency_s=1.5, **common)
    s.start("sink-postgres", postgres_schema=pg_schema)
    for processor in ("telemetry", "tasks", "dispatch", "traffic", "sink-postgres"):
        s.wait_started(processor, timeout=90)

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
        start_delay_ms=3000,
        record_history=True,
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
    deadline = time.monotonic() + (MINUTES * 60 + 120 if MINUTES else 150)
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
    finally:
        stop.set()
        sim_thread.join(30)
    stats = result["stats"]
    summary = stats.as_dict()
    logger.info("traffic loop: %s; tasks %s", summary, counts)

    # Ground truth: no two robots at one node, none head-on on one lane.
    assert (stats.vertex_collisions, stats.edge_collisions) == (0, 0), summary
    # Tasks complete under traffic control (a robot that waits long at its start for a clear way may
    # still be on its way when the test ends: none failed, most succeeded).
    assert counts.get("SUCCEEDED", 0) >= TASKS - 2, (counts, summary)
    if MINUTES:
        logger.info("long run: %.0f minutes, %d tasks: %s", MINUTES, TASKS, counts)
    assert set(counts) <= {"SUCCEEDED", "ASSIGNED", "DISPATCHED", "EXECUTING", "QUEUED"}, counts

    conflicts = _rows(pg_dsn, pg_schema, "SELECT kind, resolution, resolved_robot_id FROM conflicts")
    by_resolution = Counter(resolution for _kind, resolution, _robot in conflicts)
    logger.info(
        "conflicts by kind %s, by resolution %s", Counter(k for k, _r, _x in conflicts), by_resolution
    )
    assert conflicts, "no conflict was detected: traffic control was not exercised"
    assert set(by_resolution) <= {"HOLD", "REROUTE"}, by_resolution  # every one resolved
    unresolved = _rows(pg_dsn, pg_schema, "SELECT message FROM alerts WHERE kind = 'CONFLICT_UNRESOLVED'")
    assert unresolved == [], unresolved

    # The robots obeyed: HOLDs were followed by RESUMEs or REROUTEs (the robot of the last task may still
    # be waiting at its parking spot for a clear way when the test stops; the in-process loop,
    # tests/unit/simulator/test_sim_loop.py, checks over 30 simulated minutes that every one is released).
    applied = stats.decisions_by_kind
    released = applied.get("RESUME", 0) + applied.get("REROUTE", 0)
    assert applied.get("HOLD", 0) > 0, summary
    assert released >= applied.get("HOLD", 0) - 1, summary
    # Decisions took the pipeline's time to reach the robots, within what traffic allows for.
    assert 0 < stats.latency_ms(0.5) <= stats.latency_ms(0.99) <= 1_500, summary
    assert s.log("traffic").count("Traceback") == 0
