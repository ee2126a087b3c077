"""Shared fixtures of the simulator unit tests: the demo map, its graph, Avro round trips."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from pipelines.simulator import demo_site
from schemas.avsc import load_schema, parse_plain
from schemas.sitegraph import SiteGraph, graph_for


@pytest.fixture(scope="session")
def site_map() -> dict[str, Any]:
    return demo_site()


@pytest.fixture(scope="session")
def graph(site_map: dict[str, Any]) -> SiteGraph:
    return graph_for(site_map)


@pytest.fixture(scope="session")
def avro_roundtrip():
    """avro_roundtrip(record_name, value) -> the value written and read back with the real .avsc."""
    parsed: dict[str, Any] = {}

    def _roundtrip(record: str, value: dict[str, Any]) -> dict[str, Any]:
        schema = parsed.setdefault(record, parse_plain(load_schema(record)))
        out = BytesIO()
        schemaless_writer(out, schema, value)
        out.seek(0)
        return schemaless_reader(out, schema)  # type: ignore[return-value]

    return _roundtrip
