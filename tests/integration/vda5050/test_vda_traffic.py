"""VDA 5050 vehicles under the real traffic processor as it is today (HOLD / RESUME / REROUTE; its GRANTs
are not wired yet, so the tests of grants produce them themselves): simulated 3.0 vehicles (``fleet
simulate --protocol vda5050``), telemetry, tasks, dispatch and traffic as processes, the bridge releasing
whole routes. Deliveries whose ways cross finish; traffic's HOLDs pause a vehicle and its RESUMEs let it go
on; every message both ways validates against the official 3.0.0 schemas."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from pipelines.simulator.vda5050_mqtt import VdaSimConfig, run_vda5050
from schemas.ids import now_ms, uuid7
from tests.integration.conftest import service_port
from tests.integration.vda5050.support import (
    PASSWORD,
    SITE,
    TENANT,
    TOPICS,
    Observer,
    VdaStack,
    open_vda_stack,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

MANUFACTURER = "fleetstream-sim"


@pytest.fixture
def vda_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[VdaStack]:
    with open_vda_stack(prefixed_settings, kafka_admin, tmp_path, (*TOPICS, "dlq.traffic")) as stack:
        yield stack


def _create(s: VdaStack, task_id: str, pickup: str, dropoff: str) -> None:
    spec = {"category": "delivery", "priority": 5, "pickup_node": pickup, "dropoff_node": dropoff,
            "required_capabilities": [], "deadline": None, "timeout_ms": None, "max_attempts": 3,
            "depends_on": [], "on_dependency_failure": "CANCEL", "fleet_id": None, "robot_id": None,
            "labels": {}, "payload_json": None}  # fmt: skip
    s.produce("task.commands", task_id, {
        "event_id": uuid7(), "tenant_id": TENANT, "site_id": SITE, "occurred_at": now_ms(), "task_id": task_id,
        "command": "CREATE", "idempotency_key": None, "spec": spec, "reason": None, "requested_by": "test",
        "timer": None})  # fmt: skip
    s.flush()


def _sim(s: VdaStack, robots: int) -> VdaSimConfig:
    return VdaSimConfig(
        site_id=SITE,
        tenant_id=TENANT,
        robots=robots,
        rate_hz=2.0,
        seed=11,
        version="3.0.0",
        manufacturer=MANUFACTURER,
        speed_scale=3.0,
        action_ms=500,
        mqtt={
            "host": "127.0.0.1",
            "port": service_port("mosquitto"),
            "username": "fleetstream-sim",
            "password": PASSWORD,
        },
        client_id=f"sim-{s.prefix}",
        kafka_config=s.settings.kafka_client_config(),
        registry_config=s.settings.registry_client_config(),
        topic_prefix=s.prefix,
    )


def test_vda_vehicles_finish_deliveries_under_the_traffic_processors_hold_and_resume(
    vda_stack: VdaStack,
) -> None:
    s = vda_stack
    common = {"commit_interval_s": 0.2}
    s.start("telemetry", **common)
    s.start("timers")
    s.start("tasks", **common)
    s.start("dispatch", **common)
    s.start("traffic", **common)
    s.start("vda5050", **s.bridge_env(commit_interval_s=0.05, vda_majors='["3"]'))
    for proc in ("telemetry", "tasks", "dispatch", "traffic", "vda5050"):
        s.wait_started(proc, timeout=120)
    s.publish_map()
    observer = Observer(["vda5050/v3"]).start()
    stop = threading.Event()
    runner = threading.Thread(target=run_vda5050, args=(_sim(s, 3), stop), name="vda-sim", daemon=True)
    runner.start()
    robots = {f"{MANUFACTURER}-{SITE}-vda-00{i}" for i in (1, 2, 3)}
    try:
        s.wait_for("robot.status", lambda rs: {r["robot_id"] for r in rs if r["status"] == "IDLE"} >= robots,
                   timeout=90)  # fmt: skip
        # two deliveries whose ways share the west corridor: traffic holds one vehicle behind the other
        run = uuid.uuid4().hex[:6]
        tasks = {f"task-{run}-1": ("PICK1", "DROP3"), f"task-{run}-2": ("PICK2", "DROP1")}
        for task_id, (pickup, dropoff) in tasks.items():
            _create(s, task_id, pickup, dropoff)

        def done(events: list[dict[str, Any]]) -> bool:
            return {e["task_id"] for e in events if e["state"] == "SUCCEEDED"} >= set(tasks)

        events = s.wait_for("task.events", done, timeout=300)
        assert [e for e in events if e["task_id"] in tasks and e["state"] in ("FAILED", "CANCELLED")] == []

        decisions = s.read("scheduler.decisions", timeout=10, quiet=1.0)
        holds = [d for d in decisions if d["kind"] == "HOLD" and d["robot_id"] in robots]
        assert holds, "traffic held no vehicle: the scenario lost its conflict"
        # the whole route is released (today's decisions), so a HOLD pauses the vehicle and RESUME goes on
        for robot in {d["robot_id"] for d in holds}:
            serial = robot.removeprefix(f"{MANUFACTURER}-")
            kinds = [a["actionType"] for m in observer.of("instantActions", f"{MANUFACTURER}/{serial}")
                     for a in m["actions"]]  # fmt: skip
            assert "startPause" in kinds, (robot, kinds)
            assert kinds.count("stopPause") == kinds.count("startPause"), (robot, kinds)  # none left paused
        for name, proc in s.procs.items():
            assert proc.poll() is None, f"{name} exited:\n{s.log(name)[-3000:]}"
    finally:
        stop.set()
        runner.join(30)
        observer.stop()
    assert observer.invalid() == []
    assert s.read_raw("dlq.vda5050", 1, timeout=2) == []
