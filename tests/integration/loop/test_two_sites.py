"""Two sites of two tenants on one pipeline for two minutes, as the defects issue found it: one site's
robots follow fleetstream's decisions (dispatch's ASSIGNs, traffic's GRANTs), the other's wander on their
own (registered as managed by themselves, so traffic only monitors them). The real processors (telemetry,
timers, tasks, dispatch, traffic, sink-postgres) must come through without a restart, without a dead
letter from our own producers, and with both sites' facts in Postgres."""

from __future__ import annotations

import threading
import time
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

__all__ = ["pg_schema"]  # fixture, imported for pytest

PROCESSORS = ("telemetry", "timers", "tasks", "dispatch", "traffic", "sink-postgres")
DLQS = ("dlq.telemetry", "dlq.tasks", "dlq.dispatch", "dlq.traffic", "dlq.sink-postgres")
SECONDS = 120


@pytest.fixture
def two_site_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[TaskStack]:
    topics = (*LOOP_TOPICS, *DLQS, "timers.due.traffic", "traffic.conflicts", "alerts")
    with open_task_stack(prefixed_settings, kafka_admin, tmp_path, topics) as stack:
        yield stack


def _sim(s: TaskStack, *, tenant: str, site: str, follow: bool, seed: int) -> SimConfig:
    settings = s.settings
    return SimConfig(
        site_id=site,
        tenant_id=tenant,
        fleet_id=f"{site}-fleet",
        robots=10,
        rate_hz=2.0,
        seed=seed,
        follow_decisions=follow,
        tasks_per_minute=4.0 if follow else 0.0,
        speed_scale=2.0,
        work_ms=1000,
        progress_interval_s=30.0,
        record_history=True,
        kafka_config=settings.kafka_producer_config(),
        registry_config=settings.registry_client_config(),
        topic_prefix=settings.topic_prefix,
    )


@pytest.mark.timeout(SECONDS + 300)
def test_two_sites_one_autonomous_run_two_minutes_without_restarts_or_dead_letters(
    two_site_stack: TaskStack, pg_schema: str, pg_dsn: str
) -> None:
    s = two_site_stack
    for processor in PROCESSORS:
        extra: dict[str, Any] = {"postgres_schema": pg_schema} if processor == "sink-postgres" else {}
        s.start(processor, **extra)
    for processor in PROCESSORS:
        if processor != "timers":
            s.wait_started(processor, timeout=120)

    stop = threading.Event()
    results: dict[str, Any] = {}
    sims = {
        "w1": _sim(s, tenant="acme", site="w1", follow=True, seed=5),
        "w2": _sim(s, tenant="globex", site="w2", follow=False, seed=7),
    }

    def _run(name: str) -> None:
        results[name] = run_simulation(sims[name], stop)

    threads = [threading.Thread(target=_run, args=(n,), name=f"sim-{n}", daemon=True) for n in sims]
    for t in threads:
        t.start()
    try:
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            for name, proc in s.procs.items():
                assert proc.poll() is None, f"{name} exited:\n{s.log(name)[-3000:]}"
            time.sleep(5.0)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert set(results) == {"w1", "w2"}, results

    # The site that follows decisions drove on grants without a collision.
    followed = results["w1"]
    assert (followed.vertex_collisions, followed.edge_collisions) == (0, 0), followed.as_dict()
    assert followed.decisions_by_kind.get("GRANT", 0) > 0, followed.as_dict()
    for name, proc in s.procs.items():
        assert proc.poll() is None, f"{name} exited:\n{s.log(name)[-3000:]}"
        assert "Traceback" not in s.log(name), f"{name}:\n{s.log(name)[-3000:]}"
    for dlq in DLQS:
        dead = s.read_raw(dlq, 1, timeout=3)
        assert dead == [], (dlq, [dict(m.headers() or []) for m in dead])

    with connect(pg_dsn, pg_schema) as conn:
        robots = dict(conn.execute("SELECT site_id, count(*) FROM robots GROUP BY site_id").fetchall())
        tasks = dict(conn.execute("SELECT site_id, count(*) FROM tasks GROUP BY site_id").fetchall())
    assert robots == {"w1": 10, "w2": 10}, robots
    assert tasks.get("w1", 0) > 0, tasks
