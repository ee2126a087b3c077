"""Batched writes of one ``Table``: dedupe the batch, then COPY (or ``executemany``) it into the table's
staging table and run the table's statement, inside the caller's transaction.

COPY is the default (pipelines/bench/postgres.py measures both). Event tables are first COPYed straight
into the table inside a savepoint (times converted to datetimes here): in steady state none of their
rows is there yet and this is as fast as Postgres takes rows. If one is (a replay after a crash or an outage), the unique violation rolls the
savepoint back and the batch goes the safe way: staging table + the table's ``INSERT ... ON CONFLICT DO
NOTHING``. Upsert tables always go through staging. The staging tables are ``TEMP ... ON COMMIT DELETE
ROWS``, created once per connection (:meth:`TableWriter.create_stage`), outside any write transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Literal

import psycopg

from sinks.postgres.table import Row, Table

__all__ = ["Strategy", "TableWriter", "dedupe"]

Strategy = Literal["copy", "executemany"]


def dedupe(table: Table, rows: Iterable[Row]) -> list[Row]:
    """The newest row per key of an upsert table (event tables: all rows).

    Sticky columns the newest row lacks are filled from older rows of the batch (a task's spec arrives
    on its CREATED event; the batch may also hold later transitions of the same task).
    """
    if not table.key:
        return list(rows)
    key_of = itemgetter(*[table.index[c] for c in table.key])
    order = itemgetter(*[table.index[c] for c in table.newest])
    sticky = [table.index[c] for c in table.sticky]
    keep_oldest = table.keep_oldest
    best: dict[Any, Row] = {}
    for row in rows:
        key = key_of(row)
        current = best.get(key)
        if current is None:
            best[key] = row
            continue
        newer = order(row) < order(current) if keep_oldest else order(row) > order(current)
        winner, loser = (row, current) if newer else (current, row)
        if sticky:
            missing = [i for i in sticky if winner[i] is None and loser[i] is not None]
            if missing:
                merged = list(winner)
                for i in missing:
                    merged[i] = loser[i]
                winner = tuple(merged)
        best[key] = winner
    return list(best.values())


class TableWriter:
    """Writes rows of one :class:`Table`; the statements other than ``table.sql`` name the mapped columns."""

    direct_hits = 0
    direct_misses = 0

    def __init__(self, table: Table) -> None:
        self.table = table
        columns = ", ".join(table.names)
        self.stage = f"stage_{table.name}"
        self.create_stage_sql = (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} (LIKE {table.table} INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        times = [table.names[i] for i in table.times]  # epoch ms until the table's statement converts them
        self.stage_times_sql = (
            f"ALTER TABLE {self.stage} "
            + ", ".join(f"ALTER COLUMN {c} TYPE bigint USING NULL" for c in times)
            if times
            else ""
        )
        self.copy_sql = f"COPY {self.stage} ({columns}) FROM STDIN"
        self.values_sql = (
            f"INSERT INTO {self.stage} ({columns}) VALUES ({', '.join(['%s'] * len(table.names))})"
        )
        self.direct_copy_sql = f"COPY {table.table} ({columns}) FROM STDIN"

    def create_stage(self, conn: psycopg.Connection) -> None:
        """Create the staging table of this connection (once, outside a write transaction)."""
        conn.execute(self.create_stage_sql.encode())
        if self.stage_times_sql:
            conn.execute(self.stage_times_sql.encode())

    def _copy_direct(self, conn: psycopg.Connection, cur: psycopg.Cursor, rows: list[Row]) -> bool:
        """COPY ``rows`` into the table itself; False (and nothing written) if one of them is already there."""
        times = self.table.times
        fromtimestamp = datetime.fromtimestamp  # epoch_ms, inlined: once per time of every row
        try:
            with conn.transaction(), cur.copy(self.direct_copy_sql.encode()) as copy:
                for row in rows:
                    values = list(row)
                    for i in times:
                        if values[i] is not None:
                            values[i] = fromtimestamp(values[i] / 1000, UTC)
                    copy.write_row(values)
        except psycopg.errors.UniqueViolation:
            self.direct_misses += 1
            return False
        self.direct_hits += 1
        return True

    def write(self, conn: psycopg.Connection, rows: list[Row], strategy: Strategy) -> int:
        """Write ``rows`` (already deduplicated) in the open transaction; returns the rows sent.

        Write each table at most once per transaction: the stage is only emptied at commit.
        """
        if not rows:
            return 0
        with conn.cursor() as cur:
            if strategy == "executemany":
                cur.executemany(self.values_sql.encode(), rows)
            elif self.table.insert_only and self._copy_direct(conn, cur, rows):
                return len(rows)
            else:
                with cur.copy(self.copy_sql.encode()) as copy:
                    for row in rows:
                        copy.write_row(row)
            cur.execute(self.table.sql.encode())
        return len(rows)
