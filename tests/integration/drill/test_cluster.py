"""The three-node cluster the drills run on: KRaft quorum of three combined nodes, the KIP-890 transaction
protocol, and `fleet topics apply` giving every topic replication 3 and min.insync.replicas 2."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType

from pipelines.app import create_processor_app
from pipelines.drill import KafkaCluster
from pipelines.settings import CommonSettings
from schemas import catalog

pytestmark = pytest.mark.drill


def test_three_kraft_nodes_with_transaction_version_2(cluster: KafkaCluster) -> None:
    described = cluster.describe()
    assert described["brokers"] == [1, 2, 3]
    assert described["active_controller"] in (1, 2, 3)
    assert described["transaction.version"] == "2"
    assert described["kraft.version"] == "1"  # formatted with --initial-controllers: a dynamic quorum
    assert cluster.under_replicated() == []


def test_topics_apply_gives_every_topic_replication_3_and_min_isr_2(cluster: KafkaCluster) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    env = {
        **os.environ,
        "FLEET_KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "FLEET_TOPIC_PREFIX": prefix,
        "FLEET_TOPIC_REPLICATION_FACTOR": "3",
        "FLEET_TOPIC_MIN_INSYNC_REPLICAS": "2",
    }
    fleet = [sys.executable, "-m", "pipelines.cli", "topics", "apply"]
    try:
        first = subprocess.run(fleet, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert first.returncode == 0, first.stderr
        assert "replication=3" in first.stdout and "min.insync.replicas=2" in first.stdout
        meta = cluster.admin.list_topics(timeout=10)
        mine = {name: t for name, t in meta.topics.items() if name.startswith(prefix)}
        assert len(mine) > 20
        assert {len(p.replicas) for t in mine.values() for p in t.partitions.values()} == {3}
        resource = ConfigResource(ResourceType.TOPIC, f"{prefix}task.events")
        config = cluster.admin.describe_configs([resource])[resource].result(10)
        assert config["min.insync.replicas"].value == "2"
        again = subprocess.run(fleet, env=env, capture_output=True, text=True, timeout=120, check=False)
        assert again.returncode == 0 and "0 created, 0 changed" in again.stdout, again.stdout
        refused = subprocess.run(
            [*fleet, "--replication-factor", "1", "--min-insync-replicas", "1", "alerts"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1 and "has replication factor 3" in refused.stderr
    finally:
        topics = [t for t in cluster.admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if topics:
            for future in cluster.admin.delete_topics(topics).values():
                future.result(30)


def test_a_processor_creates_a_missing_topic_replicated_as_the_catalog_says(cluster: KafkaCluster) -> None:
    """A processor started before `fleet topics apply` creates its missing inbox with the brokers' default
    replication (3 here, never 1) and the catalog's cleanup policy, or with FLEET_TOPIC_* when set."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    base = {
        "kafka_bootstrap_servers": cluster.bootstrap_servers,
        "topic_prefix": prefix,
        "environment": "test",
    }
    try:
        default = create_processor_app(CommonSettings(**base), "traffic", exactly_once=False)
        default.topic("traffic.inbox", partitions=2)
        default.topic("timers", partitions=2)
        told = CommonSettings(**base, topic_replication_factor=2, topic_min_insync_replicas=1)
        create_processor_app(told, "tasks", exactly_once=False).topic("tasks.inbox", partitions=2)
        meta = cluster.admin.list_topics(timeout=10).topics
        replicas = {
            name.removeprefix(prefix): {len(p.replicas) for p in t.partitions.values()}
            for name, t in meta.items()
            if name.startswith(prefix)
        }
        assert replicas["traffic.inbox"] == {3} and replicas["timers"] == {3}
        assert replicas["tasks.inbox"] == {2}
        resources = [ConfigResource(ResourceType.TOPIC, f"{prefix}{n}") for n in ("timers", "tasks.inbox")]
        timers, inbox = (f.result(10) for f in cluster.admin.describe_configs(resources).values())
        assert timers["cleanup.policy"].value == catalog.topic("timers").cleanup_policy == "compact"
        assert inbox["min.insync.replicas"].value == "1"
    finally:
        topics = [t for t in cluster.admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if topics:
            for future in cluster.admin.delete_topics(topics).values():
                future.result(30)
