"""Timer service: fires event timers for topologies (offline detection, task timeouts, cron) within 1 s.

Consumes ``timers`` (compacted; key timer_id) and produces each due Timer to ``timers.due.<owner>`` keyed
by the owner's key. See ``pipelines/timers.py`` and docs/records.md, "Timers".
"""

from __future__ import annotations

import signal
import threading

from pydantic import Field

from pipelines.settings import CommonSettings
from pipelines.timers import TimerService, due_topic
from schemas.catalog import TIMERS, timers_due
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient

__all__ = ["Settings", "build_service", "run"]


class Settings(CommonSettings):
    """Settings of the timer service (env prefix FLEET_)."""

    timers_tick_s: float = Field(0.1, gt=0, le=1.0, description="Longest sleep between due checks, seconds.")


def build_service(settings: Settings) -> TimerService:
    registry = RegistryClient(**settings.registry_client_config())
    reader = AvroCodec.for_topic(registry, TIMERS, settings.topic_prefix)
    writers: dict[str, AvroCodec] = {}

    def encode(timer: dict, topic: str) -> bytes:
        codec = writers.get(topic)
        if codec is None:
            owner = topic.rsplit(".", 1)[-1]
            codec = writers[topic] = AvroCodec.for_topic(registry, timers_due(owner), settings.topic_prefix)
        data = codec.encode(timer)
        assert data is not None
        return data

    return TimerService(
        settings.kafka_client_config(),
        timers_topic=settings.topic(TIMERS),
        due_topic_for=lambda owner: due_topic(owner, settings.topic_prefix),
        decode=lambda data, _topic: reader.decode(data) or {},
        encode=encode,
        group_id=f"{settings.topic_prefix}fleet-timers",
        tick_s=settings.timers_tick_s,
    )


def run(settings: Settings) -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    build_service(settings).run(stop)
