"""The drills run on the stack's separate three-node Kafka cluster (`stack.sh up cluster`, started by the
drill when it is not running) with the stack's registry, Postgres, Redis and InfluxDB."""

from __future__ import annotations

import pytest

from pipelines.drill import DrillSettings, KafkaCluster
from tests.integration.conftest import service_port


@pytest.fixture(scope="session")
def drill_settings() -> DrillSettings:
    return DrillSettings(
        schema_registry_url=f"http://127.0.0.1:{service_port('registry')}/apis/ccompat/v7",
        postgres_dsn=f"postgresql://fleet@127.0.0.1:{service_port('postgres')}/fleetstream",
        redis_url=f"redis://127.0.0.1:{service_port('redis')}/0",
        influx_url=f"http://127.0.0.1:{service_port('influxdb')}",
        environment="test",
    )


@pytest.fixture(scope="session")
def cluster() -> KafkaCluster:
    cluster = KafkaCluster.from_env()
    cluster.ensure_up()
    return cluster
