"""Per-tenant rate limits in Redis: a sliding-window counter (two fixed windows, weighted).

One pipelined round trip per request: ``INCR`` of the current window's key (with ``EXPIRE``) and
``GET`` of the previous one. The estimate ``previous * (1 - elapsed fraction) + current`` smooths the
burst a plain fixed window allows at its boundary. If Redis is unreachable, requests are let through
(fail open) and /readyz reports Redis down.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

__all__ = ["RateDecision", "RateLimiter"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after: int


class RateLimiter:
    def __init__(self, redis: Redis, limit: int, window_seconds: int, *, prefix: str = "fleet") -> None:
        self._redis = redis
        self.limit = limit
        self.window = window_seconds
        self._prefix = prefix

    async def hit(self, tenant_id: str, now: float | None = None) -> RateDecision:
        """Count one request of ``tenant_id`` and say whether it is within the limit."""
        if self.limit <= 0:
            return RateDecision(True, 0, 0, 0)
        now = time.time() if now is None else now
        index = int(now // self.window)
        into = now - index * self.window
        current_key = f"{self._prefix}:{tenant_id}:ratelimit:{index}"
        previous_key = f"{self._prefix}:{tenant_id}:ratelimit:{index - 1}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(current_key)
                pipe.expire(current_key, self.window * 2)
                pipe.get(previous_key)
                current, _, previous_raw = await pipe.execute()
        except (RedisError, OSError) as exc:
            logger.warning("rate limiter unavailable, letting the request through: %s", exc)
            return RateDecision(True, self.limit, self.limit, 0)
        previous = int(previous_raw or 0)
        weight = 1.0 - into / self.window
        estimate = previous * weight + int(current)
        if estimate <= self.limit:
            return RateDecision(True, self.limit, max(0, math.floor(self.limit - estimate)), 0)
        # When will the estimate fall back under the limit? The previous window's weight decays linearly.
        if int(current) > self.limit or previous == 0:
            wait = self.window - into
        else:
            wait = max(0.0, (1.0 - (self.limit - int(current)) / previous) * self.window - into)
        return RateDecision(False, self.limit, 0, max(1, math.ceil(wait)))
