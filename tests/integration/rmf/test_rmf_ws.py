"""The /_internal websocket against real Kafka: RMF frames land on the rmf.* topics, bad ones in dlq.gateway."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from confluent_kafka import Consumer
from prometheus_client import CollectorRegistry

from gateway.rmf_ws import create_rmf_app
from pipelines.rmf import FleetAdapterSim, ThreadedServer
from pipelines.settings import CommonSettings
from schemas import rmf

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

TOKEN = "rmf-test-token-0123456789"
TOPICS = ("rmf.fleet_states", "rmf.task_states", "rmf.logs", "dlq.gateway")


@pytest.fixture
def ingress(
    prefixed_settings: CommonSettings, create_topics: Callable[..., list[str]]
) -> Iterator[tuple[ThreadedServer, CollectorRegistry]]:
    create_topics([prefixed_settings.topic(t) for t in TOPICS], partitions=2)
    registry = CollectorRegistry()
    app = create_rmf_app(
        prefixed_settings.aiokafka_config(), prefixed_settings.topic_prefix, TOKEN, registry=registry
    )
    server = ThreadedServer(app, name="rmf-ingress")
    server.start()
    yield server, registry
    server.stop()


def read_all(settings: CommonSettings, topic: str, expected: int, timeout_s: float = 20) -> list[Any]:
    consumer = Consumer(
        {**settings.kafka_client_config(), "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([settings.topic(topic)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(out) < expected:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                out.append(msg)
        end = time.monotonic() + 1.0  # and nothing more
        while time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                out.append(msg)
    finally:
        consumer.close()
    return out


def sample(value: CollectorRegistry, name: str, **labels: str) -> float:
    return value.get_sample_value(name, labels) or 0.0


def test_frames_land_on_their_topics_and_bad_ones_in_the_dlq(
    ingress: tuple[ThreadedServer, CollectorRegistry], prefixed_settings: CommonSettings
) -> None:
    server, registry = ingress
    task_state = {
        "type": "task_state_update",
        "data": {"booking": {"id": "patrol.dispatch-4"}, "status": "queued"},
    }
    task_log = {"type": "task_log_update", "data": {"task_id": "patrol.dispatch-4", "log": []}}
    fleet_log = {"type": "fleet_log_update", "data": {"name": "f1", "log": []}}

    async def scenario() -> None:
        uri = f"ws://127.0.0.1:{server.port}/_internal?token={TOKEN}"
        async with websockets.connect(uri) as ws:
            await ws.send(
                orjson.dumps({"type": "fleet_state_update", "data": {"name": "f1", "robots": {}}}).decode()
            )
            await ws.send('{"type": "fleet_state_update", "data": {"name": 7}}')  # schema error
            await ws.send("{not json")
            await ws.send('["a list"]')
            await ws.send('{"type": "rtls_tag_state_update", "data": {}}')  # unknown: ignored
            for message in (task_state, task_log, fleet_log):
                await ws.send(orjson.dumps(message).decode())  # the connection is still open
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/_internal/{TOKEN}") as ws:
            await ws.send(orjson.dumps({"type": "fleet_state_update", "data": {"name": "f2"}}).decode())

    asyncio.run(scenario())
    fleets = read_all(prefixed_settings, "rmf.fleet_states", 2)
    assert sorted(m.key() for m in fleets) == [b"f1", b"f2"]
    for m in fleets:
        rmf.validate(orjson.loads(m.value()), "fleet_state_update")
        assert dict(m.headers())["fleet-rmf-type"] == b"fleet_state_update"
    [state] = read_all(prefixed_settings, "rmf.task_states", 1)
    assert state.key() == b"patrol.dispatch-4" and orjson.loads(state.value()) == task_state
    logs = read_all(prefixed_settings, "rmf.logs", 2)
    assert sorted(m.key() for m in logs) == [b"f1", b"patrol.dispatch-4"]
    order = [b'{"type": "fleet_state_update", "data": {"name": 7}}', b"{not json", b'["a list"]']
    dead = sorted(read_all(prefixed_settings, "dlq.gateway", 3), key=lambda m: order.index(m.value()))
    assert [m.value() for m in dead] == [
        b'{"type": "fleet_state_update", "data": {"name": 7}}',
        b"{not json",
        b'["a list"]',
    ]
    headers = [dict(m.headers()) for m in dead]
    assert (
        b"data/name" in headers[0]["fleet-dlq-error"]
        and b"7 is not of type 'string'" in headers[0]["fleet-dlq-error"]
    )
    assert headers[0]["fleet-dlq-error-type"] == b"ValidationError"
    assert headers[0]["fleet-dlq-topic"] == prefixed_settings.topic("rmf.fleet_states").encode()
    assert headers[1]["fleet-dlq-error"].startswith(b"not JSON")
    for h in headers:
        assert (
            h["fleet-dlq-processor"] == b"gateway"
            and h["fleet-dlq-offset"] == b"-1"
            and int(h["fleet-dlq-at"]) > 0
        )
    assert sample(registry, "fleet_gateway_rmf_frames_total", type="unknown", outcome="ignored") == 1
    assert (
        sample(registry, "fleet_gateway_rmf_frames_total", type="fleet_state_update", outcome="produced") == 2
    )
    assert (
        sample(registry, "fleet_gateway_rmf_frames_total", type="fleet_state_update", outcome="dead_lettered")
        == 1
    )


@pytest.mark.parametrize(
    "path", ["/_internal", "/_internal?token=wrong", "/_internal/wrong", "/_internal?token="]
)
def test_missing_or_wrong_token_is_refused(
    ingress: tuple[ThreadedServer, CollectorRegistry], path: str
) -> None:
    server, registry = ingress

    async def connect() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}{path}"):
            pass

    with pytest.raises(websockets.InvalidStatus) as info:
        asyncio.run(connect())
    assert info.value.response.status_code == 403
    assert sample(registry, "fleet_gateway_rmf_refused_total") == 1


def test_adapters_reconnect_and_resend(
    ingress: tuple[ThreadedServer, CollectorRegistry], prefixed_settings: CommonSettings
) -> None:
    """Three fleet adapters; the server goes away and comes back; each re-sends its state on reconnect."""
    server, _registry = ingress
    uri = f"ws://127.0.0.1:{server.port}/_internal?token={TOKEN}"
    adapters = [FleetAdapterSim(uri, f"fleet{i}", period_s=0.2, reconnect_s=0.2) for i in range(3)]

    async def scenario() -> None:
        runs = [asyncio.create_task(a.run()) for a in adapters]
        await asyncio.sleep(1.0)
        server.stop()
        await asyncio.sleep(0.8)  # messages buffer meanwhile
        assert all(len(a.buffer) > 0 for a in adapters)
        server.start()
        await asyncio.sleep(1.0)
        adapters[0].inject_malformed()
        adapters[0].inject_unknown()
        await asyncio.sleep(0.5)
        for a in adapters:
            a.stop()
        await asyncio.wait_for(asyncio.gather(*runs), 10)

    asyncio.run(scenario())
    assert all(a.connections == 2 for a in adapters)
    sent_valid = sum(a.sent for a in adapters) - 3  # two malformed, one unknown
    records = read_all(prefixed_settings, "rmf.fleet_states", sent_valid)
    # Frames written into a connection the server was closing are lost in TCP (RMF has no acks);
    # everything the server received reached Kafka, the re-sent duplicates included.
    assert sent_valid - 2 * len(adapters) <= len(records) <= sent_valid
    values = [m.value() for m in records]
    assert len(values) > len(set(values))  # the latest state of each fleet re-sent on reconnect
    keys = [m.key() for m in records]
    assert {b"fleet0", b"fleet1", b"fleet2"} == set(keys)
    assert len(read_all(prefixed_settings, "dlq.gateway", 2)) == 2


def test_upstream_samples_replay_through_the_websocket(
    ingress: tuple[ThreadedServer, CollectorRegistry], prefixed_settings: CommonSettings
) -> None:
    """The upstream samples of ../shared/rmf_api_msgs, sent as RMF sends them, land unchanged on their
    topics under their keys."""
    server, registry = ingress
    shared = Path(__file__).resolve().parents[4] / "shared" / "rmf_api_msgs" / "samples"
    samples = shared if shared.is_dir() else Path(rmf.RMF_SCHEMA_DIR).parent / "samples"
    state = orjson.loads((samples / "task_state" / "multi_dropoff_delivery.json").read_bytes())
    log = orjson.loads((samples / "task_log" / "multi_dropoff_delivery.json").read_bytes())
    frames = [
        orjson.dumps({"type": "task_state_update", "data": state}),
        orjson.dumps({"type": "task_log_update", "data": log}),
    ]

    async def replay() -> None:
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/_internal?token={TOKEN}") as ws:
            for frame in frames:
                await ws.send(frame.decode())

    asyncio.run(replay())
    [got_state] = read_all(prefixed_settings, "rmf.task_states", 1)
    assert (got_state.key(), got_state.value()) == (state["booking"]["id"].encode(), frames[0])
    [got_log] = read_all(prefixed_settings, "rmf.logs", 1)
    assert (got_log.key(), got_log.value()) == (log["task_id"].encode(), frames[1])
    assert sample(registry, "fleet_gateway_rmf_frames_total", type="task_log_update", outcome="produced") == 1
    assert read_all(prefixed_settings, "dlq.gateway", 0, timeout_s=1) == []
    scraped = httpx.get(f"http://127.0.0.1:{server.port}/metrics", timeout=5)  # the ingress's own port
    assert 'fleet_gateway_rmf_frames_total{outcome="produced",type="task_state_update"} 1.0' in scraped.text
    assert httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5).json() == {"status": "ok"}
