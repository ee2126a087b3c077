"""Timers in wall-clock terms: a task's timeout and a cron fire become visible on task.events within 1 s."""

from __future__ import annotations

import logging
import time
from typing import Any

from schemas.ids import now_ms
from tests.integration.tasks.test_tasks_support import (
    TaskStack,
    command,
    decision,
    schedule,
    spec,
    task_stack,
)
from topologies.tasks import cron_task_id

__all__ = ["task_stack"]

logger = logging.getLogger(__name__)
TENANT = "timing"
BOUND_S = 1.0


def _watch(s: TaskStack, wanted: dict[tuple[str, str], int], timeout: float) -> dict[tuple[str, str], float]:
    """Wall-clock delay (s) between each wanted (task, state)'s due time and its event reaching a reader."""
    consumer = s.reader("task.events")
    seen: dict[tuple[str, str], float] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < len(wanted) and time.monotonic() < deadline:
            msg = consumer.poll(0.05)
            if msg is None or msg.error() or msg.value() is None:
                continue
            event: dict[str, Any] = s.codec("task.events").decode(msg.value())  # type: ignore[assignment]
            key = (event["task_id"], event["state"])
            if key in wanted and key not in seen:
                seen[key] = now_ms() / 1000 - wanted[key] / 1000
    finally:
        consumer.close()
    return seen


def test_timeouts_and_cron_fire_within_a_second(task_stack: TaskStack) -> None:
    s = task_stack
    s.start("tasks")
    s.start("timers")
    s.wait_started("tasks")
    # cron: the next minute boundary, at least 8 s away so that everything is warm
    first = (now_ms() // 60_000 + 1) * 60_000
    if first - now_ms() < 8_000:
        first += 60_000
    s.produce("task.schedules", "every-minute", schedule(TENANT, "every-minute", "* * * * *"))
    wanted = {(cron_task_id(TENANT, "every-minute", first), "CREATED"): first}
    ids = [f"slow-{i}" for i in range(5)]
    for i, tid in enumerate(ids):
        s.produce("task.commands", tid, command(TENANT, tid, "CREATE", spec=spec(timeout_ms=3_000 + 500 * i)))
    s.flush()
    # assign only once created, as dispatch does (it assigns what it saw QUEUED on task.events)
    s.read(
        "task.events", until=lambda evs: len([e for e in evs if e["state"] == "QUEUED"]) == len(ids), quiet=0
    )
    for i, tid in enumerate(ids):
        t = now_ms()
        s.produce("scheduler.decisions", tid, decision(TENANT, tid, "ASSIGN", f"r{i}", t))
        wanted[(tid, "TIMED_OUT")] = t + 3_000 + 500 * i
    s.flush()
    delays = _watch(s, wanted, timeout=(first - now_ms()) / 1000 + 15)
    logger.warning("timer latencies (s): %s", {k[0]: round(v, 3) for k, v in delays.items()})
    assert set(delays) == set(wanted), f"missing: {set(wanted) - set(delays)}"
    assert all(0 <= d < BOUND_S for d in delays.values()), delays
