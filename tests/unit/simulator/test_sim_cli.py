from __future__ import annotations

import argparse

import pytest

from pipelines.cli import build_parser
from pipelines.commands import simulate
from pipelines.simulator import SimConfig
from pipelines.simulator.cli import config_from_args


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fleet")
    simulate.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_defaults_make_a_forever_real_time_run_without_faults() -> None:
    args = _parse()
    cfg = config_from_args(args, topic_prefix="x.")
    assert (cfg.site_id, cfg.tenant_id, cfg.robots, cfg.rate_hz) == ("demo", "acme", 10, 2.0)
    assert cfg.duration_s is None and cfg.max_ticks is None and not cfg.max_rate and cfg.speedup == 1.0
    assert not cfg.faults.any and cfg.topic_prefix == "x."
    assert args.func is not None


def test_every_option_reaches_the_config() -> None:
    args = _parse(
        "--site", "dc1", "--tenant", "globex", "--robots", "50", "--rate", "5", "--duration", "12.5",
        "--seed", "7", "--drop-prob", "0.01", "--dropout", "3", "--duplicate-prob", "0.02",
        "--reorder-prob", "0.03", "--malformed", "4", "--speedup", "10", "--ticks", "99", "--no-autonomy",
    )  # fmt: skip
    cfg = config_from_args(args)
    assert isinstance(cfg, SimConfig)
    assert (cfg.site_id, cfg.tenant_id, cfg.robots, cfg.rate_hz, cfg.duration_s) == (
        "dc1",
        "globex",
        50,
        5.0,
        12.5,
    )
    assert (cfg.seed, cfg.speedup, cfg.max_ticks, cfg.autonomous) == (7, 10.0, 99, False)
    f = cfg.faults
    assert (f.drop_prob, f.dropout_ms, f.duplicate_prob, f.reorder_prob, f.malformed, f.seed) == (
        0.01, 3000, 0.02, 0.03, 4, 7,
    )  # fmt: skip
    assert config_from_args(_parse("--max-rate")).max_rate


@pytest.mark.parametrize(
    "argv",
    [["--drop-prob", "1.5"], ["--robots", "0"], ["--rate", "-1"], ["--malformed", "-2"], ["--speedup", "0"]],
)
def test_bad_values_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(*argv)
    assert "error" in capsys.readouterr().err


def test_fleet_cli_discovers_the_simulate_command(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["simulate", "--robots", "3"])
    assert args.robots == 3 and callable(args.func)
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["simulate", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for option in (
        "--robots",
        "--rate",
        "--duration",
        "--seed",
        "--drop-prob",
        "--duplicate-prob",
        "--malformed",
    ):
        assert option in help_text
