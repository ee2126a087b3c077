"""How far the pipeline's consumer groups are: committed offsets against the ends of what they read.

A processor has recovered from a fault once its group has committed past everything that was in its
input topics when the fault ended: :meth:`GroupProgress.snapshot` takes the end offsets of every
partition the groups read, :meth:`GroupProgress.caught_up` says when the committed offsets reach them.
:meth:`GroupProgress.lag` is the final check: records (not transaction markers) still unread.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

__all__ = ["GroupProgress", "Snapshot"]

logger = logging.getLogger(__name__)

Snapshot = dict[tuple[str, str, int], int]  # (group, topic, partition) -> end offset


@dataclass
class GroupProgress:
    """The consumer groups of one drill: every group whose name starts with ``group_prefix``."""

    admin: AdminClient
    kafka_config: dict[str, Any]
    group_prefix: str  # "<topic prefix>fleet-"
    _group_consumers: dict[str, Consumer] = field(default_factory=dict)
    #: Groups left out of snapshots (processors in a crash loop: waiting for them is pointless).
    excluded: set[str] = field(default_factory=set)
    _readable_cache: dict[tuple[str, int, int, int], bool] = field(default_factory=dict)

    def groups(self) -> list[str]:
        listed = self.admin.list_consumer_groups(request_timeout=10).result()
        return sorted(g.group_id for g in listed.valid if g.group_id.startswith(self.group_prefix))

    def committed(self) -> dict[tuple[str, str, int], int]:
        """(group, topic, partition) -> committed offset, for every partition a group has committed.

        Asked through a consumer of each group (that never subscribes, so it does not join it), not the
        admin API: librdkafka's admin OffsetFetch crashes the process when the group's coordinator
        moves (a NOT_COORDINATOR answer reaches a consumer-group handler the admin client does not
        have; confluent-kafka-python issue 1982).
        """
        out: dict[tuple[str, str, int], int] = {}
        partitions = [TopicPartition(t, p) for t, p in sorted(self._partitions())]
        for group in self.groups():
            for tp in self._committed(group, partitions):
                if tp.error is None and tp.offset >= 0:
                    out[(group, tp.topic, tp.partition)] = tp.offset
        return out

    def _committed(
        self, group: str, partitions: list[TopicPartition], attempts: int = 10
    ) -> list[TopicPartition]:
        """The group's committed offsets, asked again (with a new consumer) while its coordinator moves."""
        for attempt in range(attempts):
            consumer = self._group_consumers.get(group)
            if consumer is None:
                consumer = self._group_consumers[group] = Consumer(
                    {**self.kafka_config, "group.id": group, "enable.auto.commit": False}
                )
            try:
                return list(consumer.committed(partitions, timeout=10))
            except KafkaException as exc:
                if attempt == attempts - 1:
                    raise
                logger.debug("committed offsets of %s not available (%s); asking again", group, exc)
                self._group_consumers.pop(group).close()
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def _partitions(self) -> set[tuple[str, int]]:
        """Every partition of the drill's topics but the state changelogs (which no group reads)."""
        meta = self.admin.list_topics(timeout=10)
        topic_prefix = self.group_prefix.removesuffix("fleet-")
        return {
            (name, p)
            for name, t in meta.topics.items()
            if name.startswith(topic_prefix) and t.error is None
            for p in t.partitions
        } | {
            (name, p)
            for name, t in meta.topics.items()
            if name.startswith(f"repartition__{self.group_prefix}") and t.error is None
            for p in t.partitions
        }

    def close(self) -> None:
        for consumer in self._group_consumers.values():
            consumer.close()
        self._group_consumers.clear()

    def ends(self, tps: set[tuple[str, int]], attempts: int = 10) -> dict[tuple[str, int], int]:
        """Last stable offset of each (topic, partition); asked again while leaders move (a partition
        whose leader just changed answers NOT_LEADER or UNKNOWN_LEADER_EPOCH for a moment)."""
        if not tps:
            return {}
        request = {TopicPartition(t, p): OffsetSpec.latest() for t, p in tps}
        for attempt in range(attempts):
            try:
                futures = self.admin.list_offsets(
                    request, isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=10
                )
                return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}
            except KafkaException as exc:
                if attempt == attempts - 1:
                    raise
                logger.debug("end offsets not available yet (%s); asking again", exc)
                time.sleep(1.0)
        raise AssertionError("unreachable")

    def snapshot(self) -> Snapshot:
        committed = {k: v for k, v in self.committed().items() if k[0] not in self.excluded}
        ends = self.ends({(t, p) for _g, t, p in committed})
        return {(g, t, p): ends[(t, p)] for g, t, p in committed}

    def behind(self, snapshot: Snapshot) -> dict[str, int]:
        """Per group, how many partitions of the snapshot its commits have not reached yet. A partition
        whose committed offset is short of the snapshot's end only by transaction markers and aborted
        records (nothing a read_committed consumer gets) is reached."""
        committed = self.committed()
        out: dict[str, int] = {}
        for (group, topic, partition), end in snapshot.items():
            offset = committed.get((group, topic, partition), -1)
            if offset < end and self._readable(topic, partition, max(offset, 0), end):
                out[group] = out.get(group, 0) + 1
        return out

    def _readable(self, topic: str, partition: int, start: int, end: int) -> bool:
        """Whether a read_committed consumer gets any record at offsets start..end-1 (cached)."""
        key = (topic, partition, start, end)
        if key not in self._readable_cache:
            self._readable_cache[key] = self._records_from(topic, partition, start, end) > 0
        return self._readable_cache[key]

    def caught_up(
        self,
        snapshot: Snapshot,
        timeout: float,
        poll_s: float = 1.0,
        give_up: Callable[[], bool] = lambda: False,
    ) -> float | None:
        """Wall time at which every group had committed up to the snapshot, or None after ``timeout`` (or
        as soon as ``give_up()`` says waiting is pointless)."""
        deadline = time.monotonic() + timeout
        behind: dict[str, int] = {}
        while time.monotonic() < deadline and not give_up():
            try:
                behind = self.behind(snapshot)
            except Exception as exc:  # a coordinator moving: ask again
                logger.debug("group progress unavailable: %s", exc)
                behind = {"?": 1}
            if not behind:
                return time.time()
            time.sleep(poll_s)
        waited = timeout - max(0.0, deadline - time.monotonic())
        logger.warning("groups still behind the snapshot after %.0fs: %s", waited, behind)
        return None

    def lag(self) -> dict[str, int]:
        """Per group, records that are committed to its input partitions but not consumed by it
        (transaction markers after its committed offset are not records)."""
        committed = self.committed()
        ends = self.ends({(t, p) for _g, t, p in committed})
        out: dict[str, int] = {}
        pending = [(g, t, p, c) for (g, t, p), c in committed.items() if ends[(t, p)] > c]
        for group, topic, partition, offset in pending:
            if self._readable(topic, partition, offset, ends[(topic, partition)]):
                n = self._records_from(topic, partition, offset, ends[(topic, partition)])
                out[group] = out.get(group, 0) + n
        return out

    def _records_from(self, topic: str, partition: int, start: int, end: int) -> int:
        """Records a read_committed consumer gets at offsets start..end-1."""
        consumer = Consumer(
            {
                **self.kafka_config,
                "group.id": f"drill-lag-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
        try:
            consumer.assign([TopicPartition(topic, partition, start)])
            count = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                msg = consumer.poll(1.0)
                if msg is None:
                    continue
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        break
                    raise RuntimeError(str(msg.error()))
                if msg.offset() >= end:
                    break
                count += 1
            return count
        finally:
            consumer.close()
