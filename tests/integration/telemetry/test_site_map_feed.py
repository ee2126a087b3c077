"""The site-map reader of the telemetry processor against real Kafka: whole topic, newest version, tombstones."""

from __future__ import annotations

import time
import uuid
from typing import Any

from pipelines.processors.telemetry import SiteMapFeed
from schemas.ids import now_ms
from topologies.telemetry import SiteBounds, SiteMapIndex

from .conftest import Stack


def site_map(site_id: str, version: int, width: float, tenant: str = "acme") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "tenant_id": tenant, "site_id": site_id, "occurred_at": now_ms(),
        "version": version, "name": site_id, "lanes": [], "zones": [], "chargers": [],
        "nodes": [{"id": "a", "x": 0.0, "y": 0.0, "kind": "WAYPOINT", "name": None},
                  {"id": "b", "x": width, "y": 10.0, "kind": "WAYPOINT", "name": None}],
    }  # fmt: skip


def wait_until(check, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_feed_loads_every_site_then_follows_updates_and_tombstones(stack: Stack):
    stack.produce("site.maps", "s1", site_map("s1", 1, 40.0))
    stack.produce("site.maps", "s2", site_map("s2", 3, 80.0))
    stack.produce("site.maps", "s2", site_map("s2", 2, 99.0))  # an older version arriving late
    stack.produce("site.maps", "s3", b"not avro")  # skipped, does not stop the reader
    stack.flush()
    index = SiteMapIndex()
    codec = stack.codec("site.maps")
    feed = SiteMapFeed(
        stack.settings.kafka_client_config(), stack.settings.topic("site.maps"), codec.decode, index,
        group_id=f"{stack.prefix}feed-test",
    ).start()  # fmt: skip
    try:
        assert feed.wait_caught_up(20)
        assert index.bounds("acme", "s1") == SiteBounds(1, 0.0, 0.0, 40.0, 10.0)
        assert index.bounds("acme", "s2") == SiteBounds(3, 0.0, 0.0, 80.0, 10.0)
        stack.produce("site.maps", "s1", site_map("s1", 2, 60.0))
        stack.produce("site.maps", "s2", None)
        stack.flush()
        assert wait_until(lambda: index.bounds("acme", "s2") is None)
        assert wait_until(lambda: (b := index.bounds("acme", "s1")) is not None and b.version == 2)
        assert index.bounds("acme", "s1").max_x == 60.0
    finally:
        feed.stop()


def test_feed_reports_caught_up_when_the_topic_is_empty(stack: Stack):
    feed = SiteMapFeed(
        stack.settings.kafka_client_config(), stack.settings.topic("site.maps"), stack.codec("site.maps").decode,
        SiteMapIndex(), group_id=f"{stack.prefix}feed-empty",
    ).start()  # fmt: skip
    try:
        assert feed.wait_caught_up(20)
    finally:
        feed.stop()
