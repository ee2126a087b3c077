"""The lock-free record metrics, consumer lag from librdkafka statistics, state size, sink hooks."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipelines.metrics import (
    FastCounter,
    FastHistogram,
    LagFromStats,
    StateSize,
    sink_observers,
)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_fast_counter_exposes_a_counter_per_label_set() -> None:
    registry = CollectorRegistry()
    counter = FastCounter("unit_records_total", "records", ["processor", "topic"], registry=registry)
    counter.labels("p", "a").inc()
    counter.labels("p", "a").inc(2)
    counter.labels("p", "b").inc()
    got = samples(registry)
    assert got[("unit_records_total", (("processor", "p"), ("topic", "a")))] == 3
    assert got[("unit_records_total", (("processor", "p"), ("topic", "b")))] == 1
    with pytest.raises(ValueError):
        counter.labels("only-one")
    with pytest.raises(ValueError):  # the name is taken in that registry
        FastCounter("unit_records_total", "again", ["processor"], registry=registry)


def test_fast_histogram_buckets_are_cumulative_with_prometheus_bounds() -> None:
    registry = CollectorRegistry()
    hist = FastHistogram(
        "unit_latency_seconds", "latency", ["processor"], buckets=(0.1, 1, 10), registry=registry
    )
    child = hist.labels("p")
    for value in (0.05, 0.1, 0.5, 1.0, 5, 50):  # a value equal to a bound falls in that bound's bucket
        child.observe(value)
    got = samples(registry)
    le = {k[1][0][1]: v for k, v in got.items() if k[0] == "unit_latency_seconds_bucket"}
    assert le == {"0.1": 2, "1.0": 4, "10.0": 5, "+Inf": 6}
    assert got[("unit_latency_seconds_count", (("processor", "p"),))] == 6
    assert got[("unit_latency_seconds_sum", (("processor", "p"),))] == pytest.approx(56.65)


def _stats(partitions: dict[str, dict], topic: str = "t.in") -> bytes:
    return orjson.dumps(
        {
            "topics": {
                topic: {"partitions": partitions},
                "changelog__fleet-x--t.in--default": {"partitions": {"0": {"desired": True, "hi_offset": 9}}},
            }
        }
    )


def test_lag_from_statistics_uses_the_position_and_the_stable_end() -> None:
    gauge = Gauge("unit_lag", "lag", ["processor", "topic", "partition"], registry=CollectorRegistry())
    lag = LagFromStats("x", gauge)
    lag(
        _stats(
            {
                "-1": {"desired": False},
                "0": {"desired": True, "app_offset": 40, "hi_offset": 100, "ls_offset": 90},
                "1": {
                    "desired": True,
                    "app_offset": -1001,
                    "committed_offset": 7,
                    "hi_offset": 10,
                    "ls_offset": -1,
                },
                "2": {"desired": False, "app_offset": 0, "hi_offset": 50, "ls_offset": 50},  # not ours
                "3": {"desired": True, "app_offset": 12, "hi_offset": 10, "ls_offset": 10},  # never negative
            }
        )
    )
    values = {s.labels["partition"]: s.value for f in gauge.collect() for s in f.samples}
    assert values == {"0": 50, "1": 3, "3": 0}
    assert all(s.labels["topic"] == "t.in" for f in gauge.collect() for s in f.samples)
    lag(_stats({"0": {"desired": True, "app_offset": 90, "hi_offset": 100, "ls_offset": 90}}))
    assert {s.labels["partition"]: s.value for f in gauge.collect() for s in f.samples} == {"0": 0}
    lag(b"not json")  # ignored: metrics never break the consumer
    assert {s.labels["partition"]: s.value for f in gauge.collect() for s in f.samples} == {"0": 0}


def test_state_size_sums_the_files_under_each_processor(tmp_path) -> None:
    registry = CollectorRegistry()
    size = StateSize("unit_state_bytes", "bytes", ["processor"], registry=registry)
    (tmp_path / "a" / "db").mkdir(parents=True)
    (tmp_path / "a" / "db" / "000001.sst").write_bytes(b"x" * 1000)
    (tmp_path / "a" / "LOCK").write_bytes(b"y" * 24)
    size.track("a", tmp_path / "a")
    size.track("missing", tmp_path / "nothing-here")
    got = samples(registry)
    assert got[("unit_state_bytes", (("processor", "a"),))] == 1024
    assert got[("unit_state_bytes", (("processor", "missing"),))] == 0


def test_sink_observers_feed_the_sink_metrics() -> None:
    name = "unit-sink"
    on_flush, on_backpressure = sink_observers(name)
    on_flush(42, 0.25)
    on_backpressure(OSError("down"))
    value = REGISTRY.get_sample_value
    assert value("fleet_sink_batch_size_sum", {"sink": name}) == 42
    assert value("fleet_sink_write_seconds_sum", {"sink": name}) == 0.25
    assert value("fleet_sink_failures_total", {"sink": name}) == 1
