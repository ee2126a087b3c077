"""SIGKILL of the tasks processor mid-stream: after restarts nothing is lost and nothing is duplicated."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from schemas.ids import now_ms
from tests.integration.tasks.test_tasks_support import (
    TaskStack,
    by_task,
    command,
    decision,
    spec,
    task_stack,
    telemetry,
    transitions,
)

__all__ = ["task_stack"]

logger = logging.getLogger(__name__)

TENANT = "crash"
N = 300  # tasks with the whole life
DEPENDENTS = 30  # tasks waiting for one of the first DEPENDENTS tasks


def _produce_while_killing(s: TaskStack, produce: Callable[[], None]) -> None:
    """Run ``produce`` in a thread; SIGKILL the processor in the middle of it; restart it at once."""
    worker = threading.Thread(target=produce)
    worker.start()
    time.sleep(0.8)
    s.kill("tasks")
    s.start("tasks", instance_id="tasks-0")
    worker.join()
    s.flush()


def _wait_all(s: TaskStack, ids: list[str], state: str, timeout: float = 90) -> list[dict[str, Any]]:
    started = time.monotonic()

    def ok(events: list[dict[str, Any]]) -> bool:
        tasks = by_task(events)
        return all(state in transitions(tasks.get(t, [])) for t in ids)

    events = s.read("task.events", until=ok, timeout=timeout, quiet=0)
    tasks = by_task(events)
    missing = [t for t in ids if state not in transitions(tasks.get(t, []))]
    assert not missing, (
        f"{len(missing)} tasks never reached {state}, e.g. {missing[:5]}:\n{s.log('tasks')[-3000:]}"
    )
    logger.warning("%d tasks %s after %.1fs", len(ids), state, time.monotonic() - started)
    return events


def test_sigkill_loses_and_duplicates_nothing(task_stack: TaskStack) -> None:
    s = task_stack
    s.start("tasks", instance_id="tasks-0")
    s.wait_started("tasks")
    ids = [f"t{i:04d}" for i in range(N)]
    deps = [f"d{i:04d}" for i in range(DEPENDENTS)]

    def paced(records: list[tuple[str, str, dict[str, Any]]]) -> Callable[[], None]:
        def run() -> None:
            for i, (topic, key, value) in enumerate(records):
                s.produce(topic, key, value)
                if i % 20 == 19:
                    time.sleep(0.05)  # ~2 s per phase: the kill lands in the middle of it

        return run

    t = now_ms()
    _produce_while_killing(
        s, paced([("task.commands", tid, command(TENANT, tid, "CREATE", t, spec=spec())) for tid in ids])
    )
    _wait_all(s, ids, "QUEUED")
    s.kill("tasks")  # and once more while idle, so the dependents' checks run on a restarted processor
    s.start("tasks", instance_id="tasks-0")
    for i, did in enumerate(deps):
        s.produce("task.commands", did, command(TENANT, did, "CREATE", t + 1, spec=spec(depends_on=[ids[i]])))
    s.flush()
    _wait_all(s, deps, "WAITING")
    _produce_while_killing(
        s,
        paced(
            [
                ("scheduler.decisions", tid, decision(TENANT, tid, "ASSIGN", f"r{i}", t + 2))
                for i, tid in enumerate(ids)
            ]
        ),
    )
    _wait_all(s, ids, "ASSIGNED")
    progress = []
    for i, tid in enumerate(ids):
        progress.append(("robot.telemetry", f"r{i}", telemetry(TENANT, f"r{i}", tid, "STARTED", 1, t + 3)))
        progress.append(("robot.telemetry", f"r{i}", telemetry(TENANT, f"r{i}", tid, "COMPLETED", 2, t + 4)))
    _produce_while_killing(s, paced(progress))
    _wait_all(s, ids, "SUCCEEDED")
    events = _wait_all(s, deps, "QUEUED")

    assert len({e["event_id"] for e in events}) == len(events), "an event was published twice"
    tasks = by_task(events)
    assert set(tasks) == set(ids) | set(deps)
    for tid, evs in tasks.items():
        assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1)), (
            f"{tid}: seq {[e['seq'] for e in evs]}"
        )
        assert all(e["kind"] == "TRANSITION" for e in evs), (
            f"{tid}: {[(e['kind'], e['reason']) for e in evs]}"
        )
    for tid in ids:
        assert transitions(tasks[tid]) == ["CREATED", "QUEUED", "ASSIGNED", "EXECUTING", "SUCCEEDED"], tid
    for did in deps:
        assert transitions(tasks[did]) == ["CREATED", "WAITING", "QUEUED"], did
    assert s.read("dlq.tasks", timeout=2) == []
