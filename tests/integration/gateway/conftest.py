"""Fixtures of the gateway tests: one isolated environment per session (topic prefix, Postgres schema,
InfluxDB database), gateways served by uvicorn in a thread, tokens, and seeding helpers that write
what the topologies and sinks would (the gateway itself never writes a database).

Tests isolate themselves from each other by tenant id (``new_tenant``).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import psycopg
import pytest
import redis as redis_sync
import uvicorn
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from gateway.auth import issue_token
from gateway.main import create_app
from gateway.producer import OUTPUT_TOPICS
from gateway.settings import GatewaySettings
from gateway.sse import STREAM_TOPICS
from pipelines.settings import CommonSettings
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from sinks.influx import InfluxConfig, InfluxV1Writer, to_lines
from tests.integration.conftest import service_port

SECRET = "integration-test-secret-0123456789abcdef"

# The tables the gateway reads, as the gateway assumes them until sinks/postgres lands.
DDL = """
CREATE TABLE tasks (tenant_id text, task_id text, site_id text, state text, robot_id text, attempt int,
  seq bigint, category text, priority int, reason text, spec jsonb, external_id text, origin text,
  created_at timestamptz, updated_at timestamptz, PRIMARY KEY (tenant_id, task_id));
CREATE TABLE robots (tenant_id text, robot_id text, site_id text, fleet_id text, name text, model text,
  capabilities text[], status text, battery float8, speed float8, pose jsonb, task_id text,
  last_seen_at timestamptz, updated_at timestamptz, PRIMARY KEY (tenant_id, robot_id));
CREATE TABLE sites (tenant_id text, site_id text, name text, map_version int, updated_at timestamptz,
  PRIMARY KEY (tenant_id, site_id));
CREATE TABLE site_maps (tenant_id text, site_id text, version int, name text, map jsonb,
  occurred_at timestamptz, PRIMARY KEY (tenant_id, site_id, version));
CREATE TABLE decisions (tenant_id text, decision_id text PRIMARY KEY, site_id text, kind text, robot_id text,
  task_id text, route jsonb, eta timestamptz, cost float8, reason text, conflict_id text, planner text,
  occurred_at timestamptz);
CREATE TABLE conflicts (tenant_id text, conflict_id text PRIMARY KEY, site_id text, kind text, robot_ids text[],
  node_id text, lane_id text, zone_id text, window_start timestamptz, window_end timestamptz,
  resolution text, resolved_robot_id text, detail text, occurred_at timestamptz);
CREATE TABLE alerts (tenant_id text, alert_id text PRIMARY KEY, site_id text, kind text, severity text,
  subject_id text, message text, occurred_at timestamptz);
"""


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class GatewayEnv:
    """The isolated environment of this test session."""

    prefix: str
    pg_schema: str
    pg_dsn: str
    influx_db: str
    base: GatewaySettings

    def settings(self, **overrides: Any) -> GatewaySettings:
        return GatewaySettings(**{**self.base.model_dump(), **overrides})  # validated, unlike model_copy


SUFFIX = uuid.uuid4().hex[:8]  # this session's environment: topic prefix, Postgres schema, InfluxDB database


def session_settings(**overrides: Any) -> GatewaySettings:
    """Gateway settings of this session's environment (usable at import time, e.g. by schemathesis)."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": f"127.0.0.1:{service_port('kafka')}",
        "schema_registry_url": f"http://127.0.0.1:{service_port('registry')}/apis/ccompat/v7",
        "environment": "test",
        "topic_prefix": f"gw{SUFFIX}.",
        "jwt_secret": SECRET,
        "postgres_dsn": f"postgresql://fleet@127.0.0.1:{service_port('postgres')}/fleetstream"
        f"?options=-csearch_path%3Dgw_{SUFFIX}",
        "redis_url": f"redis://127.0.0.1:{service_port('redis')}/0",
        "influx_url": f"http://127.0.0.1:{service_port('influxdb')}",
        "influx_database": f"gw_{SUFFIX}",
        "sse_heartbeat_seconds": 1.0,
    }
    return GatewaySettings(**{**values, **overrides})


@pytest.fixture(scope="session")
def gw_env(settings: CommonSettings, pg_dsn: str, influx_url: str) -> Iterator[GatewayEnv]:
    base = session_settings()
    prefix = base.topic_prefix
    admin = AdminClient(settings.kafka_client_config())
    names = [*STREAM_TOPICS, *OUTPUT_TOPICS]
    specs = catalog.topics(prefix, partitions={"robot": 2, "task": 2, "site": 2}, names=names)
    futures = admin.create_topics(
        [
            NewTopic(s.name, num_partitions=min(s.partitions, 2), replication_factor=1, config=s.config())
            for s in specs
        ]
    )
    for fut in futures.values():
        fut.result(30)
    schema = f"gw_{SUFFIX}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"SET search_path TO {schema}")
        conn.execute(DDL)
    dsn = base.postgres_dsn.get_secret_value()
    influx_db = base.influx_database
    writer = InfluxV1Writer(InfluxConfig(url=influx_url, database=influx_db))
    writer.setup()
    writer.close()
    yield GatewayEnv(prefix=prefix, pg_schema=schema, pg_dsn=dsn, influx_db=influx_db, base=base)
    for fut in admin.delete_topics([s.name for s in specs]).values():
        with contextlib.suppress(Exception):
            fut.result(30)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
    httpx.post(f"{influx_url}/query", params={"q": f'DROP DATABASE "{influx_db}"'})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningGateway:
    url: str
    settings: GatewaySettings
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def app(self) -> Any:
        return self.server.config.app

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


