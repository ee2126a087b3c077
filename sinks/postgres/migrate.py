"""Versioned SQL migrations: ``migrations/V<version>__<name>.sql``, applied in order, each exactly once.

``migrate(dsn)`` takes a transaction-scoped advisory lock (so several sink replicas starting together
apply a migration once), creates ``schema_migrations`` if needed, applies every pending file in version
order and records it, all in one transaction: either every pending migration is applied or none. Running
it again is a no-op. A file whose content changed after it was applied stops the runner (checksum).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from schemas.errors import FleetError

__all__ = [
    "MIGRATIONS_DIR",
    "Migration",
    "MigrationError",
    "connect",
    "load_migrations",
    "migrate",
    "pending",
]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_FILE = re.compile(r"^V(\d+)__([a-z0-9_]+)\.sql$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrationError(FleetError):
    """Migration files are inconsistent (duplicate version, a changed applied file) or one failed."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"V{self.version:03d}__{self.name}.sql"


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file of ``directory`` in version order."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named V<version>__<name>.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"two migrations with version {version}: {found[version].filename}, {path.name}"
            )
        found[version] = Migration(version, match.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def connect(
    dsn: str, schema: str = "public", *, durable: bool = False, **kwargs: object
) -> psycopg.Connection:
    """A connection whose search_path is ``schema`` (tests isolate themselves in their own schema).

    ``durable``: the session commits with ``synchronous_commit=on`` whatever the server's default, so a
    commit that returned survives a Postgres crash (the sink commits Kafka offsets on the strength of it).
    """
    if not _SCHEMA.match(schema):
        raise MigrationError(f"invalid schema name {schema!r}")
    options = f"-c search_path={schema}" + (" -c synchronous_commit=on" if durable else "")
    return psycopg.connect(dsn, options=options, **kwargs)  # type: ignore[arg-type]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


def pending(conn: psycopg.Connection, migrations: list[Migration]) -> list[Migration]:
    """Migrations not applied yet; MigrationError if an applied one changed since."""
    applied: dict[int, str] = dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())
    todo = []
    for migration in migrations:
        checksum = applied.get(migration.version)
        if checksum is None:
            todo.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"{migration.filename} changed after it was applied; add a new migration instead"
            )
    return todo


def migrate(dsn: str, schema: str = "public", directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the pending migrations of ``directory`` to ``schema``; returns what was applied."""
    migrations = load_migrations(directory)
    with connect(dsn, schema) as conn, conn.transaction():
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"fleetstream.migrations.{schema}",))
        conn.execute(_CREATE_TABLE)
        todo = pending(conn, migrations)
        for migration in todo:
            logger.info("applying migration %s to schema %s", migration.filename, schema)
            try:
                conn.execute(migration.sql.encode())
            except psycopg.Error as exc:
                raise MigrationError(f"{migration.filename} failed: {exc}") from exc
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    if todo:
        logger.info("schema %s migrated to version %d", schema, todo[-1].version)
    return todo
