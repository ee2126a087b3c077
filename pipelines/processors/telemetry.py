"""Telemetry topology: validate, dedupe and order robot telemetry; derive status, offline/battery alerts, 1m aggregates.

Consumes ``robot.telemetry``, ``robot.registry`` and ``timers.due.telemetry`` (key robot_id, co-partitioned);
produces ``robot.status``, ``alerts``, ``robot.telemetry.1m`` and ``timers`` exactly once. Rejected records
go to ``dlq.telemetry``. Site maps (key site_id) are read beside the application, whole, into memory, for
the pose check (see ``topologies.telemetry.sitemaps``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from pydantic import Field

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.settings import TopologySettings
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from topologies.telemetry import (
    OUTPUT_TOPICS,
    OWNER,
    SiteMapIndex,
    TelemetryConfig,
    build_telemetry,
    output_key,
)

__all__ = ["Settings", "SiteMapFeed", "build", "run"]

logger = logging.getLogger(__name__)

INPUTS = ("robot.telemetry", "robot.registry", f"timers.due.{OWNER}")


class Settings(TopologySettings):
    """Settings of the telemetry processor (env prefix FLEET_)."""

    offline_timeout_s: float = Field(
        10.0, gt=0, description="No telemetry for this long: the robot is OFFLINE."
    )
    heartbeat_s: float = Field(
        30.0, gt=0, description="RobotStatus HEARTBEAT period without changes (event time)."
    )
    battery_low: float = Field(0.2, ge=0, le=1, description="BATTERY_LOW below this state of charge.")
    battery_margin: float = Field(0.05, ge=0, le=1, description="BATTERY_OK at battery_low + this margin.")
    future_skew_s: float = Field(
        5.0, ge=0, description="Telemetry further ahead of the wall clock is rejected."
    )
    map_margin_m: float = Field(
        2.0, ge=0, description="Poses may lie this far outside the site map's bounds."
    )
    moving_speed: float = Field(0.05, ge=0, description="m/s above which an idle-reporting robot is MOVING.")
    restart_gap_s: float = Field(
        2.0,
        gt=0,
        description="A sample with a seq not above the last one, stamped this long after the last sample, is a "
        "robot that restarted (its seq began again); closer, it is a duplicate or stale and dropped.",
    )
    site_maps_wait_s: float = Field(
        30.0, ge=0, description="Start-up wait for site.maps to be read to its end."
    )
    consumer_poll_timeout_s: float = Field(
        0.005,
        gt=0,
        le=1,
        description="Longest wait for a batch of records. Three inputs are read time-aligned in batches, and "
        "a batch waits this long to fill up: Quix's 1 s default halves throughput.",
    )
    kafka_session_timeout_s: float = Field(
        10.0, ge=6, le=300, description="A crashed instance's partitions move to another after this long."
    )
    kafka_transaction_timeout_s: float = Field(
        10.0,
        ge=1,
        le=900,
        description="A crashed instance's open transaction is aborted after this long (until then "
        "read_committed readers wait); must exceed a checkpoint's duration (as in Kafka Streams).",
    )

    def telemetry_config(self) -> TelemetryConfig:
        return TelemetryConfig(
            offline_timeout_ms=round(self.offline_timeout_s * 1000),
            heartbeat_ms=round(self.heartbeat_s * 1000),
            battery_low=self.battery_low,
            battery_margin=self.battery_margin,
            future_skew_ms=round(self.future_skew_s * 1000),
            map_margin_m=self.map_margin_m,
            moving_speed=self.moving_speed,
            restart_gap_ms=round(self.restart_gap_s * 1000),
        )


class SiteMapFeed:
    """Reads every partition of the compacted ``site.maps`` from the beginning into a :class:`SiteMapIndex`
    and keeps following it, in a daemon thread. Commits nothing: every process reads the whole topic.

    A map that cannot be decoded is logged and skipped (the gateway validated it before producing).
    """

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        decode: Callable[[bytes], dict[str, Any] | None],
        index: SiteMapIndex,
        *,
        group_id: str,
        poll_s: float = 0.5,
    ) -> None:
        self.topic = topic
        self.index = index
        self._decode = decode
        self._config = {
            **kafka_config,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        }
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread = threading.Thread(target=self._run, name="site-maps", daemon=True)

    def start(self) -> SiteMapFeed:
        self._thread.start()
        return self

    def wait_caught_up(self, timeout: float) -> bool:
        """Block until every partition was read to its end once (or ``timeout`` seconds)."""
        return self._caught_up.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _partitions(self, consumer: Consumer) -> list[int]:
        while not self._stop.is_set():
            meta = consumer.list_topics(self.topic, timeout=10).topics.get(self.topic)
            if meta is not None and meta.error is None and meta.partitions:
                return sorted(meta.partitions)
            logger.warning("topic %s not available yet; pose checks wait for maps", self.topic)
            self._caught_up.set()  # nothing to wait for at start-up
            self._stop.wait(5)
        return []

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key:
                self.index.remove_site(key.decode())
            return
        try:
            site_map = self._decode(value)
        except Exception as exc:  # one bad map must not stop the others
            logger.error("cannot decode a site map on %s: %s", self.topic, exc)
            return
        if site_map is not None and self.index.update(site_map):
            logger.info(
                "site map %s v%s loaded",
                site_map["site_id"],
                site_map.get("version"),
                extra={"tenant_id": site_map["tenant_id"], "site_id": site_map["site_id"]},
            )

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            partitions = self._partitions(consumer)
            if not partitions:
                return
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions])
            at_end: set[int] = set()
            while not self._stop.is_set():
                msg = consumer.poll(self._poll_s)
                if msg is None:
                    continue
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        if len(at_end) == len(partitions) and not self._caught_up.is_set():
                            logger.info("site maps loaded: %d sites", len(self.index))
                            self._caught_up.set()
                    else:
                        logger.warning("site maps consumer: %s", error)
                    continue
                self._apply(msg.key(), msg.value())
        finally:
            consumer.close()


def build(settings: Settings, site_maps: SiteMapIndex | None = None) -> ProcessorApp:
    """The telemetry ProcessorApp, fully wired (not running). ``site_maps`` feeds the pose check."""
    papp = create_processor_app(
        settings,
        OWNER,
        exactly_once=True,
        commit_interval=settings.commit_interval_s,
        consumer_extra_config={"session.timeout.ms": round(settings.kafka_session_timeout_s * 1000)},
        producer_extra_config={"transaction.timeout.ms": round(settings.kafka_transaction_timeout_s * 1000)},
        consumer_poll_timeout=settings.consumer_poll_timeout_s,
    )

    outputs = build_telemetry(
        papp.avro_input("robot.telemetry"),
        registry_sdf=papp.avro_input("robot.registry"),
        timers_due_sdf=papp.avro_input(f"timers.due.{OWNER}"),
        config=settings.telemetry_config(),
        site_bounds=site_maps.bounds if site_maps is not None else None,
    )
    papp.produce(outputs, OUTPUT_TOPICS, key=output_key)
    return papp


def run(settings: Settings) -> None:
    index = SiteMapIndex()
    registry = RegistryClient(**settings.registry_client_config())
    maps_codec = AvroCodec.for_topic(registry, "site.maps", settings.topic_prefix)
    feed = SiteMapFeed(
        settings.kafka_client_config(),
        settings.topic("site.maps"),
        maps_codec.decode,
        index,
        group_id=f"{settings.topic_prefix}fleet-{OWNER}-site-maps",
    ).start()
    if not feed.wait_caught_up(settings.site_maps_wait_s):
        logger.warning(
            "site.maps not read to its end after %.0f s; starting anyway", settings.site_maps_wait_s
        )
    try:
        build(settings, index).run()
    finally:
        feed.stop()
