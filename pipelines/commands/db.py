"""``fleet db migrate``: apply the pending Postgres migrations (sinks/postgres/migrations)."""

from __future__ import annotations

import argparse
import sys

from pipelines.logsetup import setup_logging
from pipelines.settings import load_settings

__all__ = ["add_parser"]


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _migrate(args: argparse.Namespace) -> int:
    import psycopg  # imported here: keeps `fleet --help` fast

    from pipelines.processors.sink_postgres import Settings
    from sinks.postgres import MigrationError, connect, load_migrations, migrate, pending

    settings = load_settings(Settings)
    setup_logging(settings.log_level, "text", processor="db")
    dsn = args.dsn or settings.postgres_dsn.get_secret_value()
    schema = args.schema or settings.postgres_schema
    try:
        if args.dry_run:
            with connect(dsn, schema) as conn:
                exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
                todo = pending(conn, load_migrations()) if exists and exists[0] else load_migrations()
            for migration in todo:
                _out(f"pending  {migration.filename}")
            _out(f"{len(todo)} pending migration(s) in schema {schema}")
            return 0
        applied = migrate(dsn, schema)
    except MigrationError as exc:
        sys.stderr.write(f"fleet db migrate: {exc}\n")
        return 1
    except psycopg.OperationalError as exc:
        sys.stderr.write(f"fleet db migrate: cannot reach Postgres: {exc}\n")
        return 1
    for migration in applied:
        _out(f"applied  {migration.filename}")
    _out(f"schema {schema} is up to date ({len(applied)} applied now)")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="Postgres: apply the schema migrations of the Postgres sink")
    commands = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    m = commands.add_parser(
        "migrate",
        help="apply pending migrations (idempotent; one transaction)",
        description="Applies every pending sinks/postgres/migrations/V*.sql file in version order, in one "
        "transaction under an advisory lock, and records it in schema_migrations. The Postgres sink does the "
        "same at start-up. DSN and schema come from FLEET_POSTGRES_DSN / FLEET_POSTGRES_SCHEMA.",
    )
    m.add_argument("--dsn", help="libpq DSN (default: FLEET_POSTGRES_DSN)")
    m.add_argument("--schema", help="Postgres schema (default: FLEET_POSTGRES_SCHEMA, public)")
    m.add_argument("--dry-run", action="store_true", help="list the pending migrations, apply nothing")
    m.set_defaults(func=_migrate)
