"""Read-side repositories: every query the gateway runs against Postgres, Redis and InfluxDB lives here,
so adapting to the sinks' schemas is one place."""

from gateway.repo.hot import HotViews
from gateway.repo.pg import Page, PgReader
from gateway.repo.series import InfluxReader, SeriesPage
from gateway.repo.views import CompactedView

__all__ = ["CompactedView", "HotViews", "InfluxReader", "Page", "PgReader", "SeriesPage"]
