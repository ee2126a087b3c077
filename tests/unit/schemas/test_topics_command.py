from __future__ import annotations

import pytest

from pipelines.cli import build_parser
from pipelines.commands.topics import TopicChange, parse_partition_overrides
from schemas.catalog import CatalogError, topic


def test_partition_overrides_parse() -> None:
    assert parse_partition_overrides(["robot=12,alerts=3", "dlq.gateway=1", ""]) == {
        "robot": 12,
        "alerts": 3,
        "dlq.gateway": 1,
    }
    with pytest.raises(CatalogError, match="NAME=COUNT"):
        parse_partition_overrides(["robot:12"])


def test_change_descriptions() -> None:
    spec = topic("alerts", "p.")
    assert TopicChange(spec, "keep").describe() == "unchanged  p.alerts"
    created = TopicChange(spec, "create").describe()
    assert created.startswith("created    p.alerts: partitions=3") and "retention.ms=2592000000" in created
    altered = TopicChange(spec, "alter", partitions_from=2, config_changes={"retention.ms": ("1", "2")})
    assert altered.describe() == "changed    p.alerts: partitions 2 -> 3, retention.ms 1 -> 2"
    assert "REFUSED" in TopicChange(spec, "refuse", reason="no").describe()


def test_cli_wires_topics_and_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(["topics", "list", "--prefix", "q.", "--partitions", "robot=9"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "q.robot.telemetry" in out and "q.dlq.sink-influx" in out
    assert any(line.startswith("q.robot.status") and " 9 " in line for line in out.splitlines())
    args = parser.parse_args(["topics", "list", "--partitions", "robot.status=2"])
    assert args.func(args) == 2
    assert "co-partitioned" in capsys.readouterr().err
    args = parser.parse_args(["schemas", "check"])
    assert args.func(args) == 0
    for action in (["schemas", "register", "--dry-run"], ["topics", "apply", "--increase-partitions"]):
        assert callable(parser.parse_args(action).func)
