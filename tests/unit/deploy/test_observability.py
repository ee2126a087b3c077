"""Metrics, their catalogue (docs/metrics.md) and the Grafana dashboard cannot drift apart."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client.metrics import MetricWrapperBase

import pipelines.metrics
from gateway.middleware import GatewayMetrics
from gateway.rmf_ws import RmfWsMetrics
from pipelines.metrics import FleetCollector

from .conftest import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "fleetstream.json"
CATALOGUE = ROOT / "docs" / "metrics.md"
# prometheus_client's default process collector, exported by every processor.
PROCESS_METRICS = {"process_resident_memory_bytes", "process_cpu_seconds_total"}


def exposed_name(metric: MetricWrapperBase | FleetCollector) -> str:
    """The name a query uses: counters carry ``_total``; histograms are named by their base."""
    (family,) = metric.describe()
    return f"{family.name}_total" if family.type == "counter" else family.name


def code_metrics() -> dict[str, str]:
    """Every fleetstream metric in code -> its type."""
    metrics = [
        m for m in vars(pipelines.metrics).values() if isinstance(m, MetricWrapperBase | FleetCollector)
    ]
    metrics += [m for m in vars(GatewayMetrics()).values() if isinstance(m, MetricWrapperBase)]
    metrics += [m for m in vars(RmfWsMetrics(registry=None)).values() if isinstance(m, MetricWrapperBase)]
    return {exposed_name(m): m.describe()[0].type for m in metrics}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def queried_metrics(dashboard: dict) -> set[str]:
    names = set()
    for panel in panels(dashboard):
        for target in panel["targets"]:
            for name in re.findall(r"\b((?:fleet|process)_[a-z0-9_]+)\b", target["expr"]):
                names.add(re.sub(r"_(bucket|sum|count)$", "", name))
    return names


def test_every_metric_in_code_is_in_the_catalogue() -> None:
    text = CATALOGUE.read_text()
    documented = set(re.findall(r"^\| `((?:fleet)_[a-z0-9_]+)` \| (\w+) \|", text, re.M))
    assert documented == set(code_metrics().items()), (
        "docs/metrics.md and the code disagree on (metric, type): "
        f"undocumented {sorted(set(code_metrics().items()) - documented)}, "
        f"gone from code {sorted(documented - set(code_metrics().items()))}"
    )


def test_the_dashboard_queries_only_metrics_that_exist_and_all_of_them(dashboard: dict) -> None:
    known = set(code_metrics()) | PROCESS_METRICS
    queried = queried_metrics(dashboard)
    assert queried <= known, f"the dashboard queries unknown metrics {sorted(queried - known)}"
    assert set(code_metrics()) <= queried, f"no panel shows {sorted(set(code_metrics()) - queried)}"


def test_dashboard_panels_are_well_formed(dashboard: dict) -> None:
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = set(re.findall(r"\$(\w+)", target["expr"])) - {"__rate_interval", "__range"}
            assert used <= variables, f"{panel['title']} uses undefined variables {used - variables}"
            assert target["expr"].count("(") == target["expr"].count(")"), panel["title"]