def start_gateway(settings: GatewaySettings) -> RunningGateway:
    port = _free_port()
    app = create_app(settings)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"gateway:{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("gateway did not start")
        time.sleep(0.05)
    gw = RunningGateway(url=f"http://127.0.0.1:{port}", settings=settings, server=server, thread=thread)
    # Wait for the stream hub to be live (it catches up with the topics first).
    while time.monotonic() < deadline:
        if httpx.get(f"{gw.url}/readyz").json()["checks"]["stream"]["ok"]:
            break
        time.sleep(0.1)
    return gw


@pytest.fixture(scope="session")
def gateway(gw_env: GatewayEnv) -> Iterator[RunningGateway]:
    """The default gateway of the session (shared; tests isolate by tenant)."""
    gw = start_gateway(gw_env.settings())
    yield gw
    gw.stop()


@pytest.fixture
def gateway_factory(gw_env: GatewayEnv) -> Iterator[Callable[..., RunningGateway]]:
    """gateway_factory(**setting overrides) -> a gateway of its own, stopped after the test."""
    started: list[RunningGateway] = []

    def _start(**overrides: Any) -> RunningGateway:
        gw = start_gateway(gw_env.settings(**overrides))
        started.append(gw)
        return gw

    yield _start
    for gw in started:
        gw.stop()


@pytest.fixture
def new_tenant() -> Callable[[], str]:
    return lambda: f"tenant-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def token() -> Callable[..., str]:
    def _token(tenant: str, role: str = "operator", **kw: Any) -> str:
        return issue_token(SECRET, tenant_id=tenant, roles=[role], **kw)

    return _token


@pytest.fixture
def auth(token: Callable[..., str]) -> Callable[..., dict[str, str]]:
    def _auth(tenant: str, role: str = "operator", **kw: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {token(tenant, role, **kw)}"}

    return _auth


# ---------------------------------------------------------------------------------------- seeding


@pytest.fixture(scope="session")
def registry(settings: CommonSettings) -> Iterator[RegistryClient]:
    client = RegistryClient(**settings.registry_client_config())
    yield client
    client.close()


class Kafka:
    """Produce records as the topologies would, and read back what the gateway produced."""

    def __init__(self, settings: CommonSettings, registry: RegistryClient, prefix: str) -> None:
        self.settings = settings
        self.registry = registry
        self.prefix = prefix
        self._producer = Producer({**settings.kafka_producer_config(), "linger.ms": 0})
        self._codecs: dict[str, AvroCodec] = {}

    def codec(self, topic: str) -> AvroCodec:
        if topic not in self._codecs:
            self._codecs[topic] = AvroCodec.for_topic(self.registry, topic, self.prefix)
        return self._codecs[topic]

    def produce(self, topic: str, key: str, record: Any) -> None:
        self._producer.produce(self.prefix + topic, key=key.encode(), value=self.codec(topic).encode(record))
        self._producer.flush(10)

    def read(
        self, topic: str, predicate: Callable[[dict[str, Any]], bool], *, want: int = 1, timeout: float = 15
    ) -> list[dict[str, Any]]:
        """Records of ``topic`` (from the beginning) that satisfy ``predicate``; waits for ``want`` of them."""
        consumer = Consumer(
            {
                **self.settings.kafka_client_config(),
                "group.id": f"t-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        name = self.prefix + topic
        meta = consumer.list_topics(name, timeout=10)
        parts = list(meta.topics[name].partitions)
        consumer.assign([TopicPartition(name, p, 0) for p in parts])
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None or msg.error():
                    if len(found) >= want:
                        break
                    continue
                record = self.codec(topic).decode(msg.value())
                if record is not None and predicate(record):
                    found.append({**record, "_key": msg.key().decode() if msg.key() else None})
        finally:
            consumer.close()
        return found


@pytest.fixture(scope="session")
def kafka(settings: CommonSettings, registry: RegistryClient, gw_env: GatewayEnv) -> Kafka:
    return Kafka(settings, registry, gw_env.prefix)


class Pg:
    """Seeds tables; reconnects after Postgres was restarted (test_outages.py stops it)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn = psycopg.connect(dsn, autocommit=True)

    @property
    def conn(self) -> psycopg.Connection:
        if self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.dsn, autocommit=True)
        return self._conn

    def execute(self, query: str, params: list[Any] | None = None) -> None:
        try:
            self.conn.execute(query, params)  # type: ignore[arg-type]
        except psycopg.OperationalError:  # a connection from before a restart of Postgres
            self._conn.close()
            self.conn.execute(query, params)  # type: ignore[arg-type]

    def insert(self, table: str, row: dict[str, Any]) -> None:
        cols = list(row)
        values = [
            orjson.dumps(v).decode()
            if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict))
            else v
            for v in row.values()
        ]
        self.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})", values
        )


@pytest.fixture(scope="session")
def pg(gw_env: GatewayEnv) -> Iterator[Pg]:
    db = Pg(gw_env.pg_dsn)
    yield db
    db.conn.close()


@pytest.fixture(scope="session")
def rds(redis_url: str) -> Iterator[redis_sync.Redis]:
    client = redis_sync.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def influx_write(gw_env: GatewayEnv, influx_url: str) -> Iterator[Callable[[list[dict[str, Any]]], None]]:
    config = InfluxConfig(url=influx_url, database=gw_env.influx_db)
    writer = InfluxV1Writer(config)

    def _write(records: list[dict[str, Any]]) -> None:
        for rp, lines in to_lines(records, config).items():
            writer.write(rp, lines)

    yield _write
    writer.close()
