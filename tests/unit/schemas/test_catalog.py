from __future__ import annotations

import pytest

from schemas.avsc import record_names
from schemas.catalog import (
    BYTES,
    CATALOG,
    DLQ_PROCESSORS,
    JSON,
    CatalogError,
    dlq_topic,
    subject_name,
    topic,
    topics,
)

DESIGN_TOPICS = {
    "robot.telemetry": ("RobotTelemetry", "delete", 7),
    "robot.telemetry.accepted": ("RobotTelemetry", "delete", 7),
    "robot.registry": ("RobotRegistration", "compact", None),
    "robot.status": ("RobotStatus", "compact,delete", 7),
    "robot.telemetry.1m": ("TelemetryAggregate", "delete", 90),
    "site.maps": ("SiteMap", "compact", None),
    "task.commands": ("TaskCommand", "delete", 30),
    "task.schedules": ("TaskSchedule", "compact", None),
    "task.events": ("TaskEvent", "delete", 30),
    "scheduler.decisions": ("Decision", "delete", 30),
    "traffic.conflicts": ("Conflict", "delete", 30),
    "alerts": ("Alert", "delete", 30),
    "audit.log": ("AuditEvent", "delete", 365),
    "rmf.fleet_states": (JSON, "delete", 7),
    "rmf.task_states": (JSON, "delete", 7),
    "rmf.logs": (JSON, "delete", 7),
    "timers": ("Timer", "compact", None),
    "timers.due.telemetry": ("Timer", "delete", 1),
    "timers.due.tasks": ("Timer", "delete", 1),
    "timers.due.traffic": ("Timer", "delete", 1),
    "timers.due.rmf-ingest": ("Timer", "delete", 1),
    "vda5050.inbound": (BYTES, "delete", 7),
    "vda5050.decisions": ("Decision", "delete", 7),
    "vda5050.outbound": (JSON, "delete", 7),
}
INBOXES = {
    "telemetry.inbox": "robot",
    "tasks.inbox": "task",
    "dispatch.inbox": "site",
    "traffic.inbox": "site",
}
DAY = 86_400_000


def test_every_design_topic_with_value_cleanup_and_retention() -> None:
    by_name = {t.name: t for t in topics()}
    for name, (value, cleanup, days) in DESIGN_TOPICS.items():
        spec = by_name[name]
        assert (spec.value, spec.cleanup_policy) == (value, cleanup), name
        assert spec.retention_ms == (days * DAY if days else None), name
        assert spec.key, name


def test_dlq_topic_per_processor() -> None:
    by_name = {t.name: t for t in topics()}
    assert set(DLQ_PROCESSORS) == {
        "telemetry",
        "tasks",
        "dispatch",
        "traffic",
        "sink-postgres",
        "sink-influx",
        "sink-redis",
        "sink-rmf",
        "rmf-ingest",
        "gateway",
        "vda5050",
    }
    for processor in DLQ_PROCESSORS:
        spec = by_name[f"dlq.{processor}"]
        assert spec.value == BYTES and spec.retention_ms == 30 * DAY
    assert dlq_topic("sink-redis", "t1.") == "t1.dlq.sink-redis"
    with pytest.raises(CatalogError):
        dlq_topic("nope")
    assert len(CATALOG) == len(DESIGN_TOPICS) + len(INBOXES) + len(DLQ_PROCESSORS)


def test_inboxes_are_co_partitioned_with_the_state_they_feed() -> None:
    by_name = {t.name: t for t in topics()}
    for name, group in INBOXES.items():
        assert (by_name[name].value, by_name[name].copartition) == (BYTES, group), name
        assert by_name[name].retention_ms == 7 * DAY, name
    assert by_name["robot.telemetry.accepted"].partitions == by_name["robot.telemetry"].partitions


def test_avro_values_have_a_schema() -> None:
    assert {t.value for t in CATALOG if t.is_avro} <= set(record_names())
    assert set(record_names()) <= {t.value for t in CATALOG}


