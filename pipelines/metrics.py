"""Prometheus metrics shared by every processor. Updated from hooks and sinks, never from topology code.

The per-record series (records in and out, processing latency) are updated once per record on the
processing thread, so they are plain attribute updates collected when ``/metrics`` is scraped
(:class:`FastCounter`, :class:`FastHistogram`) instead of ``prometheus_client`` metrics, whose every
update takes a lock (about 1 µs for a counter and 2.5 µs for a histogram on a busy 2-core machine, where
the telemetry topology spends about 100 µs per record in all). Each series of these has one writer: the thread that
processes records. Everything else uses ``prometheus_client`` as usual.

The catalogue is docs/metrics.md; ``tests/unit/deploy/test_observability.py`` keeps it, this module
and the Grafana dashboard in step.
"""

from __future__ import annotations

import logging
import os
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import orjson
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

__all__ = [
    "CIRCUIT_STATE",
    "CONSUMER_LAG",
    "DLQ_RECORDS",
    "PROCESSING_LATENCY",
    "RECORDS_IN",
    "RECORDS_OUT",
    "SINK_BATCH_SIZE",
    "SINK_FAILURES",
    "SINK_WRITE_SECONDS",
    "STATE_BYTES",
    "FastCounter",
    "FastHistogram",
    "FleetCollector",
    "FlushObserver",
    "LagFromStats",
    "StateSize",
    "lag_stats_config",
    "sink_observers",
    "start_metrics_server",
]

logger = logging.getLogger(__name__)


class FleetCollector(Collector):
    """A metric family of ours that is collected at scrape time (not a ``prometheus_client`` metric)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry | None = REGISTRY,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()  # guards creating a child, never an update
        if registry is not None:
            registry.register(self)

    def _family(self) -> Metric:
        raise NotImplementedError

    def describe(self) -> list[Metric]:
        return [self._family()]


class _CounterChild:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class FastCounter(FleetCollector):
    """A counter whose series are updated without a lock (one writer per series; see the module doc)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._children: dict[tuple[str, ...], _CounterChild] = {}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def labels(self, *values: str) -> _CounterChild:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            with self._lock:
                child = self._children.setdefault(values, _CounterChild())
        return child

    def _family(self) -> CounterMetricFamily:
        return CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for values, child in list(self._children.items()):
            family.add_metric(values, child.value)
        yield family


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # the first bucket whose bound is >= value
        self.sum += value


class FastHistogram(FleetCollector):
    """A histogram whose series are updated without a lock (one writer per series; see the module doc)."""

    def __init__(self, *args: object, buckets: Sequence[float], **kwargs: object) -> None:
        self.buckets = tuple(sorted(float(b) for b in buckets))
        self._children: dict[tuple[str, ...], _HistogramChild] = {}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def labels(self, *values: str) -> _HistogramChild:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            with self._lock:
                child = self._children.setdefault(values, _HistogramChild(self.buckets))
        return child

    def _family(self) -> HistogramMetricFamily:
        return HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for values, child in list(self._children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), float(cumulative)))
            family.add_metric(list(values), buckets, total)
        yield family


