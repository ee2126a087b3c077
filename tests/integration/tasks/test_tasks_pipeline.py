"""Commands -> task.events -> Postgres rows, through the real processors (``fleet run tasks|timers|sink-postgres``)."""

from __future__ import annotations

import time
from typing import Any

from schemas.ids import now_ms
from sinks.postgres import connect
from tests.integration.sinks.test_postgres_support import pg_schema, snapshot
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

__all__ = ["pg_schema", "task_stack"]  # fixtures, imported for pytest

TENANT = "acme"


def _rmf(task_id: str, status: str) -> bytes:
    import orjson

    return orjson.dumps(
        {
            "type": "task_state_update",
            "data": {
                "booking": {"id": f"rmf-{task_id}", "labels": [f"fleetstream_task_id={task_id}"]},
                "status": status,
            },
        }
    )


def _wait(s: TaskStack, wanted: dict[str, str]) -> None:
    """Until every task of ``wanted`` has reached its state."""

    def reached(events: list[dict[str, Any]]) -> bool:
        tasks = by_task(events)
        return all(state in transitions(tasks.get(tid, [])) for tid, state in wanted.items())

    s.read("task.events", until=reached, timeout=30, quiet=0)


def test_commands_become_events_and_rows(task_stack: TaskStack, pg_schema: str, pg_dsn: str) -> None:
    s = task_stack
    s.start("tasks", retry_backoff_base_s=0.3)
    s.start("timers")
    s.start("sink-postgres", postgres_schema=pg_schema)
    for proc in ("tasks", "sink-postgres"):
        s.wait_started(proc)
    t = now_ms()
    # a: the happy path through telemetry;  b: through RMF;  c: cancelled;  d: depends on a;
    # e: fails once, retries, succeeds;  f: times out;  g: unknown dependency;  a again: duplicate
    for tid, kw in [
        ("a", {}),
        ("b", {}),
        ("c", {}),
        ("e", {"max_attempts": 2}),
        ("f", {"timeout_ms": 1_500}),
    ]:
        s.produce("task.commands", tid, command(TENANT, tid, "CREATE", t, spec=spec(**kw)))
    s.produce("task.commands", "g", command(TENANT, "g", "CREATE", t, spec=spec(depends_on=["nope"])))
    s.produce("task.commands", "bad", command(TENANT, "bad", "CREATE", t))  # no spec: a dead letter
    s.flush()
    # Inputs of different topics reach the inbox in no fixed order, so each phase waits for the events
    # the next one builds on, as the real producers do (dispatch assigns what it saw QUEUED, ...).
    _wait(s, {tid: "QUEUED" for tid in "abcef"})
    s.produce("task.commands", "d", command(TENANT, "d", "CREATE", now_ms(), spec=spec(depends_on=["a"])))
    s.produce("task.commands", "a", command(TENANT, "a", "CREATE", now_ms(), spec=spec()))
    s.produce("task.commands", "c", command(TENANT, "c", "CANCEL", now_ms(), reason="not needed"))
    s.flush()
    _wait(s, {"d": "WAITING", "c": "CANCELLED"})
    for i, tid in enumerate("abef"):
        s.produce("scheduler.decisions", tid, decision(TENANT, tid, "ASSIGN", f"r{i}", now_ms()))
    s.flush()
    _wait(s, {tid: "ASSIGNED" for tid in "abef"})
    t = now_ms()
    s.produce("robot.telemetry", "r0", telemetry(TENANT, "r0", "a", "STARTED", 1, t))
    s.produce("robot.telemetry", "r0", telemetry(TENANT, "r0", "a", "IN_PROGRESS", 2, t + 1))
    s.produce("robot.telemetry", "r0", telemetry(TENANT, "r0", "a", "COMPLETED", 3, t + 2))
    s.produce("rmf.task_states", "rmf-b", _rmf("b", "underway"))
    s.produce("rmf.task_states", "rmf-b", _rmf("b", "completed"))
    s.produce("robot.telemetry", "r2", telemetry(TENANT, "r2", "e", "FAILED", 1, t))
    s.flush()

    def done(events: list[dict[str, Any]]) -> bool:
        tasks = by_task(events)
        return (
            "e" in tasks
            and transitions(tasks["e"])[-1:] == ["QUEUED"]
            and "TIMED_OUT" in transitions(tasks.get("f", []))
            and "QUEUED" in transitions(tasks.get("d", []))
        )

    events = s.read("task.events", until=done, timeout=30)
    tasks = by_task(events)
    assert transitions(tasks["a"]) == ["CREATED", "QUEUED", "ASSIGNED", "EXECUTING", "SUCCEEDED"]
    assert [e["kind"] for e in tasks["a"]].count("DUPLICATE") == 1
    assert transitions(tasks["b"]) == ["CREATED", "QUEUED", "ASSIGNED", "EXECUTING", "SUCCEEDED"]
    assert tasks["b"][-1]["external_id"] == "rmf-b"
    assert transitions(tasks["c"]) == ["CREATED", "QUEUED", "CANCELLED"]
    assert transitions(tasks["d"]) == ["CREATED", "WAITING", "QUEUED"]
    assert transitions(tasks["e"]) == ["CREATED", "QUEUED", "ASSIGNED", "RETRYING", "QUEUED"]
    assert transitions(tasks["f"]) == ["CREATED", "QUEUED", "ASSIGNED", "TIMED_OUT"]
    assert [(e["kind"], e["reason"]) for e in tasks["g"]] == [("REJECTED", "dependency nope is unknown")]
    for tid, evs in tasks.items():
        assert [e["seq"] for e in evs] == list(range(1, len(evs) + 1)), tid

    # The facts in Postgres: one row per created task with its last state, every event once.
    def rows() -> dict[str, Any]:
        with connect(pg_dsn, pg_schema) as conn:
            return {
                "tasks": dict(
                    conn.execute("SELECT task_id, state FROM tasks WHERE tenant_id = %s", [TENANT]).fetchall()
                ),
                "events": conn.execute(
                    "SELECT count(*) FROM task_events WHERE tenant_id = %s", [TENANT]
                ).fetchone()[0],  # type: ignore[index]
            }

    deadline = time.monotonic() + 20
    while rows()["events"] < len(events) and time.monotonic() < deadline:
        time.sleep(0.5)
    got = rows()
    assert got["events"] == len(events)
    assert got["tasks"] == {tid: transitions(evs)[-1] for tid, evs in tasks.items() if transitions(evs)}
    assert snapshot(pg_dsn, pg_schema, TENANT)["tenants"]
    (dead,) = s.read_raw("dlq.tasks", 1)
    headers = {k: v.decode() for k, v in dead.headers()}
    assert dead.key() == b"bad" and headers["fleet-dlq-error"] == "CREATE without a spec"
    assert headers["fleet-dlq-topic"] == s.settings.topic("task.commands") and "bad" not in tasks
