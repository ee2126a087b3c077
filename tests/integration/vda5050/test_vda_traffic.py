"""VDA 5050 vehicles under the real traffic processor's grants: simulated 3.0 vehicles (``fleet simulate
--protocol vda5050``), telemetry, tasks, dispatch and traffic as processes, the bridge releasing what
traffic grants as each order's base (the rest of the route is the horizon) and extending it by order
updates. Deliveries whose ways cross finish; every message both ways validates against the official
3.0.0 schemas."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from pipelines.simulator.vda5050_mqtt import run_vda5050
from tests.integration.vda5050.support import (
    SITE,
    TOPICS,
    Observer,
    VdaStack,
    create_delivery,
    open_vda_stack,
    sim_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

MANUFACTURER = "fleetstream-sim"


@pytest.fixture
def vda_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[VdaStack]:
    with open_vda_stack(
        prefixed_settings, kafka_admin, tmp_path, (*TOPICS, "dlq.traffic", "timers.due.traffic")
    ) as stack:
        yield stack


def test_vda_vehicles_finish_deliveries_driving_on_the_traffic_processors_grants(
    vda_stack: VdaStack,
) -> None:
    s = vda_stack
    common = {"commit_interval_s": 0.2}
    s.start("telemetry", **common)
    s.start("timers")
    s.start("tasks", **common)
    s.start("dispatch", **common)
    s.start("traffic", **common)
    s.start("vda5050", **s.bridge_env(commit_interval_s=0.05, vda_majors='["3"]', vda_await_grants="true"))
    for proc in ("telemetry", "tasks", "dispatch", "traffic", "vda5050"):
        s.wait_started(proc, timeout=120)
    s.publish_map()
    observer = Observer(["vda5050/v3"]).start()
    stop = threading.Event()
    runner = threading.Thread(
        target=run_vda5050,
        args=(sim_config(s, 3, seed=11, speed_scale=3.0), stop),
        name="vda-sim",
        daemon=True,
    )
    runner.start()
    robots = {f"{MANUFACTURER}-{SITE}-vda-00{i}" for i in (1, 2, 3)}
    try:
        s.wait_for("robot.status", lambda rs: {r["robot_id"] for r in rs if r["status"] == "IDLE"} >= robots,
                   timeout=90)  # fmt: skip
        # two deliveries whose ways share the west corridor: traffic holds one vehicle behind the other
        run = uuid.uuid4().hex[:6]
        tasks = {f"task-{run}-1": ("PICK1", "DROP3"), f"task-{run}-2": ("PICK2", "DROP1")}
        for task_id, (pickup, dropoff) in tasks.items():
            create_delivery(s, task_id, pickup, dropoff)

        def done(events: list[dict[str, Any]]) -> bool:
            return {e["task_id"] for e in events if e["state"] == "SUCCEEDED"} >= set(tasks)

        events = s.wait_for("task.events", done, timeout=300)
        assert [e for e in events if e["task_id"] in tasks and e["state"] in ("FAILED", "CANCELLED")] == []

        workers = {e["robot_id"] for e in events if e["task_id"] in tasks and e["state"] == "SUCCEEDED"}
        decisions = s.read("scheduler.decisions", timeout=10, quiet=1.0)
        granted = {d["robot_id"] for d in decisions if d["kind"] == "GRANT"}
        assert workers <= granted, (workers, granted)
        assert not [d for d in decisions if d["kind"] == "HOLD" and d["robot_id"] in robots]
        for robot in workers:  # its orders released the start only and grew by order updates as granted
            serial = robot.removeprefix(f"{MANUFACTURER}-")
            orders = observer.of("order", f"{MANUFACTURER}/{serial}")
            assert any(o["orderUpdateId"] > 0 for o in orders), (robot, orders)
            assert all(
                any(not n["released"] for n in o["nodes"]) for o in orders if o["orderUpdateId"] == 0
            ), (robot, orders)  # a first order is not released whole before traffic granted it
        for name, proc in s.procs.items():
            assert proc.poll() is None, f"{name} exited:\n{s.log(name)[-3000:]}"
    finally:
        stop.set()
        runner.join(30)
        observer.stop()
    assert observer.invalid() == []
    assert [dict(m.headers() or []) for m in s.read_raw("dlq.vda5050", 1, timeout=2)] == []
