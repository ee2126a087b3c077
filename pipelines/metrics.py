"""Prometheus metrics shared by every processor. Updated from hooks and sinks, never from topology code."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
    "start_metrics_server",
]

logger = logging.getLogger(__name__)

RECORDS_IN = Counter("fleet_records_in_total", "Records consumed", ["processor", "topic"])
RECORDS_OUT = Counter("fleet_records_out_total", "Records produced", ["processor", "topic"])
DLQ_RECORDS = Counter(
    "fleet_dlq_records_total", "Records sent to the dead-letter topic", ["processor", "error_type"]
)
PROCESSING_LATENCY = Histogram(
    "fleet_processing_latency_seconds",
    "Event time to processed",
    ["processor"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SINK_BATCH_SIZE = Histogram(
    "fleet_sink_batch_size", "Records per sink flush", ["sink"], buckets=(1, 10, 100, 500, 1000, 5000, 20000)
)
SINK_WRITE_SECONDS = Histogram("fleet_sink_write_seconds", "Sink flush duration", ["sink"])
SINK_FAILURES = Counter("fleet_sink_failures_total", "Sink flushes that failed and were retried", ["sink"])
CONSUMER_LAG = Gauge(
    "fleet_consumer_lag", "Records behind the high watermark", ["processor", "topic", "partition"]
)
CIRCUIT_STATE = Gauge("fleet_circuit_state", "0 closed, 1 half-open, 2 open", ["name"])


def start_metrics_server(port: int) -> None:
    """Serve /metrics on 127.0.0.1-compatible all interfaces; port 0 means metrics are off."""
    if port:
        start_http_server(port)
        logger.info("metrics on :%d/metrics", port)
