"""Unit tests of the gateway's pure parts: map checks, SSE positions/replay/back-pressure, auth, settings."""

from __future__ import annotations

import asyncio
from collections import deque

import orjson
import pytest

from gateway.auth import AuthError, TokenVerifier, issue_token
from gateway.mapcheck import check_site_map
from gateway.models import SiteMapIn
from gateway.pagination import CursorError, decode_cursor, encode_cursor
from gateway.settings import GatewaySettings
from gateway.sse import STREAM_TOPICS, PositionError, StreamHub, decode_position, encode_position
from pipelines.settings import ConfigError, load_settings

SECRET = "unit-test-secret-0123456789abcdef012345"


def test_positions_round_trip_and_reject_garbage() -> None:
    pos = {(0, 0): 5, (0, 1): 123456, (4, 0): 0}
    text = encode_position(pos, [2, 0, 0, 0, 1])
    assert decode_position(text) == pos
    for bad in ("", "v2-1_2", "v1-x!_0_0_0_0", "v1-1_2"):
        with pytest.raises(PositionError):
            decode_position(bad)


def _hub(ring: int = 100, queue: int = 100) -> StreamHub:
    hub = StreamHub({}, "", {t: orjson.loads for t in STREAM_TOPICS}, ring_size=ring, client_queue=queue)
    hub.partition_counts = [2, 0, 0, 0, 0]
    for p in (0, 1):
        hub._position[(0, p)] = hub._floor[(0, p)] = 0
        hub._rings[(0, p)] = deque(maxlen=ring)
    return hub


def _ingest(hub: StreamHub, partition: int, offset: int, tenant: str, robot: str, seq: int) -> None:
    value = orjson.dumps({"tenant_id": tenant, "site_id": "s", "robot_id": robot, "seq": seq})
    hub._ingest(0, partition, offset, value, orjson.loads)


def _drain(queue: asyncio.Queue[bytes]) -> list[bytes]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def _seqs(frames: list[bytes]) -> list[int]:
    return [orjson.loads(f.split(b"data: ", 1)[1])["seq"] for f in frames if f.startswith(b"id: ")]


def _ids(frames: list[bytes]) -> list[str]:
    return [f.split(b"\n", 1)[0][4:].decode() for f in frames if f.startswith(b"id: ")]


async def test_replay_from_any_delivered_id_is_exact() -> None:
    hub = _hub()
    sub, _ = hub.subscribe("a")
    offsets = [0, 0]
    for seq in range(1, 21):
        p = seq % 2
        _ingest(hub, p, offsets[p], "a" if seq % 3 else "b", f"r{p}", seq)
        offsets[p] += 1
    live = _drain(sub.queue)
    delivered = _seqs(live)
    assert delivered == [s for s in range(1, 21) if s % 3]
    for cut, event_id in enumerate(_ids(live)):
        resumed, replay = hub.subscribe("a", last_event_id=event_id)
        assert _seqs(replay) == delivered[cut + 1 :]
        hub.unsubscribe(resumed)


async def test_gap_older_than_ring_sends_reset_then_what_is_kept() -> None:
    hub = _hub(ring=3)
    sub, _ = hub.subscribe("a")
    _ingest(hub, 0, 0, "a", "r", 1)
    first_id = _ids(_drain(sub.queue))[0]
    for offset in range(1, 8):
        _ingest(hub, 0, offset, "a", "r", offset + 1)
    _, replay = hub.subscribe("a", last_event_id=first_id)
    assert b"event: reset" in replay[0]
    assert _seqs(replay) == [6, 7, 8]


async def test_slow_client_is_dropped_without_affecting_others() -> None:
    hub = _hub(queue=3)
    slow, _ = hub.subscribe("a")
    fast, _ = hub.subscribe("a")
    got: list[bytes] = []
    for offset in range(10):
        _ingest(hub, 0, offset, "a", "r", offset)
        got += _drain(fast.queue)
    assert slow.dropped and hub.dropped_clients == 1
    assert not fast.dropped and _seqs(got) == list(range(10))
    assert hub.client_count == 1


