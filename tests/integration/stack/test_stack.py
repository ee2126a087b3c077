"""The local stack is real: each service does its job through its own protocol."""

from __future__ import annotations

import io
import json
import struct
import threading
import time
import uuid

import fastavro
import httpx
import paho.mqtt.client as mqtt
import psycopg
import redis
from confluent_kafka import Consumer, Producer

from tests.integration.conftest import service_port

SCHEMA = {
    "type": "record",
    "name": "StackProbe",
    "namespace": "io.fleetstream.test",
    "fields": [{"name": "id", "type": "string"}, {"name": "n", "type": "long"}],
}


def _consume_all(settings, topic: str, isolation: str, expect_at_least: int, timeout_s: float = 20.0) -> list:
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"probe-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "isolation.level": isolation,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([topic])
    out, deadline, eof = [], time.monotonic() + timeout_s, False
    while time.monotonic() < deadline and not (eof and len(out) >= expect_at_least):
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            eof = True
            continue
        out.append(msg)
    consumer.close()
    return out


def test_avro_registered_and_transactional_produce_is_exactly_visible(settings, create_topics, unique_prefix):
    """Register a schema, produce Confluent-framed Avro in a committed and an aborted transaction."""
    topic = create_topics([f"{unique_prefix}stack.probe"])[0]
    url = settings.schema_registry_url
    resp = httpx.post(
        f"{url}/subjects/{topic}-value/versions",
        json={"schema": json.dumps(SCHEMA), "schemaType": "AVRO"},
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
        timeout=10,
    )
    resp.raise_for_status()
    schema_id = resp.json()["id"]
    fetched = httpx.get(f"{url}/schemas/ids/{schema_id}", timeout=10).json()
    assert json.loads(fetched["schema"])["name"] == "StackProbe"

    parsed = fastavro.parse_schema(SCHEMA)

    def frame(record: dict) -> bytes:
        buf = io.BytesIO()
        buf.write(struct.pack(">bI", 0, schema_id))
        fastavro.schemaless_writer(buf, parsed, record)
        return buf.getvalue()

    producer = Producer({**settings.kafka_client_config(), "transactional.id": f"probe-{uuid.uuid4()}"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"committed", value=frame({"id": "committed", "n": 1}))
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"aborted", value=frame({"id": "aborted", "n": 2}))
    producer.flush(30)
    producer.abort_transaction(30)

    committed = _consume_all(settings, topic, "read_committed", expect_at_least=1)
    assert [m.key() for m in committed] == [b"committed"]
    raw = committed[0].value()
    magic, sid = struct.unpack(">bI", raw[:5])
    assert (magic, sid) == (0, schema_id)
    writer = fastavro.parse_schema(json.loads(fetched["schema"]))
    assert fastavro.schemaless_reader(io.BytesIO(raw[5:]), writer) == {"id": "committed", "n": 1}

    uncommitted = _consume_all(settings, topic, "read_uncommitted", expect_at_least=2)
    assert [m.key() for m in uncommitted] == [b"committed", b"aborted"], "the aborted record is on the log"


def test_postgres_row_round_trip(pg_dsn):
    table = f"probe_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE {table} (id text primary key, payload jsonb)")
        conn.execute(f"INSERT INTO {table} VALUES (%s, %s)", ("r1", json.dumps({"battery": 0.5})))
        row = conn.execute(f"SELECT id, payload FROM {table}").fetchone()
    assert row == ("r1", {"battery": 0.5})


def test_redis_key_round_trip(redis_url):
    client = redis.Redis.from_url(redis_url)
    key = f"probe:{uuid.uuid4().hex}"
    client.set(key, "hello", ex=30)
    assert client.get(key) == b"hello"
    assert 0 < client.ttl(key) <= 30
    client.delete(key)


def test_influxdb_point_round_trip(influx_url):
    db = f"probe_{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=influx_url, timeout=10) as http:
        http.post("/query", params={"q": f'CREATE DATABASE "{db}"'}).raise_for_status()
        try:
            ts = 1_700_000_000_000
            resp = http.post(
                "/write", params={"db": db, "precision": "ms"}, content=f"probe,robot_id=r1 battery=0.42 {ts}"
            )
            assert resp.status_code == 204, resp.text
            result = http.get(
                "/query", params={"db": db, "q": "SELECT battery FROM probe", "epoch": "ms"}
            ).json()
            series = result["results"][0]["series"][0]
            assert series["values"] == [[ts, 0.42]]
        finally:
            http.post("/query", params={"q": f'DROP DATABASE "{db}"'})


def _mqtt_client(user: str | None) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}")
    if user is not None:
        client.username_pw_set(user, "fleetstream-dev")  # the local stack's development accounts
    return client


def test_mosquitto_message_round_trip():
    """The bridge's account publishes an order that the simulator's account, subscribed to it, receives."""
    topic = f"uagv/v2/fleetstream-sim/probe-{uuid.uuid4().hex[:8]}/order"
    got: list[bytes] = []
    subscribed, received = threading.Event(), threading.Event()
    reader, writer = _mqtt_client("fleetstream-sim"), _mqtt_client("fleetstream-bridge")
    reader.on_subscribe = lambda *_a, **_k: subscribed.set()

    def on_message(_c, _u, msg):
        got.append(msg.payload)
        received.set()

    reader.on_message = on_message
    for client in (reader, writer):
        client.connect("127.0.0.1", service_port("mosquitto"))
        client.loop_start()
    try:
        reader.subscribe(topic, qos=1)
        assert subscribed.wait(10)
        writer.publish(topic, b"robot-1 order", qos=1).wait_for_publish(10)
        assert received.wait(10)
    finally:
        for client in (reader, writer):
            client.loop_stop()
            client.disconnect()
    assert got == [b"robot-1 order"]


def test_mosquitto_refuses_anonymous_clients():
    refused = threading.Event()
    client = _mqtt_client(None)
    client.on_connect = lambda _c, _u, _f, reason, _p: reason.is_failure and refused.set()
    client.connect("127.0.0.1", service_port("mosquitto"))
    client.loop_start()
    try:
        assert refused.wait(10)
    finally:
        client.loop_stop()
        client.disconnect()
