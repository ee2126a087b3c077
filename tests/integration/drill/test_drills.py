"""The drills as tests: `fleet drill short` runs in `make test`; `fleet drill rebalance` (marked long,
~5 minutes more than `make test`'s budget allows) in `make test-drill`; the ~30-minute `fleet drill full`
is run by hand (docs/reliability.md). Each starts the whole pipeline on the
three-node cluster with two instances of every topology, drives two simulated sites, injects its faults,
drains and verifies every topic and store: the test passes only when every check of the verdict does
(a WARN line, a processor that had to be restarted, is printed but does not fail it)."""

from __future__ import annotations

import logging

import pytest

from pipelines.drill import DrillRunner, DrillSettings, KafkaCluster, plan

pytestmark = pytest.mark.drill
logger = logging.getLogger(__name__)


def _run(name: str, settings: DrillSettings, cluster: KafkaCluster) -> None:
    report = DrillRunner(plan(name), settings, cluster=cluster).run()
    lines = report.lines()
    for line in lines:
        logger.info("%s", line)
    failed = [c.line() for c in report.checks if c.failed]
    assert report.checks, "the drill produced no verdict"
    assert report.ok, "\n".join(["drill failed:", *failed, "", *lines])


@pytest.mark.timeout(900)
def test_short_drill_loses_and_duplicates_nothing(
    drill_settings: DrillSettings, cluster: KafkaCluster
) -> None:
    """kill -9 of a telemetry instance, SIGKILL of the broker leading robot.telemetry[0] (down 10 s),
    Postgres down 15 s."""
    _run("short", drill_settings, cluster)


@pytest.mark.long
@pytest.mark.timeout(900)
def test_adding_and_removing_instances_under_load_changes_no_output(
    drill_settings: DrillSettings, cluster: KafkaCluster
) -> None:
    """An instance of each topology added, then removed, under load: the verifier still finds every
    output equal to the pure steps over the inputs, exactly once."""
    _run("rebalance", drill_settings, cluster)
