"""The Redis rate limiter: exact counts when concurrent requests are coalesced into one call, shared
across processes (two limiters, as two workers), key expiry, and failing open when Redis is down."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from gateway.ratelimit import RateLimiter

pytestmark = pytest.mark.integration

NOW = 1_800_000_030.0  # 30 s into a 60 s window: the previous window weighs half


@pytest.fixture
async def redis(redis_url: str):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


def _tenant() -> str:
    return f"rl-{uuid.uuid4().hex[:10]}"


async def test_concurrent_hits_are_one_call_and_counted_exactly(redis: Redis) -> None:
    limiter = RateLimiter(redis, limit=50, window_seconds=60)
    tenant = _tenant()
    decisions = await asyncio.gather(*(limiter.hit(tenant, now=NOW) for _ in range(80)))
    assert sum(d.allowed for d in decisions) == 50
    # Each request got its own place in the count: remaining is 49, 48, ..., 0 once each.
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))
    assert all(d.retry_after >= 1 for d in decisions if not d.allowed)
    # All 80 were waiting before the first call went out: one round trip counted them.
    assert limiter.calls == 1
    assert int(await redis.get(f"fleet:{tenant}:ratelimit:{int(NOW // 60)}")) == 80


async def test_requests_arriving_while_a_call_is_in_flight_form_the_next_batch(redis: Redis) -> None:
    limiter = RateLimiter(redis, limit=1000, window_seconds=60)
    tenant = _tenant()
    first = asyncio.ensure_future(limiter.hit(tenant, now=NOW))
    await asyncio.sleep(0)  # the first request is waiting; its call is about to go out
    await asyncio.sleep(0)
    rest = [asyncio.ensure_future(limiter.hit(tenant, now=NOW)) for _ in range(30)]
    decisions = [await first, *await asyncio.gather(*rest)]
    assert sorted(d.remaining for d in decisions) == list(range(1000 - 31, 1000))
    assert limiter.calls == 2


async def test_the_limit_is_shared_by_every_process(redis: Redis, redis_url: str) -> None:
    # Two limiters with clients of their own stand for two workers (or replicas) of the gateway.
    second = Redis.from_url(redis_url)
    try:
        worker_a = RateLimiter(redis, limit=10, window_seconds=60)
        worker_b = RateLimiter(second, limit=10, window_seconds=60)
        tenant = _tenant()
        a = await asyncio.gather(*(worker_a.hit(tenant, now=NOW) for _ in range(6)))
        b = await asyncio.gather(*(worker_b.hit(tenant, now=NOW) for _ in range(6)))
        assert sum(d.allowed for d in a) == 6
        assert sum(d.allowed for d in b) == 4
    finally:
        await second.aclose()


async def test_previous_window_counts_with_its_weight_and_keys_expire(redis: Redis) -> None:
    limiter = RateLimiter(redis, limit=10, window_seconds=60)
    tenant = _tenant()
    earlier = await asyncio.gather(*(limiter.hit(tenant, now=NOW - 60) for _ in range(10)))
    assert all(d.allowed for d in earlier)
    ttl = await redis.ttl(f"fleet:{tenant}:ratelimit:{int(NOW // 60) - 1}")
    assert 0 < ttl <= 120
    # Half-way through the next window the previous 10 weigh 5: five more fit, the sixth does not.
    now = await asyncio.gather(*(limiter.hit(tenant, now=NOW) for _ in range(6)))
    assert [d.allowed for d in now].count(True) == 5


async def test_redis_down_lets_requests_through() -> None:
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        limiter = RateLimiter(down, limit=1, window_seconds=60)
        decisions = await asyncio.gather(*(limiter.hit(_tenant(), now=NOW) for _ in range(3)))
        assert all(d.allowed for d in decisions)
        assert limiter._windows == {}  # nothing left waiting
    finally:
        await down.aclose()


async def test_zero_limit_turns_the_limiter_off(redis: Redis) -> None:
    limiter = RateLimiter(redis, limit=0, window_seconds=60)
    assert (await limiter.hit(_tenant(), now=NOW)).allowed
    assert limiter.calls == 0
