"""``PostgresSink``: the facts of fleetstream in Postgres, idempotently, one transaction per checkpoint.

Records are turned into rows when they arrive (``add``), so a record that can never be written raises
``RejectedRecord`` inside processing and goes to the dead-letter topic. At each checkpoint ``flush``
writes every pending batch (all topics and partitions) in one transaction: per table the rows are
deduplicated, then staged by COPY and inserted by one ``INSERT ... SELECT ... ON CONFLICT``. Event tables
ignore rows whose event_id they have; state tables accept a row only if it is newer (seq, or event time
then event id). Replaying any part of any topic therefore changes nothing.

When Postgres is unreachable (``OperationalError``) the transaction is dropped and
``SinkBackpressureError`` is raised: Quix Streams pauses the partitions, seeks back to the last committed
offsets and retries after ``retry_after`` (doubling up to ``max_retry_after_s`` while the outage lasts).
The sink also keeps the unwritten records until a flush succeeds (see ``flush``), so it does not depend on
that re-read alone. Offsets are committed only after a successful flush (sinks never commit themselves),
and that flush's commit must be durable: the sink's sessions run with ``synchronous_commit=on`` whatever
the server's default (the local stack runs Postgres with it off, and a stop then lost the last
half-second of "committed" rows, whose offsets were already committed).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from quixstreams.models import HeadersTuples
from quixstreams.sinks import BatchingSink, SinkBackpressureError, SinkBatch

from schemas.errors import FleetError
from schemas.tracing import trace_ids
from sinks.postgres.migrate import connect, migrate
from sinks.postgres.rows import DEFERRED, rows_for, tenant_of
from sinks.postgres.tables import TABLES, TENANTS, Row
from sinks.postgres.writer import Strategy, TableWriter, dedupe

__all__ = ["FlushHook", "PostgresSink", "PostgresUnavailable"]

logger = logging.getLogger(__name__)

#: ``on_flush(rows_written, seconds)``; metrics are wired by the processor.
FlushHook = Callable[[int, float], None]
_TOMBSTONE = "robot_registry_tombstone"
#: What ``add`` keeps of a record: its rows (table name, row), its tenant (None for a tombstone) and its
#: headers (for the trace ids of the flush's debug line; only a reference is kept).
_Item = tuple[list[tuple[str, Any]], Row | None, HeadersTuples]
_DEFERRED = "deferred:"
_DEACTIVATE = (
    "UPDATE robots SET active = false, registered_at = to_timestamp(%s / 1000.0), registry_event_id = '' "
    "WHERE robot_id = %s AND (registered_at IS NULL OR registered_at <= to_timestamp(%s / 1000.0))"
)


class PostgresUnavailable(FleetError):
    """Postgres stayed down while more records than the sink may hold in memory were consumed."""


class PostgresSink(BatchingSink):
    """Writes the catalog topics of ``topics`` to the tables of ``sinks/postgres/migrations``.

    :param dsn: libpq connection string (the table owner: it runs migrations and bypasses RLS).
    :param topics: real (prefixed) topic name -> catalog name, for every topic this sink is attached to.
    :param schema: the Postgres schema (tests use their own).
    :param strategy: ``copy`` (COPY + INSERT SELECT) or ``executemany``.
    :param migrate_on_start: apply pending migrations in ``setup``.
    """

    def __init__(
        self,
        dsn: str,
        topics: Mapping[str, str],
        *,
        schema: str = "public",
        strategy: Strategy = "copy",
        migrate_on_start: bool = True,
        retry_after_s: float = 2.0,
        max_retry_after_s: float = 30.0,
        connect_timeout_s: float = 5.0,
        startup_timeout_s: float = 120.0,
        on_flush: FlushHook | None = None,
        on_backpressure: Callable[[BaseException], None] | None = None,
        max_retained: int = 500_000,
    ) -> None:
        super().__init__()
        self._dsn = dsn
        self._topics = dict(topics)
        self._schema = schema
        self._strategy: Strategy = strategy
        self._migrate = migrate_on_start
        self._retry_after = retry_after_s
        self._max_retry_after = max_retry_after_s
        self._connect_timeout = connect_timeout_s
        self._startup_timeout = startup_timeout_s
        self._on_flush = on_flush
        self._on_backpressure = on_backpressure
        self._writers = {t.name: TableWriter(t) for t in TABLES}
        self._conn: psycopg.Connection | None = None
        self._staged: set[str] = set()
        # (topic, partition, offset) -> item; kept across failed flushes (see ``flush``)
        self._pending: dict[tuple[str, int, int], _Item] = {}
        self._max_retained = max_retained
        self._failures = 0

    def __repr__(self) -> str:
        return f"<PostgresSink schema={self._schema} strategy={self._strategy}>"

    # ------------------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        """Wait for Postgres (up to ``startup_timeout_s``), apply migrations, connect."""
        deadline = time.monotonic() + self._startup_timeout
        delay = 0.5
        while True:
            try:
                if self._migrate:
                    migrate(self._dsn, self._schema)
                self._connection()
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                logger.warning("postgres not reachable at start-up (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self._dsn,
                self._schema,
                durable=True,
                autocommit=True,
                connect_timeout=max(1, int(self._connect_timeout)),
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
            )
            self._staged = set()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):  # already broken
                self._conn.close()
        self._conn = None

    # ------------------------------------------------------------------------------ batching
    def add(
        self,
        value: Any,
        key: Any,
        timestamp: int,
        headers: HeadersTuples,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        catalog = self._topics.get(topic)
        if catalog is None:
            raise ValueError(f"PostgresSink got a record of {topic}, which it was not configured for")
        if value is None:  # a tombstone: only a deleted robot registration means something here
            if catalog != "robot.registry" or key is None:
                return
            robot = key.decode() if isinstance(key, bytes) else str(key)
            self._pending[(topic, partition, offset)] = (
                [(_TOMBSTONE, (timestamp, robot, timestamp))],
                None,
                headers,
            )
            return
        rows: list[tuple[str, Any]] = [(table.name, row) for table, row in rows_for(catalog, value)]
        deferred = DEFERRED.get(catalog)
        if deferred is not None and (deferred[1] is None or deferred[1](value)):
            rows.append((_DEFERRED + catalog, value))
        self._pending[(topic, partition, offset)] = (rows, tenant_of(value), headers)

    def write(self, batch: SinkBatch) -> None:
        self._write([item.value for item in batch])

    def flush(self) -> None:
        """Write everything added since the last successful flush, in one transaction.

        The records of every topic and partition are kept in one map rather than in per-partition
        ``SinkBatch``es (the base class's way): they are written together anyway. A failed flush keeps
        them (keyed by topic, partition and offset, so the re-read copies replace them): Quix Streams
        seeks back and re-reads them after the pause, and should that re-read ever fall short, the next
        successful flush still writes them before any offset past them is committed. An outage that
        outgrows ``max_retained`` records stops the process instead (it restarts from the committed
        offsets, losing nothing).
        """
        if not self._pending:
            return
        self._write(list(self._pending.values()))
        self._pending = {}

    def on_paused(self) -> None:
        """Another sink's backpressure: keep what was added (written, idempotently, with the next flush)."""

    def _write(self, items: list[_Item]) -> None:
        grouped: dict[str, list[Any]] = {}
        tenants: dict[str, int] = {}
        count = len(items)
        for rows, tenant, _headers in items:
            for name, row in rows:
                grouped.setdefault(name, []).append(row)
            if tenant is not None:
                first = tenants.get(tenant[0])
                if first is None or tenant[1] < first:
                    tenants[tenant[0]] = tenant[1]
        if tenants:
            grouped[TENANTS.name] = list(tenants.items())
        for catalog, (table, _wanted, build) in DEFERRED.items():
            records = grouped.pop(_DEFERRED + catalog, None)
            if records:
                grouped.setdefault(table.name, []).extend(build(records))
        if not grouped:
            return
        started = time.monotonic()
        try:
            written = self._write_rows(grouped)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop_connection()
            self._failures += 1
            delay = min(self._max_retry_after, self._retry_after * 2 ** (self._failures - 1))
            logger.warning(
                "postgres write of %d records failed (%s: %s); pausing %.1fs",
                count,
                type(exc).__name__,
                exc,
                delay,
            )
            if self._on_backpressure is not None:
                self._on_backpressure(exc)
            if len(self._pending) > self._max_retained:
                raise PostgresUnavailable(
                    f"postgres unreachable with {len(self._pending)} records unwritten (more than "
                    f"{self._max_retained}); stopping, to restart from the last committed offsets"
                ) from exc
            raise SinkBackpressureError(retry_after=delay) from exc
        elapsed = time.monotonic() - started
        if self._failures:
            logger.info("postgres is back after %d failed flushes", self._failures)
        self._failures = 0
        if self._on_flush is not None:
            self._on_flush(written, elapsed)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "flushed %d records (%d rows) in %.3f s",
                count,
                written,
                elapsed,
                extra={"records": count, "trace_ids": trace_ids(item[2] for item in items)},
            )

    def _write_rows(self, grouped: dict[str, list[Any]]) -> int:
        conn = self._connection()
        written = 0
        with conn.transaction():
            for name, writer in self._writers.items():
                rows = grouped.get(name)
                if rows:
                    written += writer.write(conn, dedupe(writer.table, rows), self._strategy, self._staged)
            tombstones = grouped.get(_TOMBSTONE)
            if tombstones:
                with conn.cursor() as cur:
                    cur.executemany(_DEACTIVATE, tombstones)
                written += len(tombstones)
        return written
