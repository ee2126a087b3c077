import pytest

from pipelines.cli import build_parser, main


def test_help_lists_the_core_commands(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for command in ("stack", "run", "up", "down", "bench"):
        assert f"    {command} " in out or f"    {command}\n" in out


def test_run_lists_processors_with_their_summaries():
    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    assert "timers" in run.format_help()
    assert "Timer service" in run.format_help()


def test_unknown_processor_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", "no-such-processor"])
    assert done.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_bad_configuration_exits_2_with_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("FLEET_TIMERS_TICK_S", "5")
    assert main(["run", "timers"]) == 2
    assert "FLEET_TIMERS_TICK_S" in capsys.readouterr().err
