"""End to end: site.maps, task.events, robot.status of Open-RMF robots (which plan their own traffic:
traffic monitors them) -> `fleet run traffic` -> traffic.conflicts and scheduler.decisions (HOLD, then
RESUME once the winner has passed), with undecodable input dead-lettered to dlq.traffic. Real Kafka and
registry; every topic under this test's prefix. Robots fleetstream coordinates by grants:
tests/integration/loop/test_traffic_loop.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from pipelines.settings import CommonSettings
from schemas.catalog import topics as catalog_topics
from schemas.ids import now_ms
from schemas.registry import RegistryClient
from tests.integration.telemetry.conftest import Stack
from tests.unit.topologies.test_traffic_scenarios import CORRIDOR, EAST, WEST
from tests.unit.topologies.test_traffic_support import SITE, TENANT, S, task
from tests.unit.topologies.test_traffic_support import status as _status

TOPICS = (
    "robot.status",
    "robot.registry",
    "site.maps",
    "task.events",
    "scheduler.decisions",
    "traffic.conflicts",
    "alerts",
    "timers",
    "timers.due.traffic",
    "dlq.traffic",
)
NOT_AVRO = b"\x07definitely not an avro record"


@pytest.fixture
def stack(
    prefixed_settings: CommonSettings, create_topics, kafka_admin: AdminClient, tmp_path: Path
) -> Iterator[Stack]:
    prefix = prefixed_settings.topic_prefix
    # The catalog's partition counts (6 per keyed group), not fewer: with 2, site.maps' key "s1" and the
    # re-keyed statuses' JSON key '"s1"' happened to share a partition and hid a mis-keyed topology.
    for spec in catalog_topics(prefix, names=TOPICS):
        create_topics([spec.name], partitions=spec.partitions, config=spec.config())
    registry = RegistryClient(**prefixed_settings.registry_client_config())
    result = Stack(prefixed_settings, registry, tmp_path)
    yield result
    result.stop_all()
    registry.close()
    # The processor's own repartition / changelog topics carry the prefix in their names.
    internal = [t for t in kafka_admin.list_topics(timeout=10).topics if f"__{prefix}" in t]
    if internal:
        for fut in kafka_admin.delete_topics(internal).values():
            with contextlib.suppress(Exception):
                fut.result(30)


def status(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """A RobotStatus of an Open-RMF robot (rmf-ingest marks them with reason RMF)."""
    return {**_status(*args, **kwargs), "reason": "RMF"}


def _at(record: dict[str, Any], at: int) -> dict[str, Any]:
    """``record`` moved to event time ``at`` (the support factories use a fixed T0)."""
    shift = at - record["occurred_at"]
    moved = {**record, "occurred_at": at}
    if "last_seen_at" in record:
        moved["last_seen_at"] = record["last_seen_at"] + shift
    if "route" in record:
        moved["route"] = [{**w, "eta": w["eta"] + shift} for w in record["route"]]
    return moved


def _summary(records: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["kind"], r.get("robot_id") or r.get("resolved_robot_id")) for r in records]


def test_head_on_in_a_corridor_holds_then_resumes_and_dead_letters_garbage(stack: Stack) -> None:
    started = time.monotonic()
    t0 = now_ms() // 1000 * 1000
    stack.produce("site.maps", SITE, _at(CORRIDOR, t0))
    stack.produce("task.events", "t-hi", _at(task("t-hi", 8), t0))
    stack.produce("task.events", "t-lo", _at(task("t-lo", 3), t0))
    stack.produce("robot.status", "r1", _at(status("r1", "WS", EAST, task_id="t-hi"), t0))
    # Garbage on r2's partition, ahead of r2's status: dead-lettered, and r2's status still counts.
    stack.produce("robot.status", "r2", NOT_AVRO)
    stack.produce("robot.status", "r2", _at(status("r2", "ES", WEST, task_id="t-lo"), t0))
    stack.flush()
    # the crafted statuses stand for robots that obey at once (see test_traffic_support.INSTANT)
    stack.start("traffic", commit_interval_s=0.2, traffic_latency_s=0)

    def log() -> str:
        return stack.log("traffic")[-4000:]

    conflicts = stack.read("traffic.conflicts", until=lambda c: len(c) >= 1, timeout=45)
    assert len(conflicts) == 1, (conflicts, log())
    [c] = conflicts
    assert (c["kind"], c["lane_id"]) == ("EDGE", "W1-W2"), c  # r1 and r2 would meet on W1-W2
    assert c["robot_ids"] == ["r1", "r2"]
    assert (c["resolution"], c["resolved_robot_id"]) == ("HOLD", "r2")
    assert (c["tenant_id"], c["site_id"]) == (TENANT, SITE)

    decisions = stack.read("scheduler.decisions", until=lambda d: len(d) >= 1, timeout=20)
    assert _summary(decisions) == [("HOLD", "r2")], (decisions, log())
    [hold] = decisions
    assert hold["conflict_id"] == c["conflict_id"] and hold["task_id"] == "t-lo"
    assert hold["planner"] == "traffic" and hold["route"] == []

    dead = stack.read("dlq.traffic", until=lambda d: len(d) >= 1, timeout=20, raw=True)
    assert len(dead) == 1, log()
    headers = dict(dead[0].headers() or [])
    assert dead[0].key() == b"r2" and dead[0].value() == NOT_AVRO
    assert headers.get("fleet-dlq-error"), headers
    assert headers["fleet-dlq-topic"] == stack.settings.topic("robot.status").encode()
    assert headers["fleet-dlq-processor"] == b"traffic"

    # r1 has driven through the corridor and stands at EA: r2 may go.
    passed = status("r1", "EA", [], seq=2, task_id="t-hi", state="IDLE")
    stack.produce("robot.status", "r1", _at(passed, t0 + 15 * S))
    stack.flush()
    decisions = stack.read("scheduler.decisions", until=lambda d: len(d) >= 2, timeout=30)
    assert _summary(decisions) == [("HOLD", "r2"), ("RESUME", "r2")], (decisions, log())
    resume = decisions[1]
    assert [w["node_id"] for w in resume["route"]] == [n for n, _ in WEST]
    assert resume["route"][0]["eta"] >= t0 + 15 * S
    assert resume["conflict_id"] == c["conflict_id"]
    assert len(stack.read("traffic.conflicts", timeout=2)) == 1  # no new conflict from r1 passing
    assert stack.read("alerts", timeout=1) == []
    assert time.monotonic() - started < 90
