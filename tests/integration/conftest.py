"""Fixtures for tests against the real local stack (`deploy/local/stack.sh up`; `make test` starts it).

No service is mocked. Each test isolates itself with a unique topic prefix / tenant / key space, so the
suite can run again and again against a long-lived stack.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.settings import CommonSettings

SERVICES = {
    "kafka": ("FLEET_KAFKA_PORT", 19092),
    "registry": ("FLEET_REGISTRY_PORT", 18081),
    "postgres": ("FLEET_POSTGRES_PORT", 15432),
    "redis": ("FLEET_REDIS_PORT", 16379),
    "influxdb": ("FLEET_INFLUX_PORT", 18086),
    "mosquitto": ("FLEET_MQTT_PORT", 11883),
}


def service_port(name: str) -> int:
    env, default = SERVICES[name]
    return int(os.environ.get(env, default))


@pytest.fixture(scope="session", autouse=True)
def _stack_is_up() -> None:
    down = []
    for name in SERVICES:
        try:
            socket.create_connection(("127.0.0.1", service_port(name)), timeout=1).close()
        except OSError:
            down.append(name)
    if down:
        pytest.fail(
            f"local stack not running ({', '.join(down)} down): run `make stack-up` first", pytrace=False
        )


@pytest.fixture(scope="session")
def settings() -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap_servers=f"127.0.0.1:{service_port('kafka')}",
        schema_registry_url=f"http://127.0.0.1:{service_port('registry')}/apis/ccompat/v7",
        environment="test",
    )


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    return f"postgresql://fleet@127.0.0.1:{service_port('postgres')}/fleetstream"


@pytest.fixture(scope="session")
def redis_url() -> str:
    return f"redis://127.0.0.1:{service_port('redis')}/0"


@pytest.fixture(scope="session")
def influx_url() -> str:
    return f"http://127.0.0.1:{service_port('influxdb')}"


@pytest.fixture(scope="session")
def kafka_admin(settings: CommonSettings) -> AdminClient:
    return AdminClient(settings.kafka_client_config())


@pytest.fixture
def unique_prefix() -> str:
    """A topic prefix no other test uses: `t<8 hex>.`."""
    return f"t{uuid.uuid4().hex[:8]}."


@pytest.fixture
def prefixed_settings(settings: CommonSettings, unique_prefix: str, tmp_path) -> CommonSettings:
    """Settings isolated to this test: its own topic prefix and state directory."""
    return settings.model_copy(update={"topic_prefix": unique_prefix, "state_dir": tmp_path / "state"})


@pytest.fixture
def create_topics(kafka_admin: AdminClient) -> Iterator[Callable[..., list[str]]]:
    """create_topics(names, partitions=1, config=None) -> names; deleted again after the test."""
    created: list[str] = []

    def _create(names: list[str], partitions: int = 1, config: dict[str, str] | None = None) -> list[str]:
        futures = kafka_admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {}) for n in names]
        )
        for fut in futures.values():
            fut.result(30)
        created.extend(names)
        return names

    yield _create
    if created:
        for fut in kafka_admin.delete_topics(created).values():
            with contextlib.suppress(Exception):
                fut.result(30)
