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
Sorted-set members older than the key TTL are trimmed on write, and the set's TTL is extended to the
key's. All writes of a flush go in one pipeline.

Failures follow ``sinks.deadletters``: connection errors, timeouts and a Redis that cannot write now
(OOM, MISCONF: it cannot persist, READONLY, LOADING, BUSY) raise ``SinkBackpressureError``; a record that
is no RobotStatus or TaskEvent, or that Redis refuses (its key holds something else), is dead-lettered
and the others are written.

**Lost data.** The views are a cache of the log. A marker key (``RedisConfig.marker_key``, no TTL) says
they are complete. When it is missing (Redis restarted without its data, was flushed; or the first
start), the sink rebuilds them from the topics (``sinks.redis_views``): robot views from
``robot.status`` and task views from ``task.events``, from ``ttl`` ago, each with the TTL it has left.
A watcher thread checks the marker every ``views_check_s`` (and at start-up); one replica rebuilds
(a lock key), while the sink goes on writing: both only move views forward.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from quixstreams.sinks import SinkBackpressureError

from schemas import catalog
from schemas.ids import now_ms
from sinks.batching import FlushAllSink, Origins
from sinks.deadletters import DeadLetter, RecordRefused, refuse_always
from sinks.redis_views import Replay

__all__ = [
    "VIEWS_MARKER",
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
# ordering needs no second key. The set's TTL only grows (a rebuilt old view has less TTL left). Nothing
# is written when a key holds something else (the record is refused whole, not half-written).
_UPSERT_IF_NEWER = """
local index = redis.call('TYPE', KEYS[2])['ok']
if index ~= 'zset' and index ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' holds a ' .. index .. ', not a sorted set')
end
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
if redis.call('TTL', KEYS[2]) < ttl then
  redis.call('EXPIRE', KEYS[2], ttl)
end
return 1
"""

#: Error replies that mean "Redis cannot write now", not "this record is wrong".
_OUTAGE_REPLIES = ("OOM", "MISCONF", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN",
                   "CLUSTERDOWN", "NOSCRIPT")  # fmt: skip


#: The default marker key of complete views (processors add their topic prefix).
VIEWS_MARKER = "fleet:views:complete"


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    robot_ttl_s: int = 3600
    task_ttl_s: int = 24 * 3600
    retry_after_s: float = 5.0
    socket_timeout_s: float = 5.0
    #: present while the views are complete; its absence starts a rebuild (one per environment)
    marker_key: str = VIEWS_MARKER
    views_check_s: float = 5.0


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


def _is_outage(error: BaseException) -> bool:
    if isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
        return True
    if not isinstance(error, redis.ResponseError):
        return False
    code = getattr(error, "status_code", None) or str(error).partition(" ")[0]  # redis-py strips known codes
    return code in _OUTAGE_REPLIES


class RedisSink(FlushAllSink):
    """Quix sink for ``robot.status`` (RobotStatus) and ``task.events`` (TaskEvent) into Redis views.

    A TaskEvent that is not a TRANSITION (REJECTED, DUPLICATE refusals) does not change the view.
    :param replay: reads a topic from a time (``sinks.redis_views.TopicReplay``); with it the sink
        rebuilds the views when Redis lost them (see the module doc), without it it does not.
    """

    def __init__(
        self,
        config: RedisConfig,
        client: redis.Redis | None = None,
        on_flush: Callable[[int, float], None] | None = None,
        on_backpressure: Callable[[BaseException], None] | None = None,
        dead_letter: DeadLetter = refuse_always,
        replay: Replay | None = None,
    ) -> None:
        """:param on_flush: called with (keys written, seconds) after every successful flush (metrics).
        :param on_backpressure: called with the error when a flush fails and will be retried (metrics).
        :param dead_letter: where a record Redis cannot take goes (``dlq.sink-redis``)."""
        super().__init__(on_flush, on_backpressure, dead_letter)
        self.config = config
        self.client = client or redis.Redis.from_url(
            config.url, socket_timeout=config.socket_timeout_s, socket_connect_timeout=config.socket_timeout_s
        )
        self._script = self.client.register_script(_UPSERT_IF_NEWER)
        self._replay = replay
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.rebuilds = 0

    def setup(self) -> None:
        try:
            self.client.ping()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            logger.warning("Redis not reachable at start-up (%s); writes will retry", exc)
        if self._replay is not None and self._watcher is None:
            self._watcher = threading.Thread(target=self._watch, name="redis-views-watcher", daemon=True)
            self._watcher.start()

    # --------------------------------------------------------------------------------------- planning
    def _robot(self, status: Mapping[str, Any], ttl: int) -> _Write:
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
            last_seen - self.config.robot_ttl_s * 1000,
            "occurred_at",
        )

    def _task(self, event: Mapping[str, Any], ttl: int) -> _Write:
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
            at - self.config.task_ttl_s * 1000,
            "updated_at",
        )

    def plan_one(self, record: Mapping[str, Any], now: int | None = None) -> _Write | None:
        """The write of one record (None: it changes no view). With ``now`` (ms), a rebuild's write: the
        TTL is what the view has left at ``now``, and None if it would have expired.

        :raises RecordRefused: the record is neither a RobotStatus nor a TaskEvent, or is malformed.
        """
        try:
            if "status" in record and "robot_id" in record:
                ttl = self.config.robot_ttl_s
                if now is not None:
                    ttl -= (now - int(record["occurred_at"])) // 1000
                return self._robot(record, ttl) if ttl > 0 else None
            if "task_id" in record and "state" in record:
                if record.get("kind", "TRANSITION") != "TRANSITION":
                    return None
                ttl = self.config.task_ttl_s
                if now is not None:
                    ttl -= (now - int(record["occurred_at"])) // 1000
                return self._task(record, ttl) if ttl > 0 else None
        except (KeyError, TypeError, ValueError) as exc:
            raise RecordRefused(f"not a Redis view: {type(exc).__name__}: {exc}") from exc
        raise RecordRefused("not a Redis view: the record is neither a RobotStatus nor a TaskEvent")

    def plan(self, records: Iterable[Mapping[str, Any] | None]) -> list[_Write]:
        """The writes for ``records``, keeping only the newest record per key of the batch.

        :raises RecordRefused: a record can never be a view.
        """
        return [write for _, write in self._newest(enumerate(records))]

    def _newest(
        self,
        records: Iterable[tuple[int, Mapping[str, Any] | None]],
        now: int | None = None,
        refuse: Callable[[int, RecordRefused], None] | None = None,
    ) -> list[tuple[int, _Write]]:
        """(index, write) of the newest record per key; a refused record goes to ``refuse`` (or raises)."""
        newest: dict[str, tuple[int, _Write]] = {}
        for i, record in records:
            if record is None:
                continue
            try:
                write = self.plan_one(record, now)
            except RecordRefused as exc:
                if refuse is None:
                    raise
                refuse(i, exc)
                continue
            if write is None:
                continue
            current = newest.get(write[0])
            if current is None or (write[3], write[4]) > (current[1][3], current[1][4]):
                newest[write[0]] = (i, write)
        return list(newest.values())

    # --------------------------------------------------------------------------------------- writing
    def write_all(self, values: Sequence[Mapping[str, Any] | None], origin: Origins) -> int:
        """Apply the records now; returns how many keys moved forward."""
        writes = self._newest(enumerate(values), refuse=lambda i, exc: self.refuse(origin(i), exc))
        if not writes:
            return 0
        started = time.perf_counter()
        applied = 0
        for (i, write), result in zip(writes, self._execute([w for _, w in writes]), strict=True):
            if isinstance(result, Exception):
                self.refuse(origin(i), RecordRefused(f"Redis refused {write[0]}: {result}"))
            else:
                applied += int(result)
        if self._on_flush:
            self._on_flush(len(writes), time.perf_counter() - started)
        return applied

    def _execute(self, writes: list[_Write]) -> list[Any]:
        """Run the writes in one pipeline: each one's result, or the error Redis answered it with.

        :raises SinkBackpressureError: Redis is unreachable or cannot write now.
        """
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, zkey, *args in writes:
                self._script(keys=[key, zkey], args=args, client=pipe)
            results = pipe.execute(raise_on_error=False)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._backpressure(exc) from exc
        for result in results:
            if isinstance(result, Exception) and _is_outage(result):
                raise self._backpressure(result) from result
        return list(results)

    def _backpressure(self, exc: BaseException) -> SinkBackpressureError:
        logger.warning("Redis unavailable (%s); pausing for %.1f s", exc, self.config.retry_after_s)
        return SinkBackpressureError(retry_after=self.config.retry_after_s)

    # --------------------------------------------------------------------------------------- rebuild
    def views_complete(self) -> bool:
        return bool(self.client.exists(self.config.marker_key))

    def rebuild(self) -> int:
        """Rebuild the robot and task views from the topics (see the module doc); returns the keys that
        moved forward. Takes a lock so that one replica rebuilds; returns 0 without it."""
        if self._replay is None:
            raise RuntimeError("this RedisSink has no replay: it cannot rebuild the views")
        lock, token = f"{self.config.marker_key}:rebuilding", uuid.uuid4().hex
        if not self.client.set(lock, token, nx=True, ex=600):
            logger.debug("another replica is rebuilding the Redis views (%s)", lock)
            return 0
        logger.warning(
            "Redis has lost the views (no %s): rebuilding them from the topics", self.config.marker_key
        )
        started = time.monotonic()
        now = now_ms()
        applied = records = 0
        for name, ttl in (
            (catalog.ROBOT_STATUS, self.config.robot_ttl_s),
            (catalog.TASK_EVENTS, self.config.task_ttl_s),
        ):
            since = now - ttl * 1000 - 600_000  # record timestamps may trail event times a little
            chunk: list[Mapping[str, Any]] = []
            for record in self._replay(name, since):
                chunk.append(record)
                if len(chunk) >= 5000:
                    applied += self._apply_rebuilt(chunk, now)
                    records += len(chunk)
                    chunk = []
            applied += self._apply_rebuilt(chunk, now)
            records += len(chunk)
        # Redis lost its data again while we read? Then the lock is gone too: leave the marker unset.
        if self.client.get(lock) == token.encode():
            self.client.set(self.config.marker_key, str(now))
            self.client.delete(lock)
        logger.info(
            "Redis views rebuilt from the topics: %d records read, %d keys moved forward in %.1f s",
            records,
            applied,
            time.monotonic() - started,
        )
        self.rebuilds += 1
        return applied

    def _apply_rebuilt(self, records: list[Mapping[str, Any]], now: int) -> int:
        # a record no view can hold was dead-lettered when the sink first read it: skipped here
        writes = self._newest(enumerate(records), now, refuse=lambda _i, _exc: None)
        if not writes:
            return 0
        return sum(int(r) for r in self._execute([w for _, w in writes]) if not isinstance(r, Exception))

    def check_views(self) -> bool:
        """Rebuild the views if their marker is gone; True if a rebuild ran."""
        if self.views_complete():
            return False
        self.rebuild()
        return True

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_views()
            except (redis.ConnectionError, redis.TimeoutError, SinkBackpressureError) as exc:
                logger.warning(
                    "Redis views not checked (%s); trying again in %.0f s", exc, self.config.views_check_s
                )
            except Exception:  # a broker that does not answer, or a bug: logged, tried again
                logger.exception(
                    "rebuilding the Redis views failed; trying again in %.0f s", self.config.views_check_s
                )
            self._stop.wait(self.config.views_check_s)

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=10)
        self.client.close()
