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


def test_run_settings_lists_each_variable_with_its_default_and_meaning(capsys):
    assert main(["run", "traffic", "--settings"]) == 0
    lines = capsys.readouterr().out.splitlines()
    turn = next(line for line in lines if line.startswith("FLEET_TRAFFIC_TURN_AFTER_S "))
    assert "20.0" in turn and "goal kept for it" in turn
    assert any(line.startswith("FLEET_KAFKA_BOOTSTRAP_SERVERS ") for line in lines)
    assert main(["run", "dispatch", "--settings"]) == 0
    assert "FLEET_DISPATCH_MAX_BUSY_DENSITY" in capsys.readouterr().out


def test_unknown_processor_is_a_usage_error(capsys):
    assert main(["run", "no-such-processor"]) == 2
    err = capsys.readouterr().err
    assert "unknown processor 'no-such-processor'" in err and "sink-postgres" in err


def test_the_old_underscore_name_still_runs_the_processor_with_a_warning(monkeypatch, caplog, capsys):
    monkeypatch.setenv("FLEET_POSTGRES_RETRY_S", "-1")  # stops it at its settings, before any connection
    assert main(["run", "sink_postgres"]) == 2
    assert "FLEET_POSTGRES_RETRY_S" in capsys.readouterr().err
    assert "'sink_postgres' is deprecated: use 'sink-postgres'" in caplog.text


def test_one_hyphenated_name_per_processor_everywhere():
    from pipelines.processors import PROCESSORS

    for name, proc in PROCESSORS.items():
        assert "_" not in name and proc.module.__name__ == f"pipelines.processors.{name.replace('-', '_')}"
        assert proc.summary, name


def test_bad_configuration_exits_2_with_the_variable(monkeypatch, capsys):
    monkeypatch.setenv("FLEET_TIMERS_TICK_S", "5")
    assert main(["run", "timers"]) == 2
    assert "FLEET_TIMERS_TICK_S" in capsys.readouterr().err
