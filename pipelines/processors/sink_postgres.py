"""Postgres sink: the facts (tasks, task events, robots, sites and maps, decisions, conflicts, alerts, audit).

Consumes ``task.events``, ``robot.status``, ``robot.registry``, ``site.maps``, ``scheduler.decisions``,
``traffic.conflicts``, ``alerts`` and ``audit.log`` at least once and writes them idempotently (see
``sinks/postgres/README.md``). Applies pending migrations at start-up. While Postgres is down the
partitions pause and resume; a record that can never be written (undecodable, a time outside years
1970..9999, a value Postgres refuses) goes to ``dlq.sink-postgres`` with the reason.
"""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import Field, SecretStr

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.metrics import SINK_BATCH_SIZE, SINK_FAILURES, SINK_WRITE_SECONDS
from pipelines.settings import CommonSettings
from sinks.deadletters import DeadLetterWriter
from sinks.postgres import TOPIC_TABLES, PostgresSink

__all__ = ["NAME", "TOPICS", "Settings", "build", "run"]

logger = logging.getLogger(__name__)

NAME = "sink-postgres"
TOPICS = tuple(TOPIC_TABLES)


class Settings(CommonSettings):
    """Settings of the Postgres sink (env prefix FLEET_)."""

    postgres_dsn: SecretStr = Field(
        SecretStr("postgresql://fleet@127.0.0.1:15432/fleetstream"),
        description="libpq DSN of the role that owns the tables (runs migrations, bypasses RLS).",
    )
    postgres_schema: str = Field(
        "public", pattern=r"^[a-z_][a-z0-9_]{0,62}$", description="Schema of the tables."
    )
    postgres_write_strategy: Literal["copy", "executemany"] = Field(
        "copy", description="COPY into a staging table + INSERT SELECT, or pipelined executemany."
    )
    postgres_retry_s: float = Field(
        2.0, gt=0, description="First pause when Postgres is unreachable (doubles)."
    )
    postgres_retry_max_s: float = Field(30.0, gt=0, description="Longest pause while Postgres stays down.")
    postgres_startup_timeout_s: float = Field(
        120.0, ge=0, description="How long to wait for Postgres at start."
    )
    commit_interval_s: float = Field(1.0, gt=0, description="Flush (and offset commit) period.")
    partitions: int | None = Field(
        None, ge=1, description="Partitions when this processor must create a topic (default: the catalog's)."
    )


def _on_flush(rows: int, seconds: float) -> None:
    SINK_BATCH_SIZE.labels(NAME).observe(rows)
    SINK_WRITE_SECONDS.labels(NAME).observe(seconds)


def build(settings: Settings) -> ProcessorApp:
    """The Postgres sink ProcessorApp, fully wired (not running)."""
    papp = create_processor_app(
        settings, NAME, exactly_once=False, commit_interval=settings.commit_interval_s
    )
    dead_letters = DeadLetterWriter(papp.dlq.send, papp.encoders(TOPICS))
    sink = PostgresSink(
        settings.postgres_dsn.get_secret_value(),
        {settings.topic(name): name for name in TOPICS},
        schema=settings.postgres_schema,
        strategy=settings.postgres_write_strategy,
        retry_after_s=settings.postgres_retry_s,
        max_retry_after_s=settings.postgres_retry_max_s,
        startup_timeout_s=settings.postgres_startup_timeout_s,
        on_flush=_on_flush,
        on_backpressure=lambda _exc: SINK_FAILURES.labels(NAME).inc(),
        dead_letter=dead_letters,
    )
    for name in TOPICS:
        papp.avro_input(name).sink(sink)
    return papp


def run(settings: Settings) -> None:
    build(settings).run()
