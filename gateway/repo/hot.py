"""Redis hot views written by the Redis sink: latest robot status and task view per tenant.

Keys (see sinks/redis): ``fleet:{tenant}:robot:{robot}`` and ``fleet:{tenant}:task:{task}`` hold JSON
documents with a TTL; ``fleet:{tenant}:site:{site}:robots`` and ``...:tasks`` are sorted sets (score:
last update) of the ids at the site. The tenant is part of every key, so no read can cross tenants.

Redis down (refused, reset or timed out) raises :class:`gateway.errors.Unavailable`: the routers then read
Postgres instead.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.errors import Unavailable

__all__ = ["HotViews"]

T = TypeVar("T")


async def _call(call: Awaitable[T]) -> T:
    try:
        return await call
    except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
        raise Unavailable("redis", f"{type(exc).__name__}: {exc}") from exc


def _robot_key(tenant_id: str, robot_id: str) -> str:
    return f"fleet:{tenant_id}:robot:{robot_id}"


def _task_key(tenant_id: str, task_id: str) -> str:
    return f"fleet:{tenant_id}:task:{task_id}"


class HotViews:
    """Reads of the Redis views."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def robot(self, tenant_id: str, robot_id: str) -> dict[str, Any] | None:
        raw = await _call(self._redis.get(_robot_key(tenant_id, robot_id)))
        return orjson.loads(raw) if raw else None

    async def task(self, tenant_id: str, task_id: str) -> dict[str, Any] | None:
        raw = await _call(self._redis.get(_task_key(tenant_id, task_id)))
        return orjson.loads(raw) if raw else None

    async def site_robots(self, tenant_id: str, site_id: str, limit: int = 500) -> list[dict[str, Any]]:
        """Latest status of the robots seen at a site, most recently seen first (expired ones skipped)."""
        ids = await _call(self._redis.zrevrange(f"fleet:{tenant_id}:site:{site_id}:robots", 0, limit - 1))
        if not ids:
            return []
        keys = [_robot_key(tenant_id, i.decode() if isinstance(i, bytes) else i) for i in ids]
        return [orjson.loads(raw) for raw in await _call(self._redis.mget(keys)) if raw]
