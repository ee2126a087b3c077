"""The latest site map of every site, in memory, for building orders (node positions, lanes, paths).

``site.maps`` is keyed by site and the bridge by robot, so, the bridge
reads the whole compacted topic beside the application (``SiteMapFeed``) into a :class:`SiteModelIndex`;
the topology only calls :meth:`SiteModelIndex.lookup`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from topologies.vda5050.sitemodel import SiteModel, model_for

__all__ = ["SiteMapFeed", "SiteModelIndex"]

logger = logging.getLogger(__name__)


class SiteModelIndex:
    """Latest :class:`SiteModel` per (tenant_id, site_id); thread-safe, never goes back to an older version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[tuple[str, str], SiteModel] = {}

    def update(self, site_map: dict[str, Any]) -> bool:
        key = (str(site_map["tenant_id"]), str(site_map["site_id"]))
        with self._lock:
            current = self._models.get(key)
            if current is not None and current.version > int(site_map.get("version", 0)):
                return False
            self._models[key] = model_for(site_map)
            return True

    def remove_site(self, site_id: str) -> None:
        with self._lock:
            for key in [k for k in self._models if k[1] == site_id]:
                del self._models[key]

    def lookup(self, tenant_id: str, site_id: str) -> SiteModel | None:
        return self._models.get((tenant_id, site_id))

    def __len__(self) -> int:
        return len(self._models)


class SiteMapFeed:
    """Reads every partition of the compacted ``site.maps`` from the beginning into a :class:`SiteModelIndex`
    and keeps following it, in a daemon thread. Commits nothing: every process reads the whole topic.

    A map that cannot be decoded is logged and skipped (the gateway validated it before producing).
    """

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic: str,
        decode: Callable[[bytes], dict[str, Any] | None],
        index: SiteModelIndex,
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
