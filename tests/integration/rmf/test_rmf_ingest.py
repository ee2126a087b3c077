"""`fleet run rmf-ingest` against the real stack: RMF fleet states on rmf.fleet_states become RobotStatus
records on robot.status, once each (re-sends, Kafka re-deliveries and a restart emit nothing new); bad
records go to dlq.rmf-ingest; with `fleet run timers`, the robots of an adapter that falls silent become
OFFLINE once, and come back with their new status."""

from __future__ import annotations

import signal
import time
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import NewTopic

from pipelines.rmf import fleet_state, robot_state
from schemas import catalog, rmf
from schemas.models import RobotStatus
from tests.integration.tasks.test_tasks_support import TaskStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

T0 = time.time() - 60  # seconds: RMF stamps states with its wall clock
STARTED = "is now processing incoming messages"


def send(s: TaskStack, message: dict[str, Any] | bytes, key: str | None = None) -> None:
    if isinstance(message, dict):
        rmf.validate(message)  # only what RMF may send, unless the test sends garbage on purpose
        key = key or message["data"]["name"]
        message = orjson.dumps(message)
    s.produce("rmf.fleet_states", key or "", message)


def wait_started(s: TaskStack, times: int = 1, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while s.log("rmf-ingest").count(STARTED) < times:
        proc = s.procs.get("rmf-ingest")
        assert proc is not None and proc.poll() is None, s.log("rmf-ingest")[-3000:]
        assert time.monotonic() < deadline, s.log("rmf-ingest")[-3000:]
        time.sleep(0.2)


def statuses(s: TaskStack, count: int) -> list[dict[str, Any]]:
    records = s.read("robot.status", until=lambda r: len(r) >= count, timeout=60, quiet=2.0)
    for record in records:
        RobotStatus.model_validate(record)
    return records


def test_fleet_states_become_robot_statuses_once(rmf_stack: TaskStack) -> None:
    s = rmf_stack
    env = {
        "rmf_tenant_id": "acme",
        "rmf_site_id": "s1",
        "rmf_fleet_sites": '{"f2": "s2"}',
        "rmf_min_interval_s": 0,
        "rmf_heartbeat_s": 3600,
        "commit_interval_s": 0.2,
    }
    s.start("rmf-ingest", **env)
    wait_started(s)
    first = fleet_state(
        "f1", {"r1": robot_state("r1", T0), "r2": robot_state("r2", T0, status="charging", battery=0.3)}
    )
    moved = fleet_state(
        "f1",
        {"r1": robot_state("r1", T0 + 1), "r2": robot_state("r2", T0 + 1, status="charging", battery=0.3)},
    )
    moved["data"]["robots"]["r2"]["location"] = first["data"]["robots"]["r2"]["location"]  # r2 stays put
    send(s, first)
    send(s, first)  # re-sent on reconnect
    send(s, fleet_state("f2", {"r3": robot_state("r3", T0, status="working", task_id="patrol.dispatch-1")}))
    send(s, fleet_state("f1", {"r1": robot_state("r1", T0 - 1, status="error")}))  # older: dropped
    send(s, moved)
    send(s, fleet_state("f2", {"r9": robot_state("r9", T0)}), key="wrong")  # key is not the fleet
    send(s, b"{not json", key="f1")
    bad = orjson.dumps(fleet_state("f1", {"r1": robot_state("r1", T0 + 2, battery=1.5)}))
    send(s, bad, key="f1")  # battery out of range: invalid rmf_api_msgs
    s.flush()

    records = statuses(s, 4)
    got = sorted((r["robot_id"], r["occurred_at"], r["status"], r["site_id"]) for r in records)
    ms = int(T0 * 1000)
    assert got == [
        ("r1", ms, "IDLE", "s1"),
        ("r1", ms + 1000, "IDLE", "s1"),
        ("r2", ms, "CHARGING", "s1"),
        ("r3", ms, "WORKING", "s2"),
    ]
    by_robot = {r["robot_id"]: r for r in records}
    assert by_robot["r3"]["task_id"] == "patrol.dispatch-1" and by_robot["r3"]["fleet_id"] == "f2"
    assert by_robot["r2"]["battery"] == 0.3 and all(
        r["reason"] == "RMF" and r["tenant_id"] == "acme" for r in records
    )
    assert by_robot["r1"]["pose"]["map_name"] == "L1" and by_robot["r1"]["speed"] > 0  # moved in 1 s

    dead = s.read_raw("dlq.rmf-ingest", 3)
    reasons = sorted(dict(m.headers())["fleet-dlq-error"].decode() for m in dead)
    assert len(reasons) == 3, reasons
    assert any("does not match the fleet name" in r for r in reasons)
    assert any("not JSON" in r for r in reasons)
    assert any("battery" in r and "maximum" in r for r in reasons)

    # A restart keeps each robot's memory (the state store and its changelog): the latest states sent
    # again change nothing; a real change still comes through, with the status it changed from.
    s.stop("rmf-ingest")
    s.start("rmf-ingest", **env)
    wait_started(s, times=2)
    send(s, moved)
    send(s, fleet_state("f1", {"r2": robot_state("r2", T0 + 2, battery=0.35)}))
    s.flush()
    records = statuses(s, 5)
    assert len(records) == 5, [(r["robot_id"], r["occurred_at"]) for r in records]
    last = records[-1]
    assert (last["robot_id"], last["status"], last["previous_status"]) == ("r2", "IDLE", "CHARGING")
    assert len({r["event_id"] for r in records}) == 5
    assert s.procs["rmf-ingest"].poll() is None
    s.kill("rmf-ingest", signal.SIGTERM)


OFFLINE_TIMEOUT_S = 3.0


def create_due_topic(s: TaskStack) -> None:
    """``timers.due.rmf-ingest`` as ``fleet topics apply`` creates it, with as many partitions as the
    catalog's ``rmf.fleet_states`` (the timers processor may produce to it before rmf-ingest creates it)."""
    spec = catalog.topic("timers.due.rmf-ingest", s.prefix)
    partitions = catalog.topic("rmf.fleet_states").partitions  # as open_task_stack created it
    new = NewTopic(spec.name, num_partitions=partitions, replication_factor=1, config=spec.config())
    for fut in s.admin.create_topics([new]).values():
        fut.result(30)


def status_messages(s: TaskStack, until: Any, timeout: float = 60) -> list[tuple[int, dict[str, Any]]]:
    """(Kafka timestamp, RobotStatus) of every record on robot.status, once ``until(records)`` holds."""
    codec = s.codec("robot.status")
    out: list[tuple[int, dict[str, Any]]] = []
    for msg in s.read("robot.status", until=lambda ms: until([codec.decode(m.value()) for m in ms]),
                      timeout=timeout, quiet=1.0, raw=True):  # fmt: skip
        record = codec.decode(msg.value())
        RobotStatus.model_validate(record)
        out.append((msg.timestamp()[1], record))
    return out


def test_robots_of_a_silent_adapter_become_offline_once_and_come_back(rmf_stack: TaskStack) -> None:
    s = rmf_stack
    create_due_topic(s)
    s.start("timers")
    env = {
        "rmf_tenant_id": "acme",
        "rmf_site_id": "s1",
        "rmf_min_interval_s": 3600,  # a record only when a status changes
        "rmf_heartbeat_s": 3600,
        "rmf_offline_timeout_s": OFFLINE_TIMEOUT_S,
        "commit_interval_s": 0.2,
    }
    s.start("rmf-ingest", **env)
    wait_started(s)

    def report(fleets: dict[str, tuple[str, ...]], seconds: float) -> float:
        """Every fleet's state twice a second for ``seconds``; returns when the last one was sent."""
        end = time.time() + seconds
        while True:
            now = time.time()
            for fleet, robots in fleets.items():
                send(s, fleet_state(fleet, {r: robot_state(r, now) for r in robots}))
            s.flush()
            if now >= end:
                return now
            time.sleep(0.5)

    # Both adapters report for longer than the timeout: their first timers fire and are re-armed.
    f1_last = report({"f1": ("r1", "r2"), "f2": ("r3",)}, OFFLINE_TIMEOUT_S + 2)
    # f1's adapter dies; f2's keeps reporting, well past f1's timeout and a second one.
    report({"f2": ("r3",)}, 3 * OFFLINE_TIMEOUT_S)

    def offline(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [r for r in records if r["status"] == "OFFLINE"]

    messages = status_messages(s, until=lambda rs: len(offline(rs)) >= 2)
    records = [r for _, r in messages]
    went_offline = [(ts, r) for ts, r in messages if r["status"] == "OFFLINE"]
    assert sorted(r["robot_id"] for _, r in went_offline) == ["r1", "r2"], records  # once each; r3 never
    for ts, record in went_offline:
        assert (record["previous_status"], record["reason"], record["fleet_id"]) == ("IDLE", "OFFLINE", "f1")
        assert ts - f1_last * 1000 <= (OFFLINE_TIMEOUT_S + 4) * 1000, (ts, f1_last)
        assert ts - f1_last * 1000 >= OFFLINE_TIMEOUT_S * 1000 - 1000  # not before the timeout
    assert sorted((r["robot_id"], r["status"]) for r in records if r["status"] != "OFFLINE") == [
        ("r1", "IDLE"), ("r2", "IDLE"), ("r3", "IDLE"),
    ]  # fmt: skip

    # f1 comes back: its robots report their new status, from OFFLINE.
    now = time.time()
    send(
        s, fleet_state("f1", {"r1": robot_state("r1", now, status="charging"), "r2": robot_state("r2", now)})
    )
    s.flush()
    since = int(now * 1000)
    messages = status_messages(s, until=lambda rs: len([r for r in rs if r["occurred_at"] >= since]) >= 2)
    back = sorted(
        (r["robot_id"], r["status"], r["previous_status"]) for _, r in messages if r["occurred_at"] >= since
    )
    assert back == [("r1", "CHARGING", "OFFLINE"), ("r2", "IDLE", "OFFLINE")]
    assert s.procs["rmf-ingest"].poll() is None and s.procs["timers"].poll() is None
