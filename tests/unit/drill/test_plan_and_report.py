"""What each drill injects, and how the runner reports a run (without running one)."""

from __future__ import annotations

import time

from pipelines.drill import PLANS, Check, DrillReport, FaultRecord, plan
from pipelines.drill.faults import (
    BrokerBounce,
    BrokerKill,
    ProcessorKill,
    ProcessorStall,
    ScaleIn,
    ScaleOut,
    ServiceOutage,
)
from pipelines.drill.plan import SINKS, TOPOLOGIES
from pipelines.drill.stores import latest_status_by_seq, latest_status_by_time, latest_transitions


def test_the_full_drill_injects_every_fault_of_the_issue() -> None:
    full = plan("full")
    faults = full.faults
    kills = [f for f in faults if isinstance(f, ProcessorKill)]
    one_by_one = {(f.processor, f.index) for f in kills if f.count == 1}
    every_instance = {(p, i) for p, n in full.instances.items() for i in range(1, n + 1)}
    assert one_by_one == every_instance, "each instance of each processor is killed -9 once"
    assert {f.processor for f in kills if f.count == 2} == set(TOPOLOGIES), "both instances at once"
    assert all(full.instances[p] == 2 for p in TOPOLOGIES)
    roles = [f.role for f in faults if isinstance(f, BrokerKill)]
    assert "leader" in roles and "controller" in roles
    assert any(isinstance(f, BrokerBounce) for f in faults)
    outages = {f.service: f.seconds for f in faults if isinstance(f, ServiceOutage)}
    assert outages == {"postgres": 30.0, "redis": 30.0, "influxdb": 30.0}
    assert any(isinstance(f, ProcessorStall) for f in faults)
    assert any(isinstance(f, ScaleOut) for f in faults) and any(isinstance(f, ScaleIn) for f in faults)
    assert full.kafka_tools


def test_the_short_drill_is_one_processor_kill_one_broker_kill_and_postgres_down_15s() -> None:
    short = plan("short")
    kinds = [type(f) for f in short.faults]
    assert kinds == [ProcessorKill, BrokerKill, ServiceOutage]
    assert short.faults[2].service == "postgres" and short.faults[2].seconds == 15.0
    assert all(short.instances[p] == 2 for p in TOPOLOGIES) and all(short.instances[s] == 1 for s in SINKS)


def test_the_rebalance_drill_adds_and_removes_an_instance_of_each_topology() -> None:
    faults = plan("rebalance").faults
    assert {f.processor for f in faults if isinstance(f, ScaleOut)} == set(TOPOLOGIES)
    assert {f.processor for f in faults if isinstance(f, ScaleIn)} == set(TOPOLOGIES)
    assert set(PLANS) == {"short", "rebalance", "full"}


def test_report_gives_recovery_p50_and_max_per_kind_and_fails_on_any_failed_check() -> None:
    t = time.time()
    report = DrillReport("short", "abc", t, t + 100)
    report.faults = [
        FaultRecord("kill -9", "telemetry.1", t, t, t + 10),
        FaultRecord("kill -9", "tasks.1", t, t, t + 30),
        FaultRecord("kill -9", "dispatch.1", t, t, t + 20),
        FaultRecord("postgres down", "postgres", t, t + 15, None, stuck=["drill.fleet-telemetry"]),
    ]
    stats = report.recovery_stats()
    assert stats["kill -9"] == {"count": 3, "not_recovered": 0, "p50_s": 20.0, "max_s": 30.0}
    assert stats["postgres down"]["not_recovered"] == 1
    report.checks = [Check("a", True, "fine"), Check("b", False, "restarted", warn_only=True)]
    assert report.ok and report.lines()[-1] == "ALL CHECKS PASSED: 0 lost, 0 duplicated"
    assert any(line.startswith("WARN  b") for line in report.lines())
    report.checks.append(Check("c", False, "lost one"))
    assert not report.ok and report.lines()[-1] == "1 CHECK(S) FAILED"
    assert any("NOT RECOVERED (stuck: drill.fleet-telemetry" in line for line in report.lines())


def test_latest_records_as_each_sink_orders_them() -> None:
    a = {"robot_id": "r", "seq": 5, "occurred_at": 200, "event_id": "a"}
    b = {"robot_id": "r", "seq": 5, "occurred_at": 300, "event_id": "b"}  # OFFLINE repeats the seq, later
    c = {"robot_id": "r", "seq": 6, "occurred_at": 250, "event_id": "c"}
    assert latest_status_by_seq([a, b, c])["r"]["event_id"] == "c"  # Redis: seq, then time
    assert latest_status_by_time([a, b, c])["r"]["event_id"] == "b"  # Postgres: time, then id
    events = [
        {"task_id": "t", "seq": 1, "kind": "TRANSITION", "event_id": "1"},
        {"task_id": "t", "seq": 3, "kind": "REJECTED", "event_id": "3"},
        {"task_id": "t", "seq": 2, "kind": "TRANSITION", "event_id": "2"},
    ]
    assert latest_transitions(events)["t"]["event_id"] == "2"


def test_the_supervisor_finds_instances_by_either_spelling(tmp_path) -> None:
    from pipelines.drill.processes import Supervisor

    supervisor = Supervisor(tmp_path, {}, tag="t")
    one = supervisor.add("sink_postgres", 1)
    two = supervisor.add("sink_postgres", 2)
    assert supervisor.of("sink-postgres") == [one, two] == supervisor.of("sink_postgres")
    assert one.env["FLEET_STATE_DIR"] != two.env["FLEET_STATE_DIR"]
    assert {one.env["FLEET_INSTANCE_ID"], two.env["FLEET_INSTANCE_ID"]} == {"t-1", "t-2"}
    assert supervisor.crash_looping() == {} and supervisor.down() == ["sink-postgres.1", "sink-postgres.2"]


def test_fleet_drill_writes_to_the_stack_it_takes_down() -> None:
    from pipelines.commands.drill import stack_clients

    env = {"FLEET_REGISTRY_PORT": "18481", "FLEET_POSTGRES_PORT": "15832", "FLEET_REDIS_URL": "redis://h:1/0"}
    clients = stack_clients(env)
    assert clients["schema_registry_url"] == "http://127.0.0.1:18481/apis/ccompat/v7"
    assert clients["postgres_dsn"] == "postgresql://fleet@127.0.0.1:15832/fleetstream"
    assert clients["influx_url"] == "http://127.0.0.1:18086"  # the stack's default port
    assert "redis_url" not in clients, "a URL given in the environment is kept"
