"""Replaying the same input topics gives the same outputs (DESIGN.md section 8), against the real stack.

One recorded day in small: the same input records (telemetry of six robots with duplicates, stale samples,
a reboot, battery crossings and bad records; their registrations and site map; task commands, scheduler
decisions and RMF task states), each with the Kafka timestamp it was recorded with (the broker stamps
telemetry itself), are produced twice, under two topic prefixes with different partition counts, and
processed each time from empty state by ``fleet run telemetry`` and ``fleet run tasks``. The
records on every output topic, event ids included, must be the same per key and in the same order per key
(the order across keys depends on the partitioning). No timer service runs, so no timer fires: the armed
timers are compared as outputs.

Where keys do not allow it, there is no promise: a task's inputs that come from a topic keyed otherwise
(robot telemetry reporting task phases) reach the task in the order the processor happens to read them,
and the pose check of a robot's first samples at a site waits for the site directory (docs/records.md).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.settings import CommonSettings
from schemas.catalog import topics as catalog_topics
from schemas.ids import now_ms
from schemas.registry import RegistryClient
from tests.integration.processes import ProcessStack, delete_topics_of

INPUTS = (
    "robot.telemetry",
    "robot.registry",
    "site.maps",
    "task.commands",
    "scheduler.decisions",
    "rmf.task_states",
)
OUTPUTS = (
    "robot.status",
    "alerts",
    "robot.telemetry.1m",
    "timers",
    "robot.telemetry.accepted",
    "task.events",
)
INTERNAL = ("telemetry.inbox", "tasks.inbox", "timers.due.telemetry", "timers.due.tasks", "task.schedules")
DEAD = ("dlq.telemetry", "dlq.tasks")
TENANT, SITE = "acme", "s1"
NS = uuid.UUID("0b3c6f1e-2f43-4a7c-9a57-0a1d3e5c7b90")
BASE = (now_ms() - 3_600_000) // 60_000 * 60_000  # an hour ago: nothing is from the future


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NS, ":".join(map(str, parts))))


def _site_map() -> dict[str, Any]:
    nodes = [(0, 0), (60, 0), (60, 40), (0, 40)]
    return {
        "event_id": _id("map"), "tenant_id": TENANT, "site_id": SITE, "occurred_at": BASE - 60_000, "version": 1,
        "name": "hall", "lanes": [], "zones": [], "chargers": [],
        "nodes": [{"id": f"n{i}", "x": float(x), "y": float(y), "kind": "WAYPOINT", "name": None}
                  for i, (x, y) in enumerate(nodes)],
    }  # fmt: skip


def _registration(robot: str) -> dict[str, Any]:
    return {
        "event_id": _id("reg", robot), "tenant_id": TENANT, "site_id": SITE, "occurred_at": BASE - 30_000,
        "robot_id": robot, "fleet_id": "f1", "name": robot, "model": None, "capabilities": [],
        "max_payload_kg": None, "managed_by": "FLEETSTREAM", "active": True,
    }  # fmt: skip


def _sample(robot: str, seq: int, at: int, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": _id("tel", robot, seq, at), "tenant_id": TENANT, "site_id": SITE, "occurred_at": at,
        "robot_id": robot, "fleet_id": "f1", "seq": seq,
        "pose": {"x": float(seq % 50), "y": 10.0, "yaw": 0.0, "node_id": None, "map_name": "hall"},
        "battery": 0.3, "speed": 0.0, "mode": "IDLE", "error_code": None, "task_id": None, "task_phase": "NONE",
        "route": [], **overrides,
    }  # fmt: skip


def _telemetry() -> list[tuple[str, dict[str, Any] | bytes]]:
    out: list[tuple[str, dict[str, Any] | bytes]] = []
    for r in range(6):
        robot = f"r{r}"
        for seq in range(1, 61):
            at = BASE + seq * 2_000 + r
            mode = ("IDLE", "MOVING", "WORKING", "MOVING")[(seq // 10 + r) % 4]
            battery = max(0.05, 0.6 - seq * 0.01 * (r % 3)) if seq < 45 else 0.9
            out.append(
                (robot, _sample(robot, seq, at, mode=mode, battery=battery, speed=0.8 * (mode == "MOVING")))
            )
            if seq % 17 == 0:
                out.append((robot, _sample(robot, seq, at)))  # a duplicate
                out.append((robot, _sample(robot, seq - 3, at - 6_000)))  # a stale one
        if r == 2:  # r2 reboots: its seq begins again
            for seq in range(1, 6):
                out.append((robot, _sample(robot, seq, BASE + 130_000 + seq * 2_000)))
    out.append(("ghost", _sample("ghost", 1, BASE)))  # unknown robot: a dead letter
    out.append(("r1", _sample("r1", 99, BASE + 200_000, battery=1.7)))  # impossible battery
    out.append(("r3", b"not avro"))
    return out


def _tasks() -> list[tuple[str, str, dict[str, Any] | bytes]]:
    """(topic, key, value) of the task side, in the order a day would have produced them."""
    out: list[tuple[str, str, dict[str, Any] | bytes]] = []
    spec = {
        "category": "delivery", "priority": 5, "pickup_node": "n0", "dropoff_node": "n2",
        "required_capabilities": [], "deadline": None, "timeout_ms": None, "max_attempts": 2, "depends_on": [],
        "on_dependency_failure": "CANCEL", "fleet_id": None, "robot_id": None, "labels": {}, "payload_json": None,
    }  # fmt: skip
    for i in range(10):
        task, at = f"t{i}", BASE + i * 3_000
        out.append(("task.commands", task, {
            "event_id": _id("cmd", task), "tenant_id": TENANT, "site_id": SITE, "occurred_at": at, "task_id": task,
            "command": "CREATE", "idempotency_key": None, "spec": spec, "reason": None, "requested_by": "ops",
            "timer": None,
        }))  # fmt: skip
    for i in range(8):
        task, at = f"t{i}", BASE + 40_000 + i * 1_000
        out.append(("scheduler.decisions", task, {
            "event_id": _id("dec", task), "tenant_id": TENANT, "site_id": SITE, "occurred_at": at,
            "decision_id": _id("d", task), "kind": "ASSIGN", "robot_id": f"r{i % 6}", "task_id": task,
            "route": [], "eta": None, "cost": None, "reason": None, "conflict_id": None, "planner": "in_process",
        }))  # fmt: skip
    rmf = (
        (0, "underway", 50),
        (1, "underway", 51),
        (0, "completed", 52),
        (1, "failed", 53),
        (2, "queued", 54),
    )
    for i, status, second in rmf:
        task = f"t{i}"
        state = {
            "booking": {"id": f"rmf-{task}", "labels": [f"fleetstream_task_id={task}"]},
            "status": status,
        }
        message = {"type": "task_state_update", "data": state, "at": BASE + second * 1_000}
        out.append(("rmf.task_states", task, orjson.dumps(message)))
    out.append(("task.commands", "t9", {
        "event_id": _id("cancel", "t9"), "tenant_id": TENANT, "site_id": SITE, "occurred_at": BASE + 60_000,
        "task_id": "t9", "command": "CANCEL", "idempotency_key": None, "spec": None, "reason": "not needed",
        "requested_by": "ops", "timer": None,
    }))  # fmt: skip
    out.append(("task.commands", "t5", {  # cancel an assigned one
        "event_id": _id("cancel", "t5"), "tenant_id": TENANT, "site_id": SITE, "occurred_at": BASE + 61_000,
        "task_id": "t5", "command": "CANCEL", "idempotency_key": None, "spec": None, "reason": None,
        "requested_by": "ops", "timer": None,
    }))  # fmt: skip
    return out


@contextlib.contextmanager
def _pipeline(
    settings: CommonSettings, admin: AdminClient, tmp: Path, partitions: dict[str, int]
) -> Iterator[ProcessStack]:
    prefix = settings.topic_prefix
    specs = catalog_topics(prefix, partitions=partitions, names=(*INPUTS, *OUTPUTS, *INTERNAL, *DEAD))
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs
    ]
    for fut in admin.create_topics(new).values():
        fut.result(30)
    registry = RegistryClient(**settings.registry_client_config())
    stack = ProcessStack(settings, registry, tmp)
    try:
        yield stack
    finally:
        stack.stop_all()
        registry.close()
        delete_topics_of(admin, prefix)


def _by_key(stack: ProcessStack, name: str) -> dict[str, list[Any]]:
    """Every record of an output topic, decoded, per key, in log order (tombstones as None)."""
    out: dict[str, list[Any]] = defaultdict(list)
    for message in stack.read(name, until=lambda m: bool(m), timeout=15, quiet=2.0, raw=True):
        value = message.value()
        out[message.key().decode()].append(None if value is None else stack.codec(name).decode(value))
    return dict(out)


def _run(
    settings: CommonSettings, admin: AdminClient, tmp: Path, partitions: dict[str, int]
) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    with _pipeline(settings, admin, tmp, partitions) as s:
        site_map = _site_map()
        s.producer.produce(
            s.settings.topic("site.maps"), key=SITE.encode(), value=s.codec("site.maps").encode(site_map),
            timestamp=site_map["occurred_at"],
        )  # fmt: skip
        for r in range(6):
            reg = _registration(f"r{r}")
            s.producer.produce(
                s.settings.topic("robot.registry"), key=f"r{r}".encode(),
                value=s.codec("robot.registry").encode(reg), timestamp=reg["occurred_at"],
            )  # fmt: skip
        for key, value in _telemetry():
            s.produce("robot.telemetry", key, value)
        for topic, key, value in _tasks():
            # as recorded: each record with its own timestamp (an RMF state's is its event time)
            at = orjson.loads(value)["at"] if isinstance(value, bytes) else value["occurred_at"]
            data = value if isinstance(value, bytes) else s.codec(topic).encode(value)
            s.producer.produce(s.settings.topic(topic), key=key.encode(), value=data, timestamp=at)
        s.flush()
        # the whole recorded day is in Kafka before the processors start: they replay it from empty state
        s.start("telemetry", offline_timeout_s=3600, commit_interval_s=0.2)
        s.start("tasks", default_task_timeout_s=3600)
        expected = {"robot.telemetry.accepted": 6 * 60 + 5, "task.events": 35}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            counts = {n: sum(map(len, _by_key(s, n).values())) for n in expected}
            if all(counts[n] >= want for n, want in expected.items()):
                break
            time.sleep(2)
        time.sleep(3)  # the last checkpoints
        result: dict[str, Any] = {name: _by_key(s, name) for name in OUTPUTS}
        dead = s.read("dlq.telemetry", until=lambda m: len(m) >= 3, timeout=20, raw=True)
        result["dlq"] = sorted(
            (m.key().decode(), dict(m.headers())["fleet-dlq-error"].decode()) for m in dead
        )
        return result


@pytest.mark.timeout(600)
def test_the_same_input_topics_processed_twice_give_the_same_outputs(
    settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    first = _run(
        settings.model_copy(update={"topic_prefix": f"d{uuid.uuid4().hex[:6]}.", "state_dir": tmp_path / "a"}),
        kafka_admin, tmp_path / "a", {"robot": 2, "task": 2, "site": 2},
    )  # fmt: skip
    second = _run(
        settings.model_copy(update={"topic_prefix": f"d{uuid.uuid4().hex[:6]}.", "state_dir": tmp_path / "b"}),
        kafka_admin, tmp_path / "b", {"robot": 3, "task": 3, "site": 1},
    )  # fmt: skip
    for name in OUTPUTS:
        assert first[name], f"nothing on {name}"
        assert first[name] == second[name], name
    assert first["dlq"] == second["dlq"] and len(first["dlq"]) == 3
    events = first["task.events"]
    assert [e["state"] for e in events["t0"] if e["kind"] == "TRANSITION"][-1] == "SUCCEEDED"
    assert [e["state"] for e in events["t9"] if e["kind"] == "TRANSITION"][-1] == "CANCELLED"
    accepted = first["robot.telemetry.accepted"]
    assert len(accepted["r2"]) == 65 and [r["seq"] for r in accepted["r2"]][-5:] == [1, 2, 3, 4, 5]  # reboot
    assert {len(accepted[f"r{r}"]) for r in (0, 1, 3, 4, 5)} == {60}  # neither duplicates nor stale ones