def test_keyed_topics_default_to_six_partitions_and_groups_are_equal() -> None:
    for spec in topics():
        if spec.copartition:
            assert spec.partitions == 6, spec.name
    groups = {t.copartition for t in CATALOG if t.copartition}
    assert groups == {"robot", "task", "site", "vda5050"}
    robot = {t.name for t in CATALOG if t.copartition == "robot"}
    assert {
        "robot.telemetry",
        "robot.telemetry.accepted",
        "robot.registry",
        "robot.status",
        "timers.due.telemetry",
    } <= robot
    task = {t.name for t in CATALOG if t.copartition == "task"}
    assert {"task.commands", "task.events", "timers.due.tasks", "rmf.task_states"} <= task


def test_rmf_ingest_inputs_have_equal_partitions() -> None:
    """rmf-ingest concatenates its due timers with the fleet states by fleet name: same partition count."""
    assert topic("timers.due.rmf-ingest").partitions == topic("rmf.fleet_states").partitions
    assert topic("timers.due.rmf-ingest").key == topic("rmf.fleet_states").key == "fleet name"


def test_vda5050_inputs_are_copartitioned() -> None:
    """The bridge joins a vehicle's inbound messages with its decisions re-keyed by robot: one group, one
    partition count, one key, however the partitions are overridden."""
    assert topic("vda5050.inbound").copartition == topic("vda5050.decisions").copartition == "vda5050"
    assert topic("vda5050.inbound").partitions == topic("vda5050.decisions").partitions
    assert topic("vda5050.inbound").key == topic("vda5050.decisions").key == topic("vda5050.outbound").key
    resized = {t.base_name: t.partitions for t in topics(partitions={"vda5050": 2})}
    assert resized["vda5050.inbound"] == resized["vda5050.decisions"] == 2


def test_prefix_applies_to_names_and_subjects() -> None:
    spec = topic("robot.telemetry", "t1234.")
    assert spec.name == "t1234.robot.telemetry"
    assert spec.base_name == "robot.telemetry"
    assert spec.subject == "t1234.robot.telemetry-value" == subject_name(spec.name)
    assert all(t.name.startswith("env-") for t in topics("env-"))


def test_overrides_by_group_and_by_topic() -> None:
    by_name = {t.base_name: t for t in topics(partitions={"robot": 12, "alerts": 1, "dlq.gateway": 2})}
    assert by_name["robot.telemetry"].partitions == 12
    assert by_name["timers.due.telemetry"].partitions == 12
    assert by_name["task.events"].partitions == 6
    assert by_name["alerts"].partitions == 1
    assert by_name["dlq.gateway"].partitions == 2


def test_override_breaking_copartitioning_is_refused() -> None:
    with pytest.raises(CatalogError, match=r"robot\.telemetry=8"):
        topics(partitions={"robot.telemetry": 8})
    with pytest.raises(CatalogError, match="unknown topic or group"):
        topics(partitions={"robot.telemetrie": 8})
    with pytest.raises(CatalogError, match="at least 1"):
        topics(partitions={"alerts": 0})


def test_replication_factor_and_config() -> None:
    spec = topic("robot.status")
    assert spec.replication_factor is None
    assert spec.config() == {"cleanup.policy": "compact,delete", "retention.ms": str(7 * DAY)}
    assert topic("site.maps").config() == {"cleanup.policy": "compact"}
    assert {t.replication_factor for t in topics(replication_factor=3)} == {3}


def test_replication_is_one_setting_for_every_topic() -> None:
    specs = topics(replication_factor=3, min_insync_replicas=2)
    assert {(t.replication_factor, t.min_insync_replicas) for t in specs} == {(3, 2)}
    assert {t.config()["min.insync.replicas"] for t in specs} == {"2"}
    assert "min.insync.replicas" not in topic("alerts").config()  # unset: the brokers' default
    with pytest.raises(CatalogError, match="exceeds the replication factor"):
        topics(replication_factor=1, min_insync_replicas=2)
    with pytest.raises(CatalogError, match="at least 1"):
        topics(min_insync_replicas=0)
    with pytest.raises(CatalogError):
        topic("nope")
