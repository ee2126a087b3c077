"""Batched writes of one ``Table``: dedupe the batch, then COPY into a staging table + INSERT ... SELECT,
or ``executemany`` (pipelined) of INSERT ... VALUES. Both run inside the caller's transaction.

COPY is the default (pipelines/bench/postgres.py measures both). Event tables (insert-once by event_id)
are first COPYed straight into the table inside a savepoint: in steady state no row is there yet and this
is as fast as Postgres takes rows. If one is (a replay after a crash or an outage), the unique violation
rolls the savepoint back and the batch goes the safe way: staging table + INSERT ... ON CONFLICT DO
NOTHING. Upsert tables always go through staging. The staging tables are TEMP ... ON COMMIT DELETE ROWS,
created once per connection.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Literal

import psycopg

from sinks.postgres.tables import Row, Table

__all__ = ["Strategy", "TableWriter", "dedupe"]

Strategy = Literal["copy", "executemany"]


def dedupe(table: Table, rows: Iterable[Row]) -> list[Row]:
    """The newest row per key of an upsert table (event tables: all rows).

    Sticky columns the newest row lacks are filled from older rows of the batch (a task's spec arrives
    on its CREATED event; the batch may also hold later transitions of the same task). Keys are the
    leading columns of every upsert table, so a key is a slice of the row.
    """
    if not table.key:
        return list(rows)
    width = len(table.key)
    order = itemgetter(*[table.index[c] for c in table.order])
    sticky = [table.index[c] for c in table.sticky]
    keep_min = table.keep_min
    best: dict[tuple[Any, ...], Row] = {}
    for row in rows:
        key = row[:width]
        current = best.get(key)
        if current is None:
            best[key] = row
            continue
        newer = order(row) < order(current) if keep_min else order(row) > order(current)
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
    """SQL of one Table, prepared once."""

    def __init__(self, table: Table) -> None:
        self.table = table
        cols = table.column_names
        self.stage = f"stage_{table.name}"
        stage_cols = ", ".join(f"{c.name} {c.stage_type}" for c in table.columns)
        self.create_stage_sql = (
            f"CREATE TEMP TABLE IF NOT EXISTS {self.stage} ({stage_cols}) ON COMMIT DELETE ROWS"
        )
        self.copy_sql = f"COPY {self.stage} ({', '.join(cols)}) FROM STDIN"
        selects = ", ".join(c.select for c in table.columns)
        self.insert_select_sql = f"INSERT INTO {table.table} ({', '.join(cols)}) SELECT {selects} FROM {self.stage} {table.conflict}"
        # Event tables first try a COPY straight into the table (inside a savepoint): nothing to
        # deduplicate or guard unless some row is already there, i.e. unless this is a replay.
        self.direct = table.conflict == "ON CONFLICT DO NOTHING"
        self.direct_copy_sql = f"COPY {table.table} ({', '.join(cols)}) FROM STDIN"
        self._ms = [i for i, c in enumerate(table.columns) if c.type == "ms"]
        values = ", ".join(c.placeholder for c in table.columns)
        self.insert_values_sql = (
            f"INSERT INTO {table.table} ({', '.join(cols)}) VALUES ({values}) {table.conflict}"
        )

    direct_hits = 0
    direct_misses = 0

    def _copy_direct(self, conn: psycopg.Connection, cur: psycopg.Cursor, rows: list[Row]) -> bool:
        """COPY ``rows`` into the table itself; False (and nothing written) if one of them is already there."""
        ms = self._ms
        try:
            with conn.transaction(), cur.copy(self.direct_copy_sql.encode()) as copy:
                for row in rows:
                    values = list(row)
                    for i in ms:
                        if values[i] is not None:
                            values[i] = datetime.fromtimestamp(values[i] / 1000, UTC)
                    copy.write_row(values)
        except psycopg.errors.UniqueViolation:
            self.direct_misses += 1
            return False
        return True

    def write(self, conn: psycopg.Connection, rows: list[Row], strategy: Strategy, staged: set[str]) -> int:
        """Write ``rows`` (already deduplicated) in the open transaction; returns the rows sent.

        Write each table at most once per transaction: the stage is only emptied at commit.
        """
        if not rows:
            return 0
        with conn.cursor() as cur:
            if strategy == "executemany":
                cur.executemany(self.insert_values_sql.encode(), rows)
                return len(rows)
            if self.direct and self._copy_direct(conn, cur, rows):
                self.direct_hits += 1
                return len(rows)
            if self.stage not in staged:
                cur.execute(self.create_stage_sql.encode())
                staged.add(self.stage)
            with cur.copy(self.copy_sql.encode()) as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(self.insert_select_sql.encode())
        return len(rows)
