"""Per-tenant rate limits in Redis: a sliding-window counter (two fixed windows, weighted).

Every request is counted in Redis, so the limit holds across the workers and replicas of the gateway.
The estimate ``previous * (1 - elapsed fraction) + current`` smooths the burst a plain fixed window
allows at its boundary. If Redis is unreachable, requests are let through (fail open) and /readyz
reports Redis down.

**One round trip for many requests.** A Lua script adds ``n`` to the current window's counter (setting
its expiry when it creates it) and reads the previous window's, atomically. Within one process, the
requests of a tenant that arrive while its previous call is in flight are coalesced: the next call
adds all of them at once (``INCRBY n``) and hands each request its own place in the count
(``total - n + 1`` ... ``total``), exactly as ``n`` separate ``INCR`` would have. Under load this takes
Redis off the per-request path (one call per tenant per round trip, not per request) without
changing what is counted.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["RateDecision", "RateLimiter"]

logger = logging.getLogger(__name__)

# KEYS[1] current window, KEYS[2] previous window; ARGV[1] requests to add, ARGV[2] expiry seconds.
_HIT = """
local current = redis.call('INCRBY', KEYS[1], ARGV[1])
if current == tonumber(ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
local previous = redis.call('GET', KEYS[2])
return {current, tonumber(previous) or 0}
"""

#: What a waiting request receives: (its place in the current window's count, previous window's count).
_Counts = tuple[int, int]


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int


@dataclass(slots=True)
class _Window:
    """The requests of one tenant and window waiting for the next Redis call of this process."""

    waiting: list[asyncio.Future[_Counts]] = field(default_factory=list)
    flusher: asyncio.Task[None] | None = None  # held here: the loop keeps only a weak reference


class RateLimiter:
    def __init__(self, redis: Redis, limit: int, window_seconds: int, *, prefix: str = "fleet") -> None:
        self._redis = redis
        self.limit = limit
        self.window = window_seconds
        self._prefix = prefix
        self._script = redis.register_script(_HIT)
        self._windows: dict[tuple[str, int], _Window] = {}
        #: Redis calls made (each may count many requests); for tests and the benchmark.
        self.calls = 0

    async def hit(self, tenant_id: str, now: float | None = None) -> RateDecision:
        """Count one request of ``tenant_id`` and say whether it is within the limit."""
        if self.limit <= 0:
            return RateDecision(True, 0, 0, 0)
        now = time.time() if now is None else now
        index = int(now // self.window)
        into = now - index * self.window
        try:
            current, previous = await self._count(tenant_id, index)
        except (RedisError, OSError) as exc:
            logger.warning("rate limiter unavailable, letting the request through: %s", exc)
            return RateDecision(True, self.limit, self.limit, 0)
        weight = 1.0 - into / self.window
        estimate = previous * weight + current
        if estimate <= self.limit:
            return RateDecision(True, self.limit, max(0, math.floor(self.limit - estimate)), 0)
        # When will the estimate fall back under the limit? The previous window's weight decays linearly.
        if current > self.limit or previous == 0:
            wait = self.window - into
        else:
            wait = max(0.0, (1.0 - (self.limit - current) / previous) * self.window - into)
        return RateDecision(False, self.limit, 0, max(1, math.ceil(wait)))

    async def _count(self, tenant_id: str, index: int) -> _Counts:
        """This request's place in window ``index`` of ``tenant_id``, and the previous window's count."""
        future: asyncio.Future[_Counts] = asyncio.get_running_loop().create_future()
        key = (tenant_id, index)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
            window.waiting.append(future)
            window.flusher = asyncio.create_task(self._flush(key, window), name=f"ratelimit:{tenant_id}")
        else:
            window.waiting.append(future)
        return await future

    async def _flush(self, key: tuple[str, int], window: _Window) -> None:
        """Count the waiting requests of ``key``, one Redis call per batch, until none is left."""
        tenant_id, index = key
        current_key = f"{self._prefix}:{tenant_id}:ratelimit:{index}"
        previous_key = f"{self._prefix}:{tenant_id}:ratelimit:{index - 1}"
        try:
            while window.waiting:
                batch, window.waiting = window.waiting, []
                n = len(batch)
                self.calls += 1
                try:
                    total, previous = await self._script(
                        keys=[current_key, previous_key], args=[n, self.window * 2]
                    )
                except Exception as exc:
                    for future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                except BaseException:
                    for future in batch:
                        future.cancel()
                    raise
                first = int(total) - n + 1
                for i, future in enumerate(batch):
                    if not future.done():  # a cancelled request is still counted: it reached us
                        future.set_result((first + i, int(previous)))
        finally:
            del self._windows[key]
            for future in window.waiting:  # only when this task itself was cancelled
                if not future.done():
                    future.cancel()
