"""The bridge drives virtual AGVs of ``vda-5050-lib`` (npm, VDA 5050 2.0): the library's AgvController and
VirtualAgvAdapter, in a Node.js process, over the local Mosquitto, with traffic grants (order updates the
library checks and stitches itself) and a cancel. The library validates every order and instant action it
receives against its own 2.0 schemas; the observer checks every message both ways against the official
2.1.0 schemas (2.0 vehicles are validated against them).

The package is installed from ``node/package-lock.json`` (pinned) by ``npm ci`` in the fixture."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from tests.integration.vda5050.support import PASSWORD, Observer, VdaStack, mqtt_url, open_vda_stack
from tests.integration.vda5050.test_sdk_vehicles import _route, _telemetry

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """``npm ci`` once per session: vda-5050-lib at the version the lockfile pins."""
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed (Node 20 and npm: apt-get install nodejs npm)"
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, capture_output=True, timeout=300
    )
    return NODE_DIR / "node_modules"


@pytest.fixture
def vda_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[VdaStack]:
    with open_vda_stack(prefixed_settings, kafka_admin, tmp_path) as stack:
        yield stack


def _start_agvs(s: VdaStack, site: dict[str, Any], starts: dict[str, str]) -> subprocess.Popen[bytes]:
    xy = {n["id"]: (n["x"], n["y"]) for n in site["nodes"]}
    config = {
        "brokerUrl": mqtt_url(),
        "password": PASSWORD,
        "manufacturer": "dev",
        "interfaceName": s.interface,
        "mapId": "w1",
        "speed": 2.0,
        "timeLapse": 4,
        "vehicles": [
            {"serial": serial, "node": node, "x": xy[node][0], "y": xy[node][1]}
            for serial, node in starts.items()
        ],
    }
    log = open(s.tmp / "virtual_agvs.log", "ab")  # noqa: SIM115 - owned by the process
    proc = subprocess.Popen(["node", "virtual_agvs.js", json.dumps(config)], cwd=NODE_DIR, stdout=subprocess.PIPE,
                            stderr=log)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().strip()
    assert line == "ready", (
        f"virtual AGVs did not start: {line!r}; {(s.tmp / 'virtual_agvs.log').read_text()}"
    )
    return proc


def test_virtual_agvs_of_vda_5050_lib_follow_grants_finish_a_task_and_obey_a_cancel(
    vda_stack: VdaStack, node_modules: Path
) -> None:
    s = vda_stack
    site = s.publish_map()
    s.start("vda5050", **s.bridge_env(commit_interval_s=0.05, vda_await_grants="true", vda_resend_after_s=2))
    s.wait_started("vda5050", timeout=90)
    observer = Observer([f"{s.interface}/v2"]).start()
    agvs = _start_agvs(s, site, {"agv-05": "P05", "agv-06": "P06"})
    try:
        regs = s.wait_for("robot.registry", lambda rs: {r["robot_id"] for r in rs if r["model"] == "VirtualAGV"}
                          >= {"dev-agv-05", "dev-agv-06"})  # fmt: skip
        assert next(r for r in regs if r["model"])["capabilities"][0] == "vda5050:2.1.0"
        _telemetry(s, "dev-agv-05", lambda r: r["pose"]["node_id"] == "P05")

        # a delivery under grants: the order releases its start, two grants release the rest
        route = _route(site, "P05", "PICK3", "DROP3")
        assign = s.assign("dev-agv-05", route, "task-lib", "PICK3", "DROP3")
        _telemetry(s, "dev-agv-05", lambda r: r["task_phase"] == "STARTED")
        half = len(route) // 2
        plan = f"plan-{uuid.uuid4().hex[:6]}"
        s.decision("GRANT", "dev-agv-05", route, granted=half, plan_id=plan, plan_seq=0)
        _telemetry(s, "dev-agv-05", lambda r: r["pose"]["node_id"] == route[half - 1])
        s.decision(
            "GRANT", "dev-agv-05", route[half - 1 :], granted=len(route) - half + 1, plan_id=plan, plan_seq=1
        )
        done = _telemetry(s, "dev-agv-05", lambda r: r["task_phase"] == "COMPLETED", timeout=120)
        assert done[-1]["pose"]["node_id"] == "DROP3"
        orders = observer.of("order", "dev/agv-05")
        assert [(o["orderId"], o["orderUpdateId"]) for o in orders] == [
            (assign["decision_id"], u) for u in range(3)
        ]
        # each update starts on the previous decision point (for 2.0 vehicles without its actions, see docs)
        for previous, update in itertools.pairwise(orders):
            point = [n for n in previous["nodes"] if n["released"]][-1]
            assert update["nodes"][0] == {**point, "actions": []}
        states = observer.of("state", "dev/agv-05")
        finished = {a["actionType"] for a in states[-1]["actionStates"] if a["actionStatus"] == "FINISHED"}
        assert {"pick", "drop"} <= finished
        assert all(
            not any(e["errorLevel"] for e in m["errors"]) for m in states
        )  # the library rejected nothing

        # a long trip, granted whole, cancelled on the way
        long_route = _route(site, "P06", "DROP5", "PICK1")
        s.assign("dev-agv-06", long_route, "task-lib-2", None, "PICK1")
        _telemetry(s, "dev-agv-06", lambda r: r["task_phase"] == "STARTED")
        s.decision("GRANT", "dev-agv-06", long_route, granted=len(long_route), plan_id="plan-x", plan_seq=0)
        _telemetry(s, "dev-agv-06", lambda r: r["task_phase"] == "IN_PROGRESS" and r["speed"] > 0)
        s.decision("UNASSIGN", "dev-agv-06", [], task_id="task-lib-2")
        stopped = _telemetry(s, "dev-agv-06", lambda r: r["task_id"] is None and r["route"] == [] and r["speed"] == 0,
                             timeout=60)  # fmt: skip
        assert stopped[-1]["pose"]["node_id"] != "PICK1"
        cancels = [a for m in observer.of("instantActions", "dev/agv-06") for a in m["actions"]
                   if a["actionType"] == "cancelOrder"]  # fmt: skip
        assert len(cancels) >= 1
        last = observer.of("state", "dev/agv-06")[-1]
        assert any(a["actionId"] == cancels[0]["actionId"] and a["actionStatus"] == "FINISHED"
                   for a in last["actionStates"])  # fmt: skip
    finally:
        agvs.send_signal(signal.SIGTERM)
        agvs.wait(30)
        observer.stop()
    assert observer.invalid() == []
    assert s.read_raw("dlq.vda5050", 1, timeout=2) == []
