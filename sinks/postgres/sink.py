"""``PostgresSink``: the facts of fleetstream in Postgres, idempotently, one transaction per checkpoint.

``add`` turns each record into its rows when it arrives, so a record that can never be written (a
missing id, a time no timestamptz holds) raises ``RejectedRecord`` while it is processed and goes to the
dead-letter topic with its original bytes; the rows are then batched per topic partition as Quix does.
At each checkpoint Quix hands every partition's batch to ``write(batch)`` and the sink writes them all
in one transaction (``sinks.batching.FlushAllSink``, like the InfluxDB and Redis sinks): per table the
rows are deduplicated, staged by COPY and moved by the table's statement (event tables ignore rows whose
``event_id`` they have; state tables take a row only if it is newer: seq, or event time then event id).
Replaying any part of any topic therefore changes nothing.

Failures follow ``sinks.deadletters``:

- Postgres unreachable or unable to write (``sinks.postgres.errors.is_outage``): the transaction is
  dropped and ``SinkBackpressureError`` raised; Quix drops the checkpoint's batches, pauses the
  partitions, seeks back to the last committed offsets and reads them again after ``retry_after``
  (doubling up to ``max_retry_after_s`` while the outage lasts). No offset is committed before a write
  succeeded, and that commit must be durable: the sink's sessions run with ``synchronous_commit=on``
  whatever the server's default (the local stack runs Postgres with it off, and a stop then lost the
  last half-second of "committed" rows whose offsets were already committed).
- Postgres refusing a value of the batch (``is_data_error``): the records are halved until the refused
  ones are alone; each goes to ``dead_letter`` with Postgres' reason, the rest is written.
- anything else propagates: the processor stops.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from quixstreams.models import HeadersTuples
from quixstreams.sinks import SinkBackpressureError

from schemas.catalog import ROBOT_REGISTRY, TASK_EVENTS
from sinks.batching import FlushAllSink, Origins
from sinks.deadletters import DeadLetter, RecordRefused, SinkRecord, refuse_always, write_isolating
from sinks.postgres.errors import is_data_error, is_outage
from sinks.postgres.migrate import connect, migrate
from sinks.postgres.rows import TOPIC_TABLES, rows_for, task_rows, tenant_rows
from sinks.postgres.tables import DEACTIVATE_ROBOT, TABLES, TASKS, TENANTS, Row
from sinks.postgres.writer import Strategy, TableWriter, dedupe

__all__ = ["FlushHook", "PostgresSink"]

logger = logging.getLogger(__name__)

#: ``on_flush(rows_written, seconds)``; metrics are wired by the processor.
FlushHook = Callable[[int, float], None]


#: The writer name of a deleted robot registration's rows (``DEACTIVATE_ROBOT``'s parameters).
_TOMBSTONE = "robot_tombstone"

#: What ``add`` keeps of a record: the record (None for a tombstone), its rows (table or _TOMBSTONE, row)
#: and whether it is a task transition (which also updates ``tasks``).
_Prepared = tuple[dict[str, Any] | None, list[tuple[Any, Row]], bool]


class PostgresSink(FlushAllSink):
    """Writes the catalog topics of ``topics`` to the tables of ``sinks/postgres/migrations``.

    :param dsn: libpq connection string (the table owner: it runs migrations and bypasses RLS).
    :param topics: real (prefixed) topic name -> catalog name, for every topic this sink is attached to.
    :param schema: the Postgres schema (tests use their own).
    :param strategy: ``copy`` (COPY into the staging tables) or ``executemany``.
    :param migrate_on_start: apply pending migrations in ``setup``.
    :param dead_letter: where a record Postgres refuses goes (the processor's ``dlq.sink-postgres``);
        without one the sink stops on such a record rather than drop it.
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
        dead_letter: DeadLetter = refuse_always,
    ) -> None:
        super().__init__(on_flush, on_backpressure, dead_letter)
        unknown = set(topics.values()) - set(TOPIC_TABLES)
        if unknown:
            raise ValueError(f"PostgresSink has no tables for topics {sorted(unknown)}")
        self._dsn = dsn
        self._topics = dict(topics)
        self._schema = schema
        self._strategy: Strategy = strategy
        self._migrate = migrate_on_start
        self._retry_after = retry_after_s
        self._max_retry_after = max_retry_after_s
        self._connect_timeout = connect_timeout_s
        self._startup_timeout = startup_timeout_s
        self._writers = {t.name: TableWriter(t) for t in TABLES}
        self._conn: psycopg.Connection | None = None
        self._failures = 0
        #: tenant -> the first_seen_at (ms) this sink has committed: a batch only upserts earlier ones
        self._tenants: dict[str, int] = {}

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
            conn = connect(
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
            for writer in self._writers.values():
                writer.create_stage(conn)
            self._conn = conn
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
        """Build the record's rows now (``RejectedRecord`` if it can never be written), then batch them."""
        catalog = self._topics.get(topic)
        if catalog is None:
            raise ValueError(f"PostgresSink got a record of {topic}, which it was not configured for")
        if value is None:  # a tombstone: only a deleted robot registration means something here
            if catalog != ROBOT_REGISTRY or key is None:
                return
            robot = key.decode() if isinstance(key, bytes) else str(key)
            prepared: _Prepared = (None, [(_TOMBSTONE, (timestamp, robot, timestamp))], False)
        else:
            transition = catalog == TASK_EVENTS and value.get("kind") == "TRANSITION"
            prepared = (value, rows_for(catalog, value), transition)
        super().add(prepared, key, timestamp, headers, topic, partition, offset)

    def write_all(self, values: Sequence[_Prepared], origin: Origins) -> int:
        """Write the prepared records of every partition in one transaction (see the module doc for
        failures); returns the rows written."""
        started = time.monotonic()
        written = 0

        def write_some(span: Sequence[int]) -> None:
            nonlocal written
            assert isinstance(span, range)
            written += self._write_transaction(values[span.start : span.stop])

        def refuse(at: int, error: RecordRefused) -> None:
            record = origin(at)
            self.refuse(SinkRecord(values[at][0], record.key, record.headers, record.topic,
                                   record.partition, record.offset), error)  # fmt: skip

        write_isolating(range(len(values)), write_some, refuse)
        if self._failures:
            logger.info("postgres is back after %d failed flushes", self._failures)
        self._failures = 0
        if self._on_flush is not None:
            self._on_flush(written, time.monotonic() - started)
        return written

    def _write_transaction(self, prepared: Sequence[_Prepared]) -> int:
        """Write ``prepared`` records in one transaction; returns the rows written.

        :raises SinkBackpressureError: Postgres is down or cannot write now.
        :raises RecordRefused: Postgres refused a value of these records.
        """
        grouped: dict[str, list[Row]] = {}
        values = []
        transitions = []
        for record, rows, transition in prepared:
            for table, row in rows:  # a Table, or _TOMBSTONE
                name = table if table is _TOMBSTONE else table.name
                grouped.setdefault(name, []).append(row)
            if record is not None:
                values.append(record)
                if transition:
                    transitions.append(record)
        if values:
            known = self._tenants
            tenants = [row for row in tenant_rows(values) if row[0] not in known or row[1] < known[row[0]]]
            if tenants:
                grouped[TENANTS.name] = tenants
        if transitions:
            grouped[TASKS.name] = task_rows(transitions)
        try:
            written = self._write_rows(grouped)
        except Exception as exc:
            if is_outage(exc):
                raise self._backpressure(exc, len(prepared)) from exc
            if is_data_error(exc):
                raise RecordRefused(f"postgres refused the record: {type(exc).__name__}: {exc}") from exc
            raise
        for tenant, first_seen in grouped.get(TENANTS.name, ()):
            self._tenants[tenant] = first_seen
        return written

    def _backpressure(self, exc: BaseException, count: int) -> SinkBackpressureError:
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
        return SinkBackpressureError(retry_after=delay)  # FlushAllSink reports it (on_backpressure)

    def _write_rows(self, grouped: dict[str, list[Row]]) -> int:
        conn = self._connection()
        written = 0
        with conn.transaction():
            for name, writer in self._writers.items():
                rows = grouped.get(name)
                if rows:
                    written += writer.write(conn, dedupe(writer.table, rows), self._strategy)
            tombstones = grouped.get(_TOMBSTONE)
            if tombstones:
                with conn.cursor() as cur:
                    cur.executemany(DEACTIVATE_ROBOT.encode(), tombstones)
                written += len(tombstones)
        return written
