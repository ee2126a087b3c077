"""``fleet simulate --protocol vda5050`` against the bridge over the real broker: simulated robots as VDA
5050 3.0 vehicles register, report, and carry out a delivery; every message both ways validates against the
official 3.0.0 schemas."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from pipelines.simulator.vda5050_mqtt import run_vda5050
from tests.integration.vda5050.support import (
    SITE,
    Observer,
    VdaStack,
    open_vda_stack,
    sim_config,
    site_map,
)
from tests.integration.vda5050.test_sdk_vehicles import _route, _telemetry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def vda_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[VdaStack]:
    with open_vda_stack(prefixed_settings, kafka_admin, tmp_path) as stack:
        yield stack


def test_simulated_vda_3_vehicles_are_driven_by_the_bridge(vda_stack: VdaStack) -> None:
    s = vda_stack
    s.start("vda5050", **s.bridge_env(commit_interval_s=0.05, vda_majors='["3"]'))
    s.wait_started("vda5050", timeout=90)
    observer = Observer(["vda5050/v3"]).start()
    manufacturer = "fleetstream-sim"
    config = sim_config(s, 2, seed=3, speed_scale=4.0)
    stop = threading.Event()
    runner = threading.Thread(target=run_vda5050, args=(config, stop), name="vda-sim", daemon=True)
    runner.start()
    robot = f"{manufacturer}-{SITE}-vda-001"
    try:
        regs = s.wait_for("robot.registry", lambda rs: any(r["robot_id"] == robot and r["model"] for r in rs))
        assert next(r for r in regs if r["model"])["capabilities"][0] == "vda5050:3.0.0"
        start = _telemetry(s, robot, lambda r: r["pose"]["node_id"] is not None)[-1]["pose"]["node_id"]
        site = site_map()
        s.assign(robot, _route(site, start, "PICK2", "DROP4"), "sim-task", "PICK2", "DROP4")
        done = _telemetry(s, robot, lambda r: r["task_phase"] == "COMPLETED", timeout=120)
        assert done[-1]["pose"]["node_id"] == "DROP4"
        states = observer.of("state", f"{manufacturer}/{SITE}-vda-001")
        finished = {a["actionType"] for a in states[-1]["actionStates"] if a["actionStatus"] == "FINISHED"}
        assert {"pick", "drop"} <= finished and "instantActionStates" in states[-1]
    finally:
        stop.set()
        runner.join(30)
        observer.stop()
    assert observer.invalid() == []
    assert s.read_raw("dlq.vda5050", 1, timeout=2) == []
