"""VDA 5050 vehicles (vda5050-sdk) in the closed loop: tasks created on task.commands are dispatched to
them by the real processors (telemetry, timers, tasks, dispatch) through the bridge, and finished; a
vehicle that drops off mid-task goes OFFLINE through its last will (not the telemetry timeout) and its
task is re-queued and finished by the other vehicle.

agv-03 runs alone in a process (``python -m tests.integration.vda5050.sdk``) that the test SIGKILLs: its
TCP connection ends without a DISCONNECT, and Mosquitto publishes its last will (CONNECTIONBROKEN)."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from schemas.ids import now_ms, uuid7
from tests.integration.vda5050.sdk import SdkFleet, SdkVehicle
from tests.integration.vda5050.support import (
    SITE,
    TENANT,
    Observer,
    VdaStack,
    clear_retained,
    open_vda_stack,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

SERIALS = ("agv-03", "agv-04")


@pytest.fixture
def vda_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[VdaStack]:
    for serial in SERIALS:
        clear_retained([f"uagv/v2/dev/{serial}/{t}" for t in ("connection", "factsheet")], f"dev/{serial}")
    with open_vda_stack(prefixed_settings, kafka_admin, tmp_path) as stack:
        stack.interface = "uagv"
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


def _states(events: list[dict[str, Any]], task_id: str) -> list[tuple[str, str | None]]:
    mine = sorted(
        (e for e in events if e["task_id"] == task_id and e["kind"] == "TRANSITION"), key=lambda e: e["seq"]
    )
    return [(e["state"], e["robot_id"]) for e in mine]


def test_vda_vehicles_finish_dispatched_tasks_and_a_dropped_vehicle_goes_offline_by_its_last_will(
    vda_stack: VdaStack,
) -> None:
    s = vda_stack
    site = s.publish_map()
    xy = {n["id"]: (n["x"], n["y"]) for n in site["nodes"]}
    common = {"commit_interval_s": 0.2}
    s.start("telemetry", offline_timeout_s=300, **common)  # only the last will can make a robot OFFLINE soon
    s.start("timers")
    s.start("tasks", **common)
    s.start("dispatch", **common)
    s.start("vda5050", **s.bridge_env(commit_interval_s=0.05, vda_resend_after_s=1.5))
    for proc in ("telemetry", "tasks", "dispatch", "vda5050"):
        s.wait_started(proc, timeout=120)
    observer = Observer(["uagv/v2"]).start()

    # agv-03 stands next to the pickup and drives slowly; agv-04 waits far away
    dropper = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.vda5050.sdk", "agv-03", "P01", *map(str, xy["P01"]), "1.5"],
        stdout=open(s.tmp / "agv-03.log", "ab"),  # noqa: SIM115 - owned by the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    fleet = SdkFleet([SdkVehicle("agv-04", "P30", xy["P30"], node_delay=0.1)]).start()
    try:
        s.wait_for("robot.status", lambda rs: {r["robot_id"] for r in rs if r["status"] == "IDLE"}
                   >= {"dev-agv-03", "dev-agv-04"}, timeout=90)  # fmt: skip

        # a task: dispatched to the nearer vehicle, which starts it; then that vehicle drops off the network
        task = f"task-{uuid.uuid4().hex[:6]}"
        _create(s, task, "PICK1", "DROP1")
        s.wait_for(
            "robot.telemetry",
            lambda rs: any(
                r["robot_id"] == "dev-agv-03" and r["task_id"] == task and r["task_phase"] == "IN_PROGRESS"
                for r in rs
            ),
            timeout=90,
        )
        dropper.send_signal(signal.SIGKILL)
        dropper.wait(10)
        killed_at = now_ms()
        statuses = s.wait_for("robot.status", lambda rs: any(r["robot_id"] == "dev-agv-03" and r["status"] == "OFFLINE"
                                                             for r in rs), timeout=30)  # fmt: skip
        offline = next(r for r in statuses if r["robot_id"] == "dev-agv-03" and r["status"] == "OFFLINE")
        assert offline["reason"] == "OFFLINE" and offline["occurred_at"] - killed_at < 5000
        wills = observer.of("connection", "dev/agv-03")
        assert wills[-1]["connectionState"] == "CONNECTIONBROKEN"  # from the broker, the vehicle's last will

        # dispatch took the task back; the other vehicle finishes it
        events = s.wait_for("task.events", lambda es: any(e["task_id"] == task and e["state"] == "SUCCEEDED"
                                                          for e in es), timeout=180)  # fmt: skip
        states = _states(events, task)
        assigned = [robot for state, robot in states if state == "ASSIGNED"]
        assert assigned == ["dev-agv-03", "dev-agv-04"], states
        assert ("QUEUED", None) in states[states.index(("ASSIGNED", "dev-agv-03")) :], states
        assert states[-1][0] == "SUCCEEDED"

        # a second task goes straight to the vehicle that is left, and is finished
        second = f"task-{uuid.uuid4().hex[:6]}"
        _create(s, second, "PICK2", "DROP2")
        events = s.wait_for("task.events", lambda es: any(e["task_id"] == second and e["state"] == "SUCCEEDED"
                                                          for e in es), timeout=120)  # fmt: skip
        assert [r for st, r in _states(events, second) if st == "ASSIGNED"] == ["dev-agv-04"]
        for name, proc in s.procs.items():
            assert proc.poll() is None, f"{name} exited:\n{s.log(name)[-3000:]}"
    finally:
        if dropper.poll() is None:
            dropper.kill()
        fleet.stop()
        observer.stop()
    assert observer.invalid() == []
    assert s.read_raw("dlq.vda5050", 1, timeout=2) == []
