"""End to end: robot.registry, robot.status, site.maps, task.events -> `fleet run dispatch` ->
scheduler.decisions (ASSIGN, UNASSIGN on OFFLINE, re-ASSIGN), surviving a SIGKILL of the processor."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.settings import CommonSettings
from schemas.catalog import topics as catalog_topics
from schemas.ids import now_ms
from schemas.registry import RegistryClient
from tests.integration.telemetry.conftest import Stack

TENANT = "acme"
SITE = "s1"
TOPICS = (
    "robot.status", "task.events", "site.maps", "robot.registry", "scheduler.decisions", "dlq.dispatch",
    "dispatch.inbox",
)  # fmt: skip


@pytest.fixture
def stack(prefixed_settings: CommonSettings, create_topics, tmp_path: Path) -> Iterator[Stack]:
    prefix = prefixed_settings.topic_prefix
    for spec in catalog_topics(prefix, partitions={"robot": 2, "site": 2, "task": 2}, names=TOPICS):
        create_topics([spec.name], partitions=spec.partitions, config=spec.config())
    registry = RegistryClient(**prefixed_settings.registry_client_config())
    result = Stack(prefixed_settings, registry, tmp_path)
    yield result
    result.stop_all()
    registry.close()


def _base() -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "tenant_id": TENANT, "site_id": SITE, "occurred_at": now_ms()}


def site_map() -> dict[str, Any]:
    return {
        **_base(), "version": 1, "name": "line",
        "nodes": [{"id": f"N{i}", "x": 10.0 * i, "y": 0.0, "kind": "WAYPOINT", "name": None} for i in range(6)],
        "lanes": [{"id": f"L{i}", "from_node": f"N{i}", "to_node": f"N{i + 1}", "bidirectional": True,
                   "speed_limit": None} for i in range(5)],
        "zones": [], "chargers": [],
    }  # fmt: skip


def registration(robot_id: str) -> dict[str, Any]:
    return {
        **_base(), "robot_id": robot_id, "fleet_id": "f1", "name": robot_id, "model": None, "capabilities": [],
        "max_payload_kg": None, "managed_by": "FLEETSTREAM", "active": True,
    }  # fmt: skip


def status(robot_id: str, node: str, state: str = "IDLE", seq: int = 1) -> dict[str, Any]:
    at = now_ms()
    return {
        **_base(), "occurred_at": at, "robot_id": robot_id, "fleet_id": "f1", "status": state,
        "previous_status": None, "battery": 0.9, "speed": 0.0, "task_id": None, "route": [], "seq": seq,
        "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": node, "map_name": None}, "last_seen_at": at,
        "reason": "CHANGE",
    }  # fmt: skip


def task_event(
    task_id: str, seq: int, state: str, spec: dict | None = None, robot: str | None = None
) -> dict:
    return {
        **_base(), "task_id": task_id, "seq": seq, "kind": "TRANSITION", "state": state, "previous_state": None,
        "reason": None, "robot_id": robot, "attempt": 0, "spec": spec, "external_id": None, "causation_id": None,
    }  # fmt: skip


SPEC = {
    "category": "delivery", "priority": 5, "pickup_node": "N2", "dropoff_node": "N4", "required_capabilities": [],
    "deadline": None, "timeout_ms": None, "max_attempts": 3, "depends_on": [], "on_dependency_failure": "CANCEL",
    "fleet_id": None, "robot_id": None, "labels": {}, "payload_json": None,
}  # fmt: skip


def kinds(decisions: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    return [(d["kind"], d["task_id"], d["robot_id"]) for d in decisions]


def test_dispatch_processor_assigns_requeues_and_survives_a_kill(stack: Stack) -> None:
    stack.produce("site.maps", SITE, site_map())
    for robot, node in (("r1", "N1"), ("r2", "N5")):
        stack.produce("robot.registry", robot, registration(robot))
        stack.produce("robot.status", robot, status(robot, node))
    stack.produce("task.events", "t1", task_event("t1", 1, "CREATED", SPEC))
    stack.produce("task.events", "t1", task_event("t1", 2, "QUEUED"))
    stack.flush()
    stack.start("dispatch", commit_interval_s=0.2)

    decisions = stack.read("scheduler.decisions", until=lambda d: len(d) >= 1, timeout=60)
    assert kinds(decisions) == [("ASSIGN", "t1", "r1")], stack.log("dispatch")[-3000:]
    assert [w["node_id"] for w in decisions[0]["route"]] == ["N1", "N2", "N3", "N4"]

    stack.kill("dispatch")  # SIGKILL: the site is rebuilt from its state on restart
    stack.produce("task.events", "t1", task_event("t1", 3, "ASSIGNED", robot="r1"))
    stack.produce("robot.status", "r1", status("r1", "N2", "OFFLINE", seq=2))
    stack.flush()
    stack.start("dispatch", commit_interval_s=0.2)
    decisions = stack.read("scheduler.decisions", until=lambda d: len(d) >= 2, timeout=60)
    assert kinds(decisions) == [("ASSIGN", "t1", "r1"), ("UNASSIGN", "t1", "r1")], stack.log("dispatch")[
        -3000:
    ]

    stack.produce("task.events", "t1", task_event("t1", 4, "QUEUED"))
    stack.flush()
    decisions = stack.read("scheduler.decisions", until=lambda d: len(d) >= 3, timeout=60)
    assert kinds(decisions) == [("ASSIGN", "t1", "r1"), ("UNASSIGN", "t1", "r1"), ("ASSIGN", "t1", "r2")]
    assert len({d["decision_id"] for d in decisions}) == 3
    assert all(d["tenant_id"] == TENANT and d["site_id"] == SITE for d in decisions)
