"""Redis sink: the latest robot status and task view per tenant, for the gateway's hot reads.

Keys (the gateway reads exactly these):

- ``fleet:{tenant_id}:robot:{robot_id}``: JSON of the RobotStatus dict, TTL ``robot_ttl_s`` (1 h).
- ``fleet:{tenant_id}:site:{site_id}:robots``: sorted set of robot ids, score ``last_seen_at`` (ms).
- ``fleet:{tenant_id}:task:{task_id}``: JSON ``{task_id, site_id, state, robot_id, attempt, seq,
  updated_at, reason}`` from TaskEvent transitions, TTL ``task_ttl_s`` (24 h).
- ``fleet:{tenant_id}:site:{site_id}:tasks``: sorted set of task ids, score ``updated_at`` (ms).

A key never moves backwards: a Lua script applies a record only if it is newer than what is stored (robot
status: higher ``seq``, or the same ``seq`` and a later ``occurred_at`` -- an OFFLINE status repeats the
last sample's seq; task: higher ``seq``). Replays and out-of-order deliveries are therefore harmless.
Sorted-set members older than the key TTL are trimmed on write, and the set's own TTL is refreshed.
All writes of a flush go in one pipeline; connection errors and timeouts raise ``SinkBackpressureError``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from quixstreams.sinks import SinkBackpressureError

from sinks.batching import FlushAllSink

__all__ = [
    "RedisConfig",
    "RedisSink",
    "robot_key",
    "site_robots_key",
    "site_tasks_key",
    "task_key",
    "task_view",
]

logger = logging.getLogger(__name__)


def robot_key(tenant_id: str, robot_id: str) -> str:
    return f"fleet:{tenant_id}:robot:{robot_id}"


def site_robots_key(tenant_id: str, site_id: str) -> str:
    return f"fleet:{tenant_id}:site:{site_id}:robots"


def task_key(tenant_id: str, task_id: str) -> str:
    return f"fleet:{tenant_id}:task:{task_id}"


def site_tasks_key(tenant_id: str, site_id: str) -> str:
    return f"fleet:{tenant_id}:site:{site_id}:tasks"


# KEYS: value key, sorted-set key. ARGV: json, seq, time, ttl_s, member, score, trim_below, time field.
# The stored JSON carries "seq" and the time field (RobotStatus occurred_at, task view updated_at), so the
# ordering needs no second key.
_UPSERT_IF_NEWER = """
local current = redis.call('GET', KEYS[1])
local seq = tonumber(ARGV[2])
local at = tonumber(ARGV[3])
if current then
  local old = cjson.decode(current)
  local old_seq = tonumber(old['seq']) or -1
  local old_at = tonumber(old[ARGV[8]]) or -1
  if seq < old_seq or (seq == old_seq and at <= old_at) then
    return 0
  end
end
local ttl = tonumber(ARGV[4])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[7])
redis.call('EXPIRE', KEYS[2], ttl)
return 1
"""


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    robot_ttl_s: int = 3600
    task_ttl_s: int = 24 * 3600
    retry_after_s: float = 5.0
    socket_timeout_s: float = 5.0


def task_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """The task view stored for a TaskEvent (``updated_at`` is its ``occurred_at``)."""
    return {
        "task_id": event["task_id"],
        "site_id": event.get("site_id"),
        "state": event["state"],
        "robot_id": event.get("robot_id"),
        "attempt": event.get("attempt", 0),
        "seq": event["seq"],
        "updated_at": event["occurred_at"],
        "reason": event.get("reason"),
    }


# key, zkey, json, seq, time, ttl, member, score, trim below, time field
_Write = tuple[str, str, bytes, int, int, int, str, int, int, str]


class RedisSink(FlushAllSink):
    """Quix sink for ``robot.status`` (RobotStatus) and ``task.events`` (TaskEvent) into Redis views.

    A TaskEvent that is not a TRANSITION (REJECTED, DUPLICATE refusals) does not change the view.
    """

    def __init__(
        self,
        config: RedisConfig,
        client: redis.Redis | None = None,
        on_flush: Callable[[int, float], None] | None = None,
        on_backpressure: Callable[[BaseException], None] | None = None,
    ) -> None:
        """:param on_flush: called with (keys written, seconds) after every successful flush (metrics).
        :param on_backpressure: called with the error when a flush fails and will be retried (metrics)."""
        super().__init__(on_flush, on_backpressure)
        self.config = config
        self.client = client or redis.Redis.from_url(
            config.url, socket_timeout=config.socket_timeout_s, socket_connect_timeout=config.socket_timeout_s
        )
        self._script = self.client.register_script(_UPSERT_IF_NEWER)

    def setup(self) -> None:
        try:
            self.client.ping()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            logger.warning("Redis not reachable at start-up (%s); writes will retry", exc)

    def _robot(self, status: Mapping[str, Any]) -> _Write:
        ttl = self.config.robot_ttl_s
        last_seen = int(status["last_seen_at"])
        return (
            robot_key(status["tenant_id"], status["robot_id"]),
            site_robots_key(status["tenant_id"], status["site_id"]),
            orjson.dumps(status),
            int(status["seq"]),
            int(status["occurred_at"]),
            ttl,
            status["robot_id"],
            last_seen,
            last_seen - ttl * 1000,
            "occurred_at",
        )

    def _task(self, event: Mapping[str, Any]) -> _Write:
        ttl = self.config.task_ttl_s
        view = task_view(event)
        at = int(view["updated_at"])
        return (
            task_key(event["tenant_id"], event["task_id"]),
            site_tasks_key(event["tenant_id"], event["site_id"]),
            orjson.dumps(view),
            int(view["seq"]),
            at,
            ttl,
            event["task_id"],
            at,
            at - ttl * 1000,
            "updated_at",
        )

    def plan(self, records: Iterable[Mapping[str, Any] | None]) -> list[_Write]:
        """The writes for ``records``, keeping only the newest record per key of the batch."""
        newest: dict[str, _Write] = {}
        for record in records:
            if record is None:
                continue
            if "status" in record and "robot_id" in record:
                write = self._robot(record)
            elif "task_id" in record and "state" in record:
                if record.get("kind", "TRANSITION") != "TRANSITION":
                    continue
                write = self._task(record)
            else:
                logger.warning(
                    "record is neither a RobotStatus nor a TaskEvent; skipped",
                    extra={"tenant_id": record.get("tenant_id")},
                )
                continue
            current = newest.get(write[0])
            if current is None or (write[3], write[4]) > (current[3], current[4]):
                newest[write[0]] = write
        return list(newest.values())

    def write_records(self, records: Iterable[Mapping[str, Any] | None]) -> int:
        """Apply the records now; returns how many keys moved forward."""
        writes = self.plan(records)
        if not writes:
            return 0
        started = time.perf_counter()
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, zkey, *args in writes:
                self._script(keys=[key, zkey], args=args, client=pipe)
            applied = sum(int(r) for r in pipe.execute())
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            logger.warning("Redis unavailable (%s); pausing for %.1f s", exc, self.config.retry_after_s)
            raise SinkBackpressureError(retry_after=self.config.retry_after_s) from exc
        if self._on_flush:
            self._on_flush(len(writes), time.perf_counter() - started)
        return applied

    def close(self) -> None:
        self.client.close()
