"""Redis sink: latest robot status (robot.status) and task view (task.events) per tenant, with TTLs.

Keys ``fleet:{tenant}:robot:{robot}``, ``fleet:{tenant}:site:{site}:robots``, ``fleet:{tenant}:task:{task}``,
``fleet:{tenant}:site:{site}:tasks`` (see ``sinks.redis``); a key never moves backwards. At least once;
a Redis outage pauses the consumer and retries; a record that can never be a view (undecodable, a time
outside years 1970..9999, refused by Redis) goes to ``dlq.sink-redis`` with the reason. When Redis has
lost the views (no marker key), they are rebuilt from robot.status and task.events.
"""

from __future__ import annotations

import logging

from pydantic import Field

from pipelines.app import create_processor_app
from pipelines.metrics import sink_observers
from pipelines.settings import CommonSettings
from schemas.catalog import ROBOT_STATUS, TASK_EVENTS
from sinks.deadletters import DeadLetterWriter
from sinks.redis import VIEWS_MARKER, RedisConfig, RedisSink
from sinks.redis_views import TopicReplay

__all__ = ["NAME", "TOPICS", "Settings", "run"]

logger = logging.getLogger(__name__)

NAME = "sink-redis"
TOPICS = (ROBOT_STATUS, TASK_EVENTS)


class Settings(CommonSettings):
    """Settings of the Redis sink (env prefix FLEET_)."""

    redis_url: str = Field(
        "redis://127.0.0.1:16379/0", description="redis:// or rediss:// URL (may hold a password)."
    )
    redis_robot_ttl_s: int = Field(3600, ge=1, description="TTL of a robot's latest status.")
    redis_task_ttl_s: int = Field(24 * 3600, ge=1, description="TTL of a task's latest view.")
    redis_timeout_s: float = Field(5.0, gt=0)
    redis_retry_after_s: float = Field(5.0, gt=0, description="Pause after Redis failed (down, timeout).")
    commit_interval_s: float = Field(
        0.5, gt=0, description="Flush (and commit) period: one pipeline per flush."
    )

    def redis_config(self) -> RedisConfig:
        marker = VIEWS_MARKER + (f":{self.topic_prefix}" if self.topic_prefix else "")
        return RedisConfig(
            url=self.redis_url,
            robot_ttl_s=self.redis_robot_ttl_s,
            task_ttl_s=self.redis_task_ttl_s,
            retry_after_s=self.redis_retry_after_s,
            socket_timeout_s=self.redis_timeout_s,
            marker_key=marker,
        )


def run(settings: Settings) -> None:
    papp = create_processor_app(
        settings, NAME, exactly_once=False, commit_interval=settings.commit_interval_s
    )
    on_flush, on_backpressure = sink_observers(NAME)
    dead_letters = DeadLetterWriter(papp.dlq.send, papp.encoders(TOPICS))
    replay = TopicReplay(
        settings.kafka_client_config(),
        {n: (settings.topic(n), papp.codec(n, guard_decoded=True).decode) for n in TOPICS},
    )
    sink = RedisSink(
        settings.redis_config(),
        on_flush=on_flush,
        on_backpressure=on_backpressure,
        dead_letter=dead_letters,
        replay=replay,
    )
    for name in TOPICS:
        papp.avro_input(name).sink(sink)
    try:
        papp.run()
    finally:
        sink.close()
