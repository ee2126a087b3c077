"""InfluxDB sink against real servers, through both write paths:

- ``v1@1.6``: v1 ``/write`` on the stack's InfluxDB 1.6 (Debian);
- ``v1@1.12`` and ``v2@1.12``: v1 ``/write`` and ``/api/v2/write`` (influxdb-client) on InfluxDB 1.12,
  built from Go modules by ``deploy/local/install-influxd.sh`` (``make test`` starts the build in the
  background; the first test that needs the server starts it with ``deploy/local/stack.sh up influxdb2``,
  which waits for the build).

Every case queries the points back through InfluxQL ``/query`` on the server that took them.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, Literal

import httpx
import orjson
import pytest
from quixstreams.sinks import SinkBackpressureError

from schemas.ids import now_ms
from sinks.influx import InfluxConfig, InfluxSink, InfluxV1Writer, InfluxV2Writer, InfluxWriteError
from tests.integration.sinks.conftest import DeadLetters

T0 = (now_ms() - 3_600_000) // 60_000 * 60_000  # inside the 7-day policy, on a minute


def telemetry(seq: int, at: int, robot_id: str = "r1", **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": f"e{seq}", "tenant_id": "acme", "site_id": "s1", "occurred_at": at, "robot_id": robot_id,
        "fleet_id": "f1", "seq": seq, "pose": {"x": float(seq), "y": 2.0, "yaw": 0.0, "node_id": None,
        "map_name": None}, "battery": 0.5 + seq / 1000, "speed": 1.0, "mode": "MOVING", "error_code": None,
        "task_id": None, "task_phase": "NONE", "route": [], **overrides,
    }  # fmt: skip


def aggregate(start: int, count: int) -> dict[str, Any]:
    return {
        "event_id": f"a{start}", "tenant_id": "acme", "site_id": "s1", "occurred_at": start, "robot_id": "r1",
        "fleet_id": "f1", "window_start": start, "window_end": start + 60_000, "count": count,
        "battery_min": 0.4, "battery_max": 0.6, "battery_avg": 0.5, "speed_avg": 0.9, "speed_max": 1.8,
        "distance_m": 54.0,
    }  # fmt: skip


BACKENDS = ["v1@1.6", "v1@1.12", "v2@1.12"]


@pytest.fixture(params=BACKENDS)
def influx_config(request: pytest.FixtureRequest, influx_url: str) -> Iterator[InfluxConfig]:
    api, server = request.param.split("@")
    url = influx_url if server == "1.6" else request.getfixturevalue("influx2_url")
    config = InfluxConfig(
        url=url, database=f"test_{uuid.uuid4().hex[:10]}", api=api, timeout_s=5.0, retry_after_s=0.1
    )
    yield config
    httpx.post(f"{url}/query", params={"q": f'DROP DATABASE "{config.database}"'}, timeout=10)


def query(config: InfluxConfig, q: str) -> list[dict[str, Any]]:
    body = httpx.get(
        f"{config.url}/query", params={"db": config.database, "q": q, "epoch": "ms"}, timeout=10
    ).json()
    result = body["results"][0]
    assert "error" not in result, result
    return [
        {"tags": series.get("tags", {}), **dict(zip(series["columns"], row, strict=True))}
        for series in result.get("series", [])
        for row in series["values"]
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_setup_creates_the_database_and_retention_policies(influx_config: InfluxConfig):
    sink = InfluxSink(influx_config)
    assert type(sink.writer) is (InfluxV2Writer if influx_config.api == "v2" else InfluxV1Writer)
    sink.setup()
    sink.setup()  # idempotent
    rps = {
        r["name"]: r["duration"]
        for r in query(influx_config, f'SHOW RETENTION POLICIES ON "{influx_config.database}"')
    }
    assert rps["telemetry_7d"] == "168h0m0s" and rps["telemetry_1m_90d"] == "2160h0m0s"


def test_points_land_in_their_retention_policy_and_replays_overwrite(influx_config: InfluxConfig):
    sink = InfluxSink(influx_config)
    sink.setup()
    records = [telemetry(i, T0 + i * 1000) for i in range(1, 11)] + [
        aggregate(T0, 10),
        aggregate(T0 + 60_000, 3),
    ]
    for offset, record in enumerate(records):  # through the Quix batching path, two partitions
        sink.add(record, "r1", record["occurred_at"], [], "robot.telemetry", offset % 2, offset)
    sink.flush()
    assert sink.points_written == 12
    raw = query(influx_config, 'SELECT * FROM "telemetry_7d"."robot_telemetry" ORDER BY time')
    assert [r["seq"] for r in raw] == list(range(1, 11))
    assert raw[0] == {
        "tags": {}, "time": T0 + 1000, "battery": 0.501, "fleet": "f1", "robot": "r1", "seq": 1, "site": "s1",
        "speed": 1.0, "tenant": "acme", "x": 1.0, "y": 2.0, "yaw": 0.0,
    }  # fmt: skip
    agg = query(influx_config, 'SELECT count, distance_m FROM "telemetry_1m_90d"."robot_telemetry_1m"')
    assert [(r["time"], r["count"], r["distance_m"]) for r in agg] == [(T0, 10, 54.0), (T0 + 60_000, 3, 54.0)]
    # Nothing landed in the default policy, and a replay of everything changes nothing.
    assert query(influx_config, 'SELECT * FROM "robot_telemetry"') == []
    sink.write_records(records)
    assert query(influx_config, 'SELECT count(seq) FROM "telemetry_7d"."robot_telemetry"')[0]["count"] == 10
    tags = query(influx_config, 'SHOW TAG KEYS FROM "telemetry_7d"."robot_telemetry"')
    assert sorted(t["tagKey"] for t in tags) == ["fleet", "robot", "site", "tenant"]


def test_large_batches_are_chunked(influx_config: InfluxConfig):
    config = replace(influx_config, max_points_per_request=700)
    sink = InfluxSink(config)
    assert sink.write_records(telemetry(i, T0 + i, robot_id=f"r{i % 7}") for i in range(5000)) == 5000
    assert query(config, 'SELECT count(seq) FROM "telemetry_7d"."robot_telemetry"')[0]["count"] == 5000


def test_unreachable_influx_is_backpressure_then_the_real_one_works(influx_config: InfluxConfig):
    down = InfluxSink(replace(influx_config, url=f"http://127.0.0.1:{free_port()}"))
    down.setup()  # logs, does not raise: the schema is created on the first successful write
    down.add(telemetry(1, T0), "r1", T0, [], "robot.telemetry", 0, 0)
    with pytest.raises(SinkBackpressureError) as info:
        down.flush()
    assert info.value.retry_after == influx_config.retry_after_s
    assert not down._batches  # the batch is dropped; the app seeks back and re-delivers it
    up = InfluxSink(influx_config)
    up.add(telemetry(1, T0), "r1", T0, [], "robot.telemetry", 0, 0)
    up.flush()
    assert len(query(influx_config, 'SELECT * FROM "telemetry_7d"."robot_telemetry"')) == 1


@pytest.mark.parametrize("api", ["v1", "v2"])
def test_a_server_that_never_answers_is_backpressure(api: Literal["v1", "v2"]):
    with socket.socket() as listener:  # accepts connections into the backlog, never responds
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        config = InfluxConfig(
            url=f"http://127.0.0.1:{listener.getsockname()[1]}", api=api, timeout_s=0.3, retry_after_s=0.1
        )
        with pytest.raises(SinkBackpressureError):
            InfluxSink(config).write_records([telemetry(1, T0)])


def test_a_lost_database_is_recreated_after_one_backpressure(influx_config: InfluxConfig):
    sink = InfluxSink(influx_config)
    sink.write_records([telemetry(1, T0)])
    httpx.post(
        f"{influx_config.url}/query", params={"q": f'DROP DATABASE "{influx_config.database}"'}, timeout=10
    )
    with pytest.raises(SinkBackpressureError):
        sink.write_records([telemetry(2, T0 + 1)])
    sink.write_records([telemetry(2, T0 + 1)])
    assert len(query(influx_config, 'SELECT * FROM "telemetry_7d"."robot_telemetry"')) == 1


def test_points_influx_refuses_are_dead_lettered_and_the_rest_written(
    influx_config: InfluxConfig, dead_letters: DeadLetters
):
    sink = InfluxSink(influx_config, dead_letter=dead_letters.writer)
    sink.setup()
    # "seq" is a float field in the shard of two days ago (shards of this policy span a day): our integer
    # seq conflicts there (HTTP 400, "field type conflict"), and only there.
    before = T0 - 2 * 24 * 3_600_000
    InfluxV1Writer(influx_config).write("telemetry_7d", [f"robot_telemetry,robot=r1 seq=1.5 {before}"])
    records = [telemetry(i, T0 + i if i != 7 else before + 7, fleet_id="", site_id="", tenant_id="")
               for i in range(1, 13)]  # fmt: skip
    for offset, record in enumerate(records):
        sink.add(record, "r", record["occurred_at"], [], "robot.telemetry.accepted", 0, offset)
    sink.flush()
    assert sink.refused == 1 and sink.points_written == 11
    assert (
        len(query(influx_config, f'SELECT * FROM "telemetry_7d"."robot_telemetry" WHERE time > {T0}ms')) == 11
    )
    (dead,) = dead_letters.read(1)
    headers = dict(dead.headers())
    assert headers["fleet-dlq-offset"] == b"6" and headers["fleet-dlq-topic"] == b"robot.telemetry.accepted"
    assert b"HTTP 400" in headers["fleet-dlq-error"] and b"conflict" in headers["fleet-dlq-error"]
    assert dead_letters.codecs["robot.telemetry.accepted"].decode(dead.value()) == records[6]


def test_records_at_the_limits_are_written_or_dead_lettered(
    influx_config: InfluxConfig, dead_letters: DeadLetters
):
    """Nulls, NaN and infinities, unicode and long tags, huge numbers are written (non-finite fields are
    left out); a time InfluxDB cannot store is dead-lettered; the sink keeps going."""
    sink = InfluxSink(influx_config, dead_letter=dead_letters.writer)
    nan, inf = float("nan"), float("inf")
    unicode = "робот 🤖,= 漢字"
    records = [
        telemetry(1, T0 + 1, battery=nan, speed=inf),  # only the finite fields
        telemetry(2, T0 + 2, robot_id=unicode, fleet_id=None, site_id=""),  # escaped, empty tags left out
        telemetry(3, T0 + 3, robot_id="r" * 10_000),  # a long tag value
        telemetry(2**62, T0 + 4, battery=1e308, pose={"x": -1e308, "y": 0.0, "yaw": None}),
        telemetry(5, 4611686018427387903),  # refused: no InfluxDB time (nor ours: its dead letter is JSON)
        telemetry(6, 253_402_300_799_999),  # year 9999: valid for us, refused by InfluxDB (2262 at most)
        telemetry(7, T0 + 7),
    ]
    for offset, record in enumerate(records):
        sink.add(record, "r", 0, [], "robot.telemetry.accepted", 1, offset)
    sink.flush()
    assert sink.points_written == 5 and sink.refused == 2
    rows = {r["seq"]: r for r in query(influx_config, 'SELECT * FROM "telemetry_7d"."robot_telemetry"')}
    assert sorted(rows) == [1, 2, 3, 7, 2**62]
    assert rows[1]["battery"] is None and rows[1]["speed"] is None and rows[1]["x"] == 1.0
    assert rows[2]["robot"] == unicode and rows[2]["site"] is None and rows[2]["fleet"] is None
    assert rows[3]["robot"] == "r" * 10_000 and rows[2**62]["battery"] == 1e308
    far, year_9999 = dead_letters.read(2)
    assert [dict(d.headers())["fleet-dlq-offset"] for d in (far, year_9999)] == [b"4", b"5"]
    assert all(
        b"outside the times InfluxDB stores" in dict(d.headers())["fleet-dlq-error"] for d in (far, year_9999)
    )
    assert dead_letters.codecs["robot.telemetry.accepted"].decode(year_9999.value()) == records[5]
    assert orjson.loads(far.value()) == records[4]  # no Avro record holds that time
    assert b"kept as JSON" in dict(far.headers())["fleet-dlq-error"]
    sink.write_records([telemetry(8, T0 + 8)])  # and the sink goes on
    assert len(query(influx_config, 'SELECT * FROM "telemetry_7d"."robot_telemetry"')) == 6


def test_points_older_than_the_retention_policy_are_dropped_without_failing(influx_config: InfluxConfig):
    # 1.6 says "points beyond retention policy", 1.8+ "points outside retention policy": both are fine.
    sink = InfluxSink(influx_config)
    old = T0 - 8 * 24 * 3_600_000
    assert sink.write_records([telemetry(1, old), telemetry(2, T0)]) == 2
    assert [r["seq"] for r in query(influx_config, 'SELECT * FROM "telemetry_7d"."robot_telemetry"')] == [2]


def test_the_v2_path_really_writes_through_api_v2_write(influx_url: str, influx2_url: str):
    """InfluxDB 1.6 has no /api/v2/write: the v2 writer is refused there (404) and works on 1.12."""
    database = f"test_{uuid.uuid4().hex[:10]}"
    try:
        old = InfluxConfig(url=influx_url, database=database, api="v2", timeout_s=5.0)
        InfluxV1Writer(old).setup()
        with pytest.raises(InfluxWriteError, match="HTTP 404"):
            InfluxV2Writer(old).write("telemetry_7d", [f"robot_telemetry,robot=r1 seq=1i {T0}"])
        new = replace(old, url=influx2_url)
        sink = InfluxSink(new)
        assert sink.write_records([telemetry(7, T0)]) == 1
        assert [r["seq"] for r in query(new, 'SELECT * FROM "telemetry_7d"."robot_telemetry"')] == [7]
    finally:
        for url in (influx_url, influx2_url):
            httpx.post(f"{url}/query", params={"q": f'DROP DATABASE "{database}"'}, timeout=10)
