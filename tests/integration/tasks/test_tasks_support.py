"""The tasks pipeline against the real stack: catalog topics under a unique prefix, an Avro producer,
processors as subprocesses (``fleet run tasks|timers|sink-postgres``) and read_committed readers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.settings import CommonSettings
from schemas.catalog import topics as catalog_topics
from schemas.ids import now_ms, uuid7
from schemas.registry import RegistryClient
from tests.integration.processes import ProcessStack, delete_topics_of

PARTITIONS = 2
TOPICS = (
    "task.commands",
    "task.events",
    "task.schedules",
    "scheduler.decisions",
    "robot.telemetry",
    "rmf.task_states",
    "timers",
    "timers.due.tasks",
    "robot.status",
    "robot.registry",
    "site.maps",
    "traffic.conflicts",
    "alerts",
    "audit.log",
    "dlq.tasks",
    "dlq.sink-postgres",
)


class TaskStack(ProcessStack):
    """One test's slice of the stack for the task-side processors (see :class:`ProcessStack`)."""

    def __init__(
        self, settings: CommonSettings, registry: RegistryClient, tmp: Path, admin: AdminClient
    ) -> None:
        super().__init__(settings, registry, tmp, base_env={"FLEET_PARTITIONS": str(PARTITIONS)})
        self.admin = admin


@contextlib.contextmanager
def open_task_stack(
    settings: CommonSettings, admin: AdminClient, tmp: Path, names: Iterable[str] = TOPICS
) -> Iterator[TaskStack]:
    """Catalog topics ``names`` plus the tasks inbox (2 partitions where keyed) under ``settings``' prefix,
    and a :class:`TaskStack` over them. On exit its processes stop and every topic with the prefix in its
    name (Quix's internal ones too) is deleted."""
    prefix = settings.topic_prefix
    specs = catalog_topics(
        prefix,
        partitions={"task": PARTITIONS, "robot": PARTITIONS, "site": PARTITIONS},
        names=tuple(dict.fromkeys(names)),
    )
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs
    ]
    new.append(NewTopic(f"{prefix}tasks.inbox", num_partitions=PARTITIONS, replication_factor=1))
    for fut in admin.create_topics(new).values():
        fut.result(30)
    registry = RegistryClient(**settings.registry_client_config())
    stack = TaskStack(settings, registry, tmp, admin)
    try:
        yield stack
    finally:
        stack.stop_all()
        registry.close()
        delete_topics_of(admin, prefix)


@pytest.fixture
def task_stack(
    prefixed_settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[TaskStack]:
    """The tasks pipeline's topics under this test's prefix (see :func:`open_task_stack`)."""
    with open_task_stack(prefixed_settings, kafka_admin, tmp_path) as stack:
        yield stack


# ------------------------------------------------------------------------------------------- records
def spec(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "category": "delivery",
        "priority": 5,
        "pickup_node": "A",
        "dropoff_node": "B",
        "required_capabilities": [],
        "deadline": None,
        "timeout_ms": None,
        "max_attempts": 3,
        "depends_on": [],
        "on_dependency_failure": "CANCEL",
        "fleet_id": None,
        "robot_id": None,
        "labels": {},
        "payload_json": None,
    }
    base.update(kw)
    return base


def command(tenant: str, task_id: str, command: str, at: int | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "event_id": uuid7(),
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at or now_ms(),
        "task_id": task_id,
        "command": command,
        "idempotency_key": kw.pop("idempotency_key", None),
        "spec": kw.pop("spec", None),
        "reason": kw.pop("reason", None),
        "requested_by": kw.pop("requested_by", "test"),
        "timer": None,
    }


def decision(tenant: str, task_id: str, kind: str, robot: str, at: int | None = None) -> dict[str, Any]:
    return {
        "event_id": uuid7(),
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at or now_ms(),
        "decision_id": uuid7(),
        "kind": kind,
        "robot_id": robot,
        "task_id": task_id,
        "route": [],
        "eta": None,
        "cost": None,
        "reason": None,
        "conflict_id": None,
        "planner": "in_process",
    }


def telemetry(
    tenant: str, robot: str, task_id: str | None, phase: str, seq: int, at: int | None = None
) -> dict[str, Any]:
    return {
        "event_id": uuid7(),
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at or now_ms(),
        "robot_id": robot,
        "fleet_id": "f1",
        "seq": seq,
        "pose": {"x": 1.0, "y": 2.0, "yaw": 0.0, "node_id": None, "map_name": None},
        "battery": 0.8,
        "speed": 0.0,
        "mode": "WORKING",
        "error_code": None,
        "task_id": task_id,
        "task_phase": phase,
        "route": [],
    }


def schedule(tenant: str, schedule_id: str, cron: str, at: int | None = None, **kw: Any) -> dict[str, Any]:
    return {
        "event_id": uuid7(),
        "tenant_id": tenant,
        "site_id": "s1",
        "occurred_at": at or now_ms(),
        "schedule_id": schedule_id,
        "cron": cron,
        "timezone": kw.pop("timezone", "UTC"),
        "template": spec(category="patrol"),
        "enabled": True,
        "misfire_policy": kw.pop("misfire_policy", "FIRE_ONCE"),
    }


def by_task(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        out.setdefault(e["task_id"], []).append(e)
    for evs in out.values():
        evs.sort(key=lambda e: e["seq"])
    return out


def transitions(events: list[dict[str, Any]]) -> list[str]:
    return [e["state"] for e in events if e["kind"] == "TRANSITION"]
