"""Postgres reads (the tables the Postgres sink projects into). Every query is scoped to one tenant.

Rows are read as ``to_jsonb(row)`` so extra columns the sink adds do not break the gateway; the
routers' public models pick the fields they publish. Lists use keyset pagination on
``(sort column, id column)`` descending, with an opaque cursor.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg_pool import AsyncConnectionPool

from gateway.errors import Unavailable
from gateway.pagination import decode_cursor, encode_cursor, micros_of, time_of

__all__ = ["TABLES", "Page", "PgReader", "TableSpec"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """One projected table: its name, id column and the column lists are sorted by (newest first), a
    timestamp unless ``sort_is_time`` is false (an integer)."""

    name: str
    id_column: str
    sort_column: str
    sort_is_time: bool = True


#: The tables the gateway reads, keyed by resource.
TABLES: dict[str, TableSpec] = {
    "tasks": TableSpec("tasks", "task_id", "updated_at"),
    "robots": TableSpec("robots", "robot_id", "updated_at"),
    "sites": TableSpec("sites", "site_id", "updated_at"),
    "site_maps": TableSpec("site_maps", "site_id", "version", sort_is_time=False),
    "decisions": TableSpec("decisions", "decision_id", "occurred_at"),
    "conflicts": TableSpec("conflicts", "conflict_id", "occurred_at"),
    "alerts": TableSpec("alerts", "alert_id", "occurred_at"),
}


@dataclass(frozen=True, slots=True)
class Page:
    """A page of rows (as dicts) and the cursor of the next page (None on the last one)."""

    items: list[dict[str, Any]]
    next_cursor: str | None


class PgReader:
    """Tenant-scoped reads over a small async connection pool.

    Postgres down (no connection within ``timeout`` seconds, or one lost mid-query) raises
    :class:`gateway.errors.Unavailable`; a pooled connection is checked before use, so reads recover as
    soon as Postgres is back.
    """

    def __init__(self, dsn: str, *, pool_size: int = 8, timeout: float = 3.0) -> None:
        self._pool = AsyncConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            timeout=timeout,
            open=False,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(timeout))},
            check=AsyncConnectionPool.check_connection,
        )

    async def start(self) -> None:
        await self._pool.open(wait=False)

    async def stop(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise Unavailable("postgres", f"{type(exc).__name__}: {exc}") from exc

    async def ping(self) -> None:
        async with self._connection() as conn:
            await conn.execute("SELECT 1")

    async def _rows(self, query: sql.Composed, params: list[Any]) -> list[dict[str, Any]]:
        """Run a tenant-scoped query; ``params[0]`` is the tenant, also set as ``fleet.tenant_id`` for the
        row-level-security policies of sinks/postgres (V002), so a reader role sees only that tenant."""
        async with self._connection() as conn, conn.transaction():
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute("SELECT set_config('fleet.tenant_id', %s, true)", [params[0]])
            await cur.execute(query, params)
            return [row[0] for row in await cur.fetchall()]

    async def get(self, resource: str, tenant_id: str, item_id: str) -> dict[str, Any] | None:
        """One row of ``resource`` by id, or None (also when it belongs to another tenant)."""
        spec = TABLES[resource]
        query = sql.SQL(
            "SELECT to_jsonb(t) FROM {table} t WHERE tenant_id = %s AND {id} = %s ORDER BY {sort} DESC LIMIT 1"
        ).format(
            table=sql.Identifier(spec.name),
            id=sql.Identifier(spec.id_column),
            sort=sql.Identifier(spec.sort_column),
        )
        rows = await self._rows(query, [tenant_id, item_id])
        return rows[0] if rows else None

    async def latest_map(
        self, tenant_id: str, site_id: str, version: int | None = None
    ) -> dict[str, Any] | None:
        """The newest (or the given) version of a site's map."""
        spec = TABLES["site_maps"]
        where: sql.Composable = sql.SQL("tenant_id = %s AND site_id = %s")
        params: list[Any] = [tenant_id, site_id]
        if version is not None:
            where = sql.SQL("{} AND version = %s").format(where)
            params.append(version)
        query = sql.SQL(
            "SELECT to_jsonb(t) FROM {table} t WHERE {where} ORDER BY version DESC LIMIT 1"
        ).format(table=sql.Identifier(spec.name), where=where)
        rows = await self._rows(query, params)
        return rows[0] if rows else None

    async def list(
        self,
        resource: str,
        tenant_id: str,
        *,
        filters: dict[str, Any | list[Any] | None] | None = None,
        since: Any | None = None,
        until: Any | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """A page of ``resource`` rows of the tenant, newest first.

        :param filters: column -> value (equality) or list (any of); None values are ignored.
        :param since: inclusive lower bound of the sort column; ``until`` exclusive upper bound.
        :raises gateway.pagination.CursorError: a cursor this API did not issue.
        """
        spec = TABLES[resource]
        sort, ident = sql.Identifier(spec.sort_column), sql.Identifier(spec.id_column)
        clauses: list[sql.Composable] = [sql.SQL("tenant_id = %s")]
        params: list[Any] = [tenant_id]
        for column, value in (filters or {}).items():
            if value is None or value == []:
                continue
            if isinstance(value, list):
                clauses.append(sql.SQL("{} = ANY(%s)").format(sql.Identifier(column)))
            else:
                clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
        if since is not None:
            clauses.append(sql.SQL("{} >= %s").format(sort))
            params.append(since)
        if until is not None:
            clauses.append(sql.SQL("{} < %s").format(sort))
            params.append(until)
        if cursor:
            last_sort, last_id = decode_cursor(cursor)
            clauses.append(sql.SQL("({}, {}) < (%s, %s)").format(sort, ident))
            params.extend([time_of(last_sort) if spec.sort_is_time else last_sort, last_id])
        query = sql.SQL(
            "SELECT to_jsonb(t) FROM {table} t WHERE {where} ORDER BY {sort} DESC, {id} DESC LIMIT %s"
        ).format(table=sql.Identifier(spec.name), where=sql.SQL(" AND ").join(clauses), sort=sort, id=ident)
        params.append(limit + 1)
        rows = await self._rows(query, params)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more and rows and rows[-1][spec.sort_column] is not None:
            last = rows[-1]
            key = last[spec.sort_column]
            next_cursor = encode_cursor(
                micros_of(key) if spec.sort_is_time else int(key), str(last[spec.id_column])
            )
        return Page(items=rows, next_cursor=next_cursor)