class StateSize(FleetCollector):
    """Bytes on disk of each processor's local state (RocksDB), measured when scraped."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        self._dirs: dict[str, Path] = {}
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def track(self, processor: str, state_dir: Path) -> None:
        self._dirs[processor] = Path(state_dir)

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)

    @staticmethod
    def size(path: Path) -> int:
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
                except OSError:  # RocksDB removed it meanwhile (compaction)
                    continue
        return total

    def collect(self) -> Iterable[Metric]:
        family = self._family()
        for processor, path in list(self._dirs.items()):
            family.add_metric([processor], float(self.size(path)))
        yield family


RECORDS_IN = FastCounter("fleet_records_in_total", "Records consumed", ["processor", "topic"])
RECORDS_OUT = FastCounter("fleet_records_out_total", "Records produced", ["processor", "topic"])
DLQ_RECORDS = Counter(
    "fleet_dlq_records_total", "Records sent to the dead-letter topic", ["processor", "error_type"]
)
PROCESSING_LATENCY = FastHistogram(
    "fleet_processing_latency_seconds",
    "Event time (occurred_at) to processed",
    ["processor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SINK_BATCH_SIZE = Histogram(
    "fleet_sink_batch_size", "Records per sink flush", ["sink"], buckets=(1, 10, 100, 500, 1000, 5000, 20000)
)
SINK_WRITE_SECONDS = Histogram("fleet_sink_write_seconds", "Sink flush duration", ["sink"])
SINK_FAILURES = Counter("fleet_sink_failures_total", "Sink flushes that failed and were retried", ["sink"])
CONSUMER_LAG = Gauge(
    "fleet_consumer_lag", "Records behind the end of the partition", ["processor", "topic", "partition"]
)
CIRCUIT_STATE = Gauge("fleet_circuit_state", "0 closed, 1 half-open, 2 open", ["name"])
STATE_BYTES = StateSize("fleet_state_bytes", "Bytes of the processor's local state on disk", ["processor"])


class LagFromStats:
    """A librdkafka ``stats_cb``: feeds ``fleet_consumer_lag`` from the consumer's statistics.

    Lag of a partition this consumer owns = the end of the partition (the last stable offset under
    ``read_committed``, else the high watermark) minus the consumer's position (the offset after the
    last record handed to the application; the committed offset before the first). Series of
    partitions no longer owned are removed. Quix Streams' changelog topics are left out.
    """

    def __init__(self, processor: str, gauge: Gauge = CONSUMER_LAG) -> None:
        self.processor = processor
        self._gauge = gauge
        self._series: set[tuple[str, str]] = set()

    def __call__(self, stats_json: str | bytes) -> None:
        try:
            stats = orjson.loads(stats_json)
            now = set(self._lags(stats))
        except Exception:  # never let metrics break the consumer's poll
            logger.debug("consumer statistics not understood", exc_info=True)
            return
        for topic, partition in self._series - {(t, p) for t, p, _ in now}:
            self._gauge.remove(self.processor, topic, partition)
        self._series = {(t, p) for t, p, _ in now}
        for topic, partition, lag in now:
            self._gauge.labels(self.processor, topic, partition).set(lag)

    @staticmethod
    def _lags(stats: dict) -> Iterable[tuple[str, str, int]]:
        for topic, tstats in (stats.get("topics") or {}).items():
            if topic.startswith("changelog__"):
                continue
            for partition, p in (tstats.get("partitions") or {}).items():
                if partition == "-1" or not p.get("desired"):
                    continue
                ls, hi = p.get("ls_offset", -1), p.get("hi_offset", -1)
                end = ls if ls >= 0 else hi
                position = p.get("app_offset", -1)
                if position < 0:
                    position = p.get("committed_offset", -1)
                if end < 0 or position < 0:
                    lag = p.get("consumer_lag", -1)
                    if lag < 0:
                        continue
                else:
                    lag = max(0, end - position)
                yield topic, partition, lag


def lag_stats_config(processor: str, interval_ms: int = 5000) -> dict[str, object]:
    """Consumer settings that feed ``fleet_consumer_lag`` every ``interval_ms``."""
    return {"statistics.interval.ms": interval_ms, "stats_cb": LagFromStats(processor)}


def start_metrics_server(port: int) -> None:
    """Serve /metrics on all interfaces; port 0 means metrics are off."""
    if port:
        start_http_server(port)
        logger.info("metrics on :%d/metrics", port)


#: The callable type of a sink's flush hook: ``(records, seconds)``.
FlushObserver = Callable[[int, float], None]


def sink_observers(sink: str) -> tuple[FlushObserver, Callable[[BaseException], None]]:
    """``(on_flush, on_backpressure)`` hooks that feed the sink metrics of ``sink``."""
    batch, seconds, failures = (
        SINK_BATCH_SIZE.labels(sink),
        SINK_WRITE_SECONDS.labels(sink),
        SINK_FAILURES.labels(sink),
    )

    def on_flush(records: int, elapsed: float) -> None:
        batch.observe(records)
        seconds.observe(elapsed)

    def on_backpressure(_exc: BaseException) -> None:
        failures.inc()

    return on_flush, on_backpressure
