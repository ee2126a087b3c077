"""Against the real stack (``fleet run tasks`` and ``sink-postgres``): the states of Open-RMF tasks that
fleetstream did not create become external tasks with their events, in Postgres; and task commands are
held to the rules telemetry is (a timestamp from the future, size limits): dead-lettered with the reason."""

from __future__ import annotations

import time
from typing import Any

import orjson

from schemas.ids import now_ms
from sinks.postgres import connect
from tests.integration.sinks.test_postgres_support import pg_schema
from tests.integration.tasks.test_tasks_support import (
    TaskStack,
    by_task,
    command,
    spec,
    task_stack,
    transitions,
)

__all__ = ["pg_schema", "task_stack"]  # fixtures, imported for pytest

TENANT = "acme-rmf"


def _rmf_own(booking: str, status: str, robot: str = "tinyRobot1") -> bytes:
    """A task_state_update of a task RMF dispatched itself: no fleetstream label."""
    return orjson.dumps(
        {
            "type": "task_state_update",
            "data": {
                "booking": {
                    "id": booking,
                    "requester": "rmf-dashboard",
                    "unix_millis_earliest_start_time": 0,
                },
                "category": "patrol",
                "status": status,
                "assigned_to": {"group": "tinyRobot", "name": robot},
            },
        }
    )


def test_rmf_tasks_we_did_not_create_become_external_tasks_in_postgres(
    task_stack: TaskStack, pg_schema: str, pg_dsn: str
) -> None:
    s = task_stack
    s.start("tasks", rmf_tenant_id=TENANT, rmf_site_id="s1")
    s.start("sink-postgres", postgres_schema=pg_schema)
    for proc in ("tasks", "sink-postgres"):
        s.wait_started(proc)
    for status in ("queued", "underway", "completed"):
        s.produce("rmf.task_states", "patrol.dispatch-1", _rmf_own("patrol.dispatch-1", status))
    s.produce("rmf.task_states", "patrol.dispatch-2", _rmf_own("patrol.dispatch-2", "underway", "tinyRobot2"))
    s.flush()

    def done(events: list[dict[str, Any]]) -> bool:
        tasks = by_task(events)
        return transitions(tasks.get("patrol.dispatch-1", []))[-1:] == ["SUCCEEDED"] and bool(
            tasks.get("patrol.dispatch-2")
        )

    tasks = by_task(s.read("task.events", until=done, timeout=30))
    first, second = tasks["patrol.dispatch-1"], tasks["patrol.dispatch-2"]
    assert transitions(first) == ["CREATED", "DISPATCHED", "EXECUTING", "SUCCEEDED"]
    assert {e["tenant_id"] for e in first} == {TENANT} and {e["site_id"] for e in first} == {"s1"}
    assert {e["external_id"] for e in first} == {"patrol.dispatch-1"}
    created = first[0]["spec"]
    assert created["category"] == "patrol" and created["labels"]["origin"] == "rmf"
    assert first[0]["reason"] == "created by rmf:rmf-dashboard"
    assert transitions(second) == ["CREATED", "EXECUTING"] and second[-1]["robot_id"] == "tinyRobot2"

    def rows() -> dict[str, tuple[Any, ...]]:
        with connect(pg_dsn, pg_schema) as conn:
            found = conn.execute(
                "SELECT task_id, state, external_id, category FROM tasks WHERE tenant_id = %s", [TENANT]
            ).fetchall()
        return {r[0]: tuple(r[1:]) for r in found}

    deadline = time.monotonic() + 20
    while len(rows()) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert rows() == {
        "patrol.dispatch-1": ("SUCCEEDED", "patrol.dispatch-1", "patrol"),
        "patrol.dispatch-2": ("EXECUTING", "patrol.dispatch-2", "patrol"),
    }


def test_commands_from_the_future_or_past_the_size_limits_are_dead_lettered(task_stack: TaskStack) -> None:
    s = task_stack
    s.start("tasks")
    s.wait_started("tasks")
    t = now_ms()
    s.produce("task.commands", "future", command(TENANT, "future", "CREATE", t + 86_400_000, spec=spec()))
    huge = spec(payload_json=orjson.dumps({"blob": "x" * 40_000}).decode())
    s.produce("task.commands", "huge", command(TENANT, "huge", "CREATE", t, spec=huge))
    giant = spec(payload_json=orjson.dumps({"blob": "x" * 900_000}).decode())  # the 900 KB of issue 15
    s.produce("task.commands", "giant", command(TENANT, "giant", "CREATE", t, spec=giant))
    s.produce("task.commands", "fine", command(TENANT, "fine", "CREATE", t, spec=spec()))
    s.flush()
    dead = {m.key().decode(): {k: v.decode() for k, v in m.headers()} for m in s.read_raw("dlq.tasks", 3)}
    assert dead["future"]["fleet-dlq-error"].endswith("ms in the future (allowed clock skew 5000 ms)")
    assert dead["huge"]["fleet-dlq-error"].startswith("spec.payload_json is 40")
    assert dead["giant"]["fleet-dlq-error"].startswith("task command record is ")
    assert {h["fleet-dlq-topic"] for h in dead.values()} == {s.settings.topic("task.commands")}
    tasks = by_task(s.read("task.events", until=lambda ev: "fine" in by_task(ev), timeout=30))
    assert set(tasks) == {"fine"}
