"""The Postgres sink: migrations, the tables, and the idempotent batching sink. See README.md."""

from sinks.postgres.errors import is_data_error, is_outage
from sinks.postgres.migrate import (
    MIGRATIONS_DIR,
    Migration,
    MigrationError,
    connect,
    load_migrations,
    migrate,
    pending,
)
from sinks.postgres.rows import TOPIC_TABLES, rows_for
from sinks.postgres.sink import FlushHook, PostgresSink
from sinks.postgres.table import Column, Table
from sinks.postgres.tables import TABLES
from sinks.postgres.writer import Strategy, TableWriter, dedupe

__all__ = [
    "MIGRATIONS_DIR",
    "TABLES",
    "TOPIC_TABLES",
    "Column",
    "FlushHook",
    "Migration",
    "MigrationError",
    "PostgresSink",
    "Strategy",
    "Table",
    "TableWriter",
    "connect",
    "dedupe",
    "is_data_error",
    "is_outage",
    "load_migrations",
    "migrate",
    "pending",
    "rows_for",
]