def test_tenant_cap() -> None:
    from gateway.sse import TooManyClients

    hub = _hub()
    hub.max_clients_per_tenant = 1
    hub.subscribe("a")
    hub.subscribe("b")
    with pytest.raises(TooManyClients):
        hub.subscribe("a")


GOOD = {
    "version": 1,
    "name": "m",
    "nodes": [
        {"id": "s1", "x": 0, "y": 0, "kind": "STATION"},
        {"id": "w", "x": 1, "y": 0},
        {"id": "c1", "x": 2, "y": 0, "kind": "CHARGER"},
    ],
    "lanes": [
        {"id": "l1", "from_node": "s1", "to_node": "w"},
        {"id": "l2", "from_node": "w", "to_node": "c1"},
    ],
    "zones": [
        {
            "id": "z",
            "kind": "NO_GO",
            "polygon": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 1, "y": 1}, {"x": 0, "y": 1}],
        }
    ],
}


def test_valid_map_has_no_problems() -> None:
    assert check_site_map(SiteMapIn.model_validate(GOOD)) == []


def test_one_way_lane_breaks_reachability() -> None:
    bad = {
        **GOOD,
        "lanes": [
            {"id": "l1", "from_node": "s1", "to_node": "w", "bidirectional": False},
            {"id": "l2", "from_node": "w", "to_node": "c1"},
        ],
    }
    problems = dict(check_site_map(SiteMapIn.model_validate(bad)))
    assert "cannot reach s1" in problems[("body", "nodes", 2)]
    assert ("body", "nodes", 0) not in problems


def test_zone_problems() -> None:
    zones = [
        {"id": "z1", "kind": "SLOW", "polygon": [{"x": 0, "y": 0}, {"x": 1, "y": 1}, {"x": 2, "y": 2}]},
        {"id": "z1", "kind": "SLOW", "polygon": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 0, "y": 0}]},
    ]
    problems = dict(check_site_map(SiteMapIn.model_validate({**GOOD, "zones": zones})))
    assert "zero area" in problems[("body", "zones", 0, "polygon")]
    assert "repeats corner 0" in problems[("body", "zones", 1, "polygon", 2)]
    assert "duplicate id 'z1'" in problems[("body", "zones", 1, "id")]


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor(1_767_225_600_123_456, "t1")) == (1_767_225_600_123_456, "t1")
    assert decode_cursor(encode_cursor(7, "robot é:1")) == (7, "robot é:1")
    for bad in ("!!", "12", "12.a", "12.AB", "x.00", "12.00\n", " 12.00", "1" * 19 + ".00"):
        with pytest.raises(CursorError):
            decode_cursor(bad)


async def test_hs256_verifier() -> None:
    verifier = TokenVerifier(audience="fleetstream", issuer="fleetstream-dev", secret=SECRET)
    principal = await verifier.verify(issue_token(SECRET, tenant_id="acme", roles=["viewer", "operator"]))
    assert principal.tenant_id == "acme" and principal.role == "operator" and principal.has_role("viewer")
    assert not principal.has_role("admin")
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify(issue_token(SECRET, tenant_id="acme", roles=["viewer"], ttl_seconds=-100))


async def test_an_expired_token_gets_the_leeway_and_no_more() -> None:
    """The default leeway is 5 s (it was 30): a token 10 s past its expiry is refused, 2 s past it is not."""
    verifier = TokenVerifier(
        audience="fleetstream",
        issuer="fleetstream-dev",
        secret=SECRET,
        leeway=GatewaySettings().leeway_seconds,
    )
    await verifier.verify(issue_token(SECRET, tenant_id="acme", roles=["viewer"], ttl_seconds=-2))
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify(issue_token(SECRET, tenant_id="acme", roles=["viewer"], ttl_seconds=-10))


def test_settings_refuse_placeholder_secret_in_production() -> None:
    with pytest.raises(ConfigError, match="jwt_secret"):
        load_settings(GatewaySettings, environment="production")
    with pytest.raises(ConfigError, match="jwks_url"):
        load_settings(GatewaySettings, auth_mode="jwks")
    ok = load_settings(GatewaySettings, environment="production", jwt_secret="x" * 40)
    assert ok.auth_mode == "hs256"
