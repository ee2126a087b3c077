"""The closed loop on the real stack: the simulator creates tasks and follows scheduler.decisions, and the
real processors (telemetry, timers, tasks, dispatch, sink-postgres) carry every task to SUCCEEDED.

simulator --task.commands--> tasks --task.events--> dispatch --scheduler.decisions--> simulator
simulator --robot.telemetry--> telemetry --robot.status--> dispatch;  robot.telemetry (task phase) --> tasks

One robot is switched off in the middle of its task: telemetry marks it OFFLINE, dispatch takes the task
back, and another robot finishes it. Dispatch uses the gRPC planner (`fleet run planner`), which is
SIGKILLed mid-run and restarted: assignment goes on with the in-process policy while the circuit is open. Postgres (written by the sink from task.events) must then show every
task SUCCEEDED, no task assigned twice except that one, and no robot holding two tasks at once.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.settings import CommonSettings
from pipelines.simulator import FleetSim, SimConfig, run_simulation
from schemas.catalog import topics as catalog_topics
from schemas.ids import now_ms
from schemas.registry import RegistryClient
from sinks.postgres import connect
from tests.integration.sinks.test_postgres_support import pg_schema
from tests.integration.tasks.test_tasks_support import PARTITIONS, TOPICS, TaskStack

pytestmark = pytest.mark.integration
logger = logging.getLogger(__name__)

__all__ = ["pg_schema"]  # fixture, imported for pytest

TENANT, SITE = "acme", "loop"
ROBOTS, TASKS = 20, 200
LOOP_TOPICS = (
    *TOPICS,
    "robot.telemetry.1m",
    "timers.due.telemetry",
    "dlq.telemetry",
    "dlq.dispatch",
)
PROCESSORS = ("telemetry", "timers", "tasks", "dispatch", "sink-postgres")
_TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT")


@pytest.fixture
def loop_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[TaskStack]:
    prefix = prefixed_settings.topic_prefix
    names = tuple(dict.fromkeys(LOOP_TOPICS))
    specs = catalog_topics(
        prefix, partitions={"task": PARTITIONS, "robot": PARTITIONS, "site": PARTITIONS}, names=names
    )
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs
    ]
    new.append(NewTopic(f"{prefix}tasks.inbox", num_partitions=PARTITIONS, replication_factor=1))
    for fut in kafka_admin.create_topics(new).values():
        fut.result(30)
    registry = RegistryClient(**prefixed_settings.registry_client_config())
    stack = TaskStack(prefixed_settings, registry, tmp_path, kafka_admin)
    yield stack
    stack.stop_all()
    registry.close()
    mine = [t for t in kafka_admin.list_topics(timeout=10).topics if prefix in t]
    for fut in kafka_admin.delete_topics(mine).values() if mine else []:
        with contextlib.suppress(Exception):  # best-effort clean-up
            fut.result(30)


class _SwitchOff:
    """A tick hook: once the loop runs, switch off one robot that drives to its task, once."""

    def __init__(self, after_ms: int) -> None:
        self.after_ms = after_ms
        self.start_ms: int | None = None
        self.robot_id: str | None = None
        self.task_id: str | None = None

    def __call__(self, sim: FleetSim, now_ms: int) -> None:
        if self.start_ms is None:
            self.start_ms = now_ms
        if self.robot_id is not None or now_ms - self.start_ms < self.after_ms:
            return
        for rid in sim.robot_ids:
            view = sim.view(rid)
            if view.task_id is not None and view.activity == "TRAVEL" and len(view.path) >= 3:
                sim.power_off(rid)
                self.robot_id, self.task_id = rid, view.task_id
                return


def _rows(pg_dsn: str, schema: str, sql: str) -> list[tuple[Any, ...]]:
    with connect(pg_dsn, schema) as conn:
        return conn.execute(sql).fetchall()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_simulated_fleet_finishes_every_task(loop_stack: TaskStack, pg_schema: str, pg_dsn: str) -> None:
    s = loop_stack
    common = {"commit_interval_s": 0.2}
    planner = {"planner_host": "127.0.0.1", "planner_port": _free_port()}
    s.start("planner", **planner)
    s.start("telemetry", offline_timeout_s=5, **common)
    s.start("timers")
    s.start("tasks", **common)
    s.start(
        "dispatch",
        planner_target=f"127.0.0.1:{planner['planner_port']}",
        planner_cooldown_s=3,
        planner_failure_threshold=2,
        **common,
    )
    s.start("sink-postgres", postgres_schema=pg_schema)
    for proc in ("telemetry", "tasks", "dispatch", "sink-postgres"):
        s.wait_started(proc, timeout=90)

    settings = s.settings
    switch_off = _SwitchOff(after_ms=15_000)
    config = SimConfig(
        site_id=SITE,
        tenant_id=TENANT,
        robots=ROBOTS,
        rate_hz=4.0,
        seed=7,
        follow_decisions=True,
        tasks_per_minute=240.0,  # 200 tasks in the first 50 s: a queue the fleet works off
        task_limit=TASKS,
        speed_scale=8.0,  # 9.6 m/s: ten tasks per robot in about two minutes
        work_ms=500,
        progress_interval_s=5.0,
        kafka_config=settings.kafka_producer_config(),
        registry_config=settings.registry_client_config(),
        topic_prefix=settings.topic_prefix,
    )
    stop = threading.Event()
    result: dict[str, Any] = {}

    def _run() -> None:
        result["stats"] = run_simulation(config, stop, on_tick=switch_off)

    sim_thread = threading.Thread(target=_run, name="simulator", daemon=True)
    sim_thread.start()

    # The planner is SIGKILLed 30 s into the run and back 30 s later.
    started = time.monotonic()
    killed_at = restarted_at = 0
    deadline = started + 420
    done: list[tuple[Any, ...]] = []
    try:
        while time.monotonic() < deadline:
            if not killed_at and time.monotonic() - started > 30:
                s.kill("planner")
                killed_at = now_ms()
            elif killed_at and not restarted_at and time.monotonic() - started > 60:
                s.start("planner", **planner)
                restarted_at = now_ms()
            done = _rows(pg_dsn, pg_schema, "SELECT state, count(*) FROM tasks GROUP BY state")
            counts = dict(done)
            logger.info("tasks in Postgres by state: %s", counts)
            if sum(counts.get(t, 0) for t in _TERMINAL) >= TASKS:
                break
            for name, proc in s.procs.items():
                assert proc.poll() is None, f"{name} exited:\n{s.log(name)[-3000:]}"
            assert sim_thread.is_alive(), f"the simulator stopped: {result}"
            time.sleep(2.0)
    finally:
        stop.set()
        sim_thread.join(30)
    stats = result["stats"]
    counts = dict(done)
    assert stats.tasks_created == TASKS
    assert counts == {"SUCCEEDED": TASKS}, f"task states in Postgres: {counts} (simulator: {stats.as_dict()})"

    # The robot switched off mid-task: its task went back to the queue and another robot finished it.
    assert switch_off.robot_id is not None, "no robot was driving to a task after 15 s"
    lost = _rows(
        pg_dsn,
        pg_schema,
        f"SELECT state, robot_id FROM task_events WHERE task_id = '{switch_off.task_id}' "
        "AND kind = 'TRANSITION' ORDER BY seq",
    )
    assigned = [robot for state, robot in lost if state == "ASSIGNED"]
    assert assigned[0] == switch_off.robot_id and len(assigned) == 2, lost
    assert assigned[1] != switch_off.robot_id
    assert lost[-1] == ("SUCCEEDED", assigned[1])

    # No task assigned twice (but that one), and no robot holding two tasks at once.
    events = _rows(
        pg_dsn,
        pg_schema,
        "SELECT task_id, seq, state, robot_id FROM task_events WHERE kind = 'TRANSITION' ORDER BY task_id, seq",
    )
    assignments: dict[str, int] = defaultdict(int)
    for task_id, _seq, state, _robot in events:
        if state == "ASSIGNED":
            assignments[task_id] += 1
    twice = {t: n for t, n in assignments.items() if n > 1}
    assert twice == {switch_off.task_id: 2}, twice
    assert len(assignments) == TASKS
    holds = _holding_intervals(pg_dsn, pg_schema)
    for robot, spans in holds.items():
        spans.sort()
        for (_s0, e0, t0), (s1, _e1, t1) in itertools.pairwise(spans):
            assert s1 >= e0, f"{robot} held {t0} and {t1} at once: {spans}"
    assert stats.decisions_applied >= TASKS
    assert stats.delivery_errors == 0

    # The planner made the choices until it was killed, the in-process policy while it was away (the
    # circuit opened), and the planner again once it was back (the half-open probe closed the circuit).
    chosen = _rows(
        pg_dsn,
        pg_schema,
        "SELECT planner, (extract(epoch FROM occurred_at) * 1000)::bigint FROM decisions "
        "WHERE kind = 'ASSIGN' ORDER BY occurred_at",
    )
    before = {p for p, at in chosen if at < killed_at}
    away = [p for p, at in chosen if killed_at + 2000 < at < restarted_at]
    after = [p for p, at in chosen if at > restarted_at + 6000]
    assert "planner" in before, chosen[:20]
    assert away and set(away) == {"in_process"}, away
    assert "planner" in after, after
    log = s.log("dispatch")
    assert "CLOSED -> OPEN" in log and "HALF_OPEN -> CLOSED" in log, log[-3000:]


def _holding_intervals(pg_dsn: str, schema: str) -> dict[str, list[tuple[int, int, str]]]:
    """Per robot, the event-time spans from a task's ASSIGNED to the transition that took it away."""
    rows = _rows(
        pg_dsn,
        schema,
        "SELECT task_id, seq, state, robot_id, (extract(epoch FROM occurred_at) * 1000)::bigint "
        "FROM task_events WHERE kind = 'TRANSITION' ORDER BY task_id, seq",
    )
    spans: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    open_: dict[str, tuple[str, int]] = {}
    for task_id, _seq, state, robot, at in rows:
        held = open_.get(task_id)
        if held is not None and (state not in ("ASSIGNED", "DISPATCHED", "EXECUTING") or robot != held[0]):
            spans[held[0]].append((held[1], int(at), task_id))
            del open_[task_id]
        if state == "ASSIGNED":
            open_[task_id] = (robot, int(at))
    assert not open_, f"tasks still held at the end: {open_}"
    return spans
