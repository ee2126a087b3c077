"""The codec benchmark produces well-formed rows (run by `make bench`, not `make test`)."""

from __future__ import annotations

import pytest

from pipelines.bench import codec as bench
from schemas.models import RobotTelemetry


@pytest.mark.bench
def test_codec_benchmark_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "ROUNDS", 1)
    rows = bench.run()
    assert [r["name"] for r in rows] == ["codec.encode", "codec.decode"]
    for row in rows:
        assert row["unit"] == "records/s" and row["goal"] == ">= 0.8"
        assert row["value"] > 0 and row["baseline"] > 0
        assert row["ratio"] == pytest.approx(row["value"] / row["baseline"], abs=0.01)


def test_benchmark_records_are_valid_telemetry() -> None:
    for record in bench.make_records(50):
        RobotTelemetry.model_validate(record)
