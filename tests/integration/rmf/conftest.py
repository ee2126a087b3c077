"""Fixtures of the Open-RMF tests against the real stack: every topic the RMF loop touches under a unique
prefix, processors as subprocesses (``fleet run ...``, the TaskStack helper of the tasks tests), and RMF
fleet adapters running in a thread of their own."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.rmf import FleetAdapterSim
from pipelines.settings import CommonSettings
from tests.integration.tasks.test_tasks_support import TaskStack, open_task_stack

RMF_LOOP_TOPICS = (
    "task.commands",
    "task.events",
    "task.schedules",
    "scheduler.decisions",
    "robot.telemetry",
    "robot.status",
    "robot.registry",
    "site.maps",
    "traffic.conflicts",
    "alerts",
    "audit.log",
    "timers",
    "timers.due.tasks",
    "rmf.fleet_states",
    "rmf.task_states",
    "rmf.logs",
    "dlq.tasks",
    "dlq.dispatch",
    "dlq.gateway",
    "dlq.sink-postgres",
    "dlq.sink-rmf",
    "dlq.rmf-ingest",
)


@pytest.fixture
def rmf_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[TaskStack]:
    """The RMF loop's topics under this test's prefix (see :func:`open_task_stack`)."""
    with open_task_stack(prefixed_settings, kafka_admin, tmp_path, RMF_LOOP_TOPICS) as stack:
        yield stack


class Adapters:
    """RMF fleet-adapter clients (:class:`FleetAdapterSim`) on an event loop in a thread of their own."""

    def __init__(self, adapters: list[FleetAdapterSim]) -> None:
        self.adapters = adapters
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="rmf-adapters", daemon=True)
        self._done = threading.Event()

    def _run(self) -> None:
        async def main() -> None:
            await asyncio.gather(*(a.run() for a in self.adapters))

        try:
            self.loop.run_until_complete(main())
        finally:
            self._done.set()

    def start(self) -> Adapters:
        self._thread.start()
        return self

    def call(self, fn: Callable[[FleetAdapterSim], Any]) -> None:
        """Run ``fn(adapter)`` for every adapter on their loop, and wait for it."""

        async def each() -> None:
            for adapter in self.adapters:
                fn(adapter)

        asyncio.run_coroutine_threadsafe(each(), self.loop).result(10)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop after sending what is buffered (or give up after ``timeout``)."""
        if self._thread.is_alive():
            self.call(lambda a: a.stop())
            deadline = time.monotonic() + timeout
            while not self._done.is_set() and time.monotonic() < deadline:
                time.sleep(0.1)
        self._thread.join(5)


@pytest.fixture
def adapters() -> Iterator[Callable[..., Adapters]]:
    """adapters(server_uri, fleets, **FleetAdapterSim options) -> started Adapters, stopped afterwards."""
    started: list[Adapters] = []

    def _start(server_uri: str, fleets: dict[str, tuple[str, ...]], **kw: Any) -> Adapters:
        running = Adapters(
            [FleetAdapterSim(server_uri, f, robots=r, **kw) for f, r in fleets.items()]
        ).start()
        started.append(running)
        return running

    yield _start
    for running in started:
        running.stop(timeout=5)
