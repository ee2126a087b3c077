"""`fleet topics apply` and `fleet schemas register` against the real broker and registry."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from pipelines.cli import main
from pipelines.settings import CommonSettings
from schemas.catalog import topics
from schemas.registry import RegistryClient

SOME = ["robot.telemetry", "robot.status", "site.maps", "alerts", "rmf.logs", "dlq.gateway", "timers"]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, settings: CommonSettings, unique_prefix: str) -> Iterator[str]:
    monkeypatch.setenv("FLEET_KAFKA_BOOTSTRAP_SERVERS", settings.kafka_bootstrap_servers)
    monkeypatch.setenv("FLEET_SCHEMA_REGISTRY_URL", settings.schema_registry_url)
    monkeypatch.setenv("FLEET_TOPIC_PREFIX", unique_prefix)
    monkeypatch.delenv("FLEET_TOPIC_PARTITIONS", raising=False)
    yield unique_prefix


@pytest.fixture
def cleanup_topics(kafka_admin: AdminClient, env: str) -> Iterator[None]:
    yield
    names = [t for t in kafka_admin.list_topics(timeout=10).topics if t.startswith(env)]
    if names:
        for future in kafka_admin.delete_topics(names).values():
            with contextlib.suppress(Exception):  # best-effort clean-up of this test's topics
                future.result(30)


def _wait_for_config(admin: AdminClient, name: str, key: str, value: str, timeout: float = 10) -> None:
    """The broker applies an altered config asynchronously (KRaft metadata); wait until it shows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = next(
            iter(admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values())
        ).result(10)
        if entries[key].value == value:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} {key} never became {value}")


def _partitions(admin: AdminClient, name: str) -> int:
    return len(admin.list_topics(name, timeout=10).topics[name].partitions)


def test_topics_apply_is_idempotent_and_guards_partitions(
    env: str, cleanup_topics: None, kafka_admin: AdminClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topics", "apply", *SOME]) == 0
    out = capsys.readouterr().out
    assert out.count("created ") == len(SOME)
    assert f"{len(SOME)} created, 0 changed, 0 unchanged" in out
    assert _partitions(kafka_admin, f"{env}robot.telemetry") == 6
    assert _partitions(kafka_admin, f"{env}alerts") == 3
    configs = kafka_admin.describe_configs([ConfigResource(ResourceType.TOPIC, f"{env}robot.status")])
    entries = next(iter(configs.values())).result(10)
    assert entries["cleanup.policy"].value == "compact,delete"
    assert entries["retention.ms"].value == str(7 * 86_400_000)

    assert main(["topics", "apply", *SOME]) == 0
    assert f"0 created, 0 changed, {len(SOME)} unchanged" in capsys.readouterr().out

    # a config drift is put back
    resource = ConfigResource(
        ResourceType.TOPIC,
        f"{env}alerts",
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in kafka_admin.incremental_alter_configs([resource]).values():
        future.result(10)
    _wait_for_config(kafka_admin, f"{env}alerts", "retention.ms", "1000")
    assert main(["topics", "apply", "alerts"]) == 0
    assert f"changed    {env}alerts: retention.ms 1000 -> 2592000000" in capsys.readouterr().out

    # shrinking is refused, nothing changes
    assert main(["topics", "apply", "alerts", "--partitions", "alerts=1"]) == 1
    err = capsys.readouterr().err
    assert f"REFUSED    {env}alerts: has 3 partitions, the catalog asks for 1" in err
    assert "cannot shrink" in err
    assert _partitions(kafka_admin, f"{env}alerts") == 3

    # growing needs to be asked for
    assert main(["topics", "apply", "alerts", "--partitions", "alerts=4"]) == 1
    assert "--increase-partitions" in capsys.readouterr().err
    assert main(["topics", "apply", "alerts", "--partitions", "alerts=4", "--increase-partitions"]) == 0
    assert f"changed    {env}alerts: partitions 3 -> 4" in capsys.readouterr().out
    assert _partitions(kafka_admin, f"{env}alerts") == 4


def test_topics_apply_whole_catalog(
    env: str, cleanup_topics: None, kafka_admin: AdminClient, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["topics", "apply"]) == 0
    assert f"{len(topics(env))} created, 0 changed" in capsys.readouterr().out
    existing = kafka_admin.list_topics(timeout=10).topics  # apply waited until they are visible
    for spec in topics(env):
        assert spec.name in existing
        assert len(existing[spec.name].partitions) == spec.partitions


def test_schemas_register_is_idempotent(
    env: str, settings: CommonSettings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schemas", "register"]) == 0
    out = capsys.readouterr().out
    avro_topics = [t for t in topics(env) if t.is_avro]
    assert out.count("registered  ") == len(avro_topics)
    assert out.count("compatibility (unset) -> FULL_TRANSITIVE") == len(avro_topics)

    assert main(["schemas", "register"]) == 0
    again = capsys.readouterr().out
    assert again.count("unchanged   ") == len(avro_topics)
    assert not [line for line in again.splitlines() if not line.startswith("unchanged   ")]

    registry = RegistryClient(settings.schema_registry_url)
    for spec in avro_topics:
        assert registry.get_compatibility(spec.subject) == "FULL_TRANSITIVE"
        assert registry.versions(spec.subject) == [1]
    registry.close()
