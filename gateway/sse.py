"""Server-sent events: one shared Kafka consumer per gateway process, fanned out to every client.

**Positions.** The hub reads every partition of the streamed topics and processes records one at a
time, in one merged order. Its position is the vector of next offsets, one per topic-partition. Each
event sent to a client carries, as its SSE ``id``, the hub's position right after that event: a
consistent cut, because every earlier record that matched the client's filter was queued before it.
Heartbeats carry the position too (an ``id:`` line with no data moves the browser's Last-Event-ID
without dispatching an event), so a quiet client's position stays fresh. Encoding:
``v1-<topic0 offsets>_<topic1 offsets>_...``, offsets in base 36 separated by ``.`` in partition order.

**Resume.** ``Last-Event-ID`` names the position the client had reached. Every partition keeps a ring
buffer of its last ``ring_size`` events; on resume the hub replays, in original order, the ring events
at or after the client's offsets that match its filter, then registers it for live events, without
yielding to the event loop in between: nothing is missed and nothing is seen twice. A position older
than a ring's oldest event cannot be honoured: the client gets an ``event: reset`` (reload by REST),
then everything the rings still hold. A position ahead of this hub (another instance served it)
makes the hub skip what the client has already seen.

**Back-pressure.** Each client has a bounded queue; the hub never waits for a client. A client whose
queue is full is dropped (its response ends); it reconnects with its Last-Event-ID and the ring
replays what it missed. Connections per tenant are capped.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas import catalog

__all__ = [
    "EVENT_TYPES",
    "STREAM_TOPICS",
    "PositionError",
    "StreamEvent",
    "StreamHub",
    "Subscriber",
    "TooManyClients",
    "decode_position",
    "encode_position",
    "sse_frames",
    "topic_partitions",
]

logger = logging.getLogger(__name__)

#: Catalog topics streamed, in the order their offsets appear in event ids.
STREAM_TOPICS: tuple[str, ...] = (
    catalog.ROBOT_STATUS,
    catalog.TASK_EVENTS,
    catalog.SCHEDULER_DECISIONS,
    catalog.TRAFFIC_CONFLICTS,
    catalog.ALERTS,
)
#: SSE event type of each streamed topic.
EVENT_TYPES: dict[str, str] = {
    catalog.ROBOT_STATUS: "robot.status",
    catalog.TASK_EVENTS: "task.event",
    catalog.SCHEDULER_DECISIONS: "decision",
    catalog.TRAFFIC_CONFLICTS: "conflict",
    catalog.ALERTS: "alert",
}
_TYPE_BY_INDEX = tuple(EVENT_TYPES[t] for t in STREAM_TOPICS)

Position = dict[tuple[int, int], int]  # (topic index, partition) -> next offset
Decoder = Callable[[bytes], dict[str, Any] | None]


async def topic_partitions(kafka_config: dict[str, Any], topics: Iterable[str]) -> dict[str, set[int]]:
    """The partitions of each of ``topics`` that exists (a missing one is left out), from fresh cluster
    metadata: aiokafka's consumer only exposes the metadata it has cached, so this asks through an admin
    client. It asks for every topic, so that a broker that creates topics on request creates none."""
    admin = AIOKafkaAdminClient(**kafka_config)
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    wanted = set(topics)
    return {
        t["topic"]: {p["partition"] for p in t["partitions"]}
        for t in described
        if t["topic"] in wanted and t["error_code"] == 0
    }


class PositionError(ValueError):
    """A Last-Event-ID that is not a position this API issued."""


class TooManyClients(Exception):
    """The tenant already has the most concurrent streams allowed."""


def _b36(n: int) -> str:
    if n == 0:
        return "0"
    digits = []
    while n:
        n, r = divmod(n, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[r])
    return "".join(reversed(digits))


def encode_position(position: Position, partitions: Iterable[int]) -> str:
    """The event id of ``position``; ``partitions`` is the partition count per streamed topic."""
    parts = []
    for t, count in enumerate(partitions):
        parts.append(".".join(_b36(position.get((t, p), 0)) for p in range(count)))
    return "v1-" + "_".join(parts)


def decode_position(value: str) -> Position:
    """Inverse of :func:`encode_position`; raises :class:`PositionError`."""
    if not value.startswith("v1-") or len(value) > 8192:
        raise PositionError("Last-Event-ID is not an id this stream issued")
    segments = value[3:].split("_")
    if len(segments) != len(STREAM_TOPICS):
        raise PositionError("Last-Event-ID is not an id this stream issued")
    position: Position = {}
    try:
        for t, segment in enumerate(segments):
            if segment:
                for p, text in enumerate(segment.split(".")):
                    position[(t, p)] = int(text, 36)
    except ValueError as exc:
        raise PositionError("Last-Event-ID is not an id this stream issued") from exc
    return position


@dataclass(slots=True)
class StreamEvent:
    """One decoded record, ready to send: its place, what filters look at, and the JSON body."""

    seq: int
    topic_index: int
    partition: int
    offset: int
    tenant_id: str
    site_id: str | None
    robot_ids: frozenset[str]
    data: bytes

    @property
    def type(self) -> str:
        return _TYPE_BY_INDEX[self.topic_index]

    def frame(self, event_id: str) -> bytes:
        return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), self.type.encode(), self.data)


def _robot_ids(record: dict[str, Any]) -> frozenset[str]:
    ids = {record.get("robot_id"), record.get("resolved_robot_id")}
    ids.update(record.get("robot_ids") or ())
    if "alert_id" in record:
        ids.add(record.get("subject_id"))
    ids.discard(None)
    return frozenset(ids)  # type: ignore[arg-type]


@dataclass(eq=False, slots=True)
class Subscriber:
    """One connected client: its tenant, filters and bounded queue of frames."""

    tenant_id: str
    sites: frozenset[str] | None
    robots: frozenset[str] | None
    types: frozenset[str] | None
    queue: asyncio.Queue[bytes]
    skip: dict[tuple[int, int], int] = field(default_factory=dict)
    dropped: bool = False

    def matches(self, event: StreamEvent) -> bool:
        if self.types is not None and event.type not in self.types:
            return False
        if self.sites is not None and event.site_id not in self.sites:
            return False
        if self.robots is not None and not (event.robot_ids & self.robots):
            return False
        if self.skip:
            key = (event.topic_index, event.partition)
            floor = self.skip.get(key)
            if floor is not None:
                if event.offset < floor:
                    return False
                del self.skip[key]  # this hub has caught up with the client on that partition
        return True


class StreamHub:
    """The shared consumer, the per-partition rings and the subscribers.

    :param decoders: catalog topic -> decode function (the registry-backed codec).
    """

    def __init__(
        self,
        kafka_config: dict[str, Any],
        topic_prefix: str,
        decoders: dict[str, Decoder],
        *,
        ring_size: int = 10000,
        client_queue: int = 1000,
        max_clients_per_tenant: int = 2000,
        max_replay: int = 50000,
    ) -> None:
        self._config = kafka_config
        self._prefix = topic_prefix
        self._decoders = decoders
        self.ring_size = ring_size
        self.client_queue = client_queue
        self.max_clients_per_tenant = max_clients_per_tenant
        self.max_replay = max_replay
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.partition_counts: list[int] = [0] * len(STREAM_TOPICS)
        self._position: Position = {}
        self._floor: Position = {}
        self._rings: dict[tuple[int, int], deque[StreamEvent]] = {}
        self._subs: dict[str, set[Subscriber]] = {}
        self._seq = 0
        self._index = {f"{topic_prefix}{t}": i for i, t in enumerate(STREAM_TOPICS)}
        self.live = asyncio.Event()
        self._startup_end: Position = {}
        self.events_in = 0
        self.dropped_clients = 0

    # ----------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(**self._config, enable_auto_commit=False, group_id=None)
        await self._consumer.start()
        found = await topic_partitions(self._config, [self._prefix + name for name in STREAM_TOPICS])
        tps: list[TopicPartition] = []
        for t, name in enumerate(STREAM_TOPICS):
            parts = found.get(self._prefix + name, set())
            self.partition_counts[t] = len(parts)
            if len(parts) != (max(parts) + 1 if parts else 0):
                raise RuntimeError(f"topic {name}: partitions are not 0..n-1")
            tps.extend(TopicPartition(self._prefix + name, p) for p in sorted(parts))
        missing = [n for n, c in zip(STREAM_TOPICS, self.partition_counts, strict=True) if c == 0]
        if missing:
            logger.warning("streamed topics missing, streaming without them: %s", ", ".join(missing))
        if tps:
            self._consumer.assign(tps)
            begin = await self._consumer.beginning_offsets(tps)
            end = await self._consumer.end_offsets(tps)
            for tp in tps:
                key = (self._index[tp.topic], tp.partition)
                # Pre-fill the ring so clients that resume after a restart of this gateway are served.
                start = max(begin[tp], end[tp] - self.ring_size)
                self._consumer.seek(tp, start)
                self._position[key] = self._floor[key] = start
                self._startup_end[key] = end[tp]
                self._rings[key] = deque(maxlen=self.ring_size)
        self._check_live()
        self._task = asyncio.create_task(self._run(), name="sse-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()
        for subs in self._subs.values():
            for sub in subs:
                sub.dropped = True
                with contextlib.suppress(asyncio.QueueFull):
                    sub.queue.put_nowait(b"")

    def _check_live(self) -> None:
        if all(self._position[k] >= end for k, end in self._startup_end.items()):
            self.live.set()
            self._startup_end = {}

    @property
    def client_count(self) -> int:
        return sum(len(s) for s in self._subs.values())

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------------------------ ingestion

    async def _run(self) -> None:
        assert self._consumer is not None
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            for tp, records in batches.items():
                t = self._index[tp.topic]
                decode = self._decoders[STREAM_TOPICS[t]]
                for rec in records:
                    self._ingest(t, tp.partition, rec.offset, rec.value, decode)
            if self._startup_end:
                for tp in self._consumer.assignment():
                    key = (self._index[tp.topic], tp.partition)
                    self._position[key] = max(self._position[key], await self._consumer.position(tp))
                self._check_live()

    def _ingest(self, t: int, partition: int, offset: int, value: bytes | None, decode: Decoder) -> None:
        key = (t, partition)
        self._position[key] = offset + 1
        if value is None:
            return
        try:
            record = decode(value)
        except Exception:  # a poison record is skipped, the stream goes on
            logger.exception(
                "undecodable record skipped",
                extra={"topic": STREAM_TOPICS[t], "partition": partition, "offset": offset},
            )
            return
        if record is None or not record.get("tenant_id"):
            return
        self._seq += 1
        self.events_in += 1
        event = StreamEvent(
            seq=self._seq,
            topic_index=t,
            partition=partition,
            offset=offset,
            tenant_id=record["tenant_id"],
            site_id=record.get("site_id"),
            robot_ids=_robot_ids(record),
            data=orjson.dumps(record),
        )
        ring = self._rings[key]
        if len(ring) == ring.maxlen:
            self._floor[key] = ring[0].offset + 1
        ring.append(event)
        subs = self._subs.get(event.tenant_id)
        if not subs:
            return
        frame: bytes | None = None
        for sub in tuple(subs):
            if not sub.matches(event):
                continue
            if sub.skip:  # the client is ahead of this hub on some partition: its own id
                own = event.frame(self.position_id(sub.skip))
            else:
                if frame is None:
                    frame = event.frame(self.position_id())
                own = frame
            try:
                sub.queue.put_nowait(own)
            except asyncio.QueueFull:
                self._drop(sub)

    def _drop(self, sub: Subscriber) -> None:
        sub.dropped = True
        self.dropped_clients += 1
        self._subs.get(sub.tenant_id, set()).discard(sub)
        logger.info("slow SSE client dropped", extra={"tenant_id": sub.tenant_id})
        # Wake the client's generator so it ends the response; a full queue keeps it awake anyway.

    # ---------------------------------------------------------------------------------- subscribing

    def position_id(self, floor: dict[tuple[int, int], int] | None = None) -> str:
        position = self._position
        if floor:
            position = {**position, **{k: max(v, position.get(k, 0)) for k, v in floor.items()}}
        return encode_position(position, self.partition_counts)

    def subscribe(
        self,
        tenant_id: str,
        *,
        sites: Iterable[str] | None = None,
        robots: Iterable[str] | None = None,
        types: Iterable[str] | None = None,
        last_event_id: str | None = None,
    ) -> tuple[Subscriber, list[bytes]]:
        """Register a client; returns it with the frames to send first (the replay, maybe a reset).

        :raises TooManyClients: the tenant is at its cap.
        :raises PositionError: ``last_event_id`` is not one of ours.
        """
        tenant_subs = self._subs.setdefault(tenant_id, set())
        if len(tenant_subs) >= self.max_clients_per_tenant:
            raise TooManyClients(
                f"tenant has {len(tenant_subs)} open streams (limit {self.max_clients_per_tenant})"
            )
        resume = decode_position(last_event_id) if last_event_id else None
        sub = Subscriber(
            tenant_id=tenant_id,
            sites=frozenset(sites) if sites else None,
            robots=frozenset(robots) if robots else None,
            types=frozenset(types) if types else None,
            queue=asyncio.Queue(self.client_queue),
        )
        frames: list[bytes] = []
        if resume is not None:
            frames = self._replay(sub, resume)
        # No await between building the replay and registering: the hub cannot slip an event in between.
        tenant_subs.add(sub)
        return sub, frames

    def _replay(self, sub: Subscriber, resume: Position) -> list[bytes]:
        gap = False
        pending: list[list[StreamEvent]] = []
        client = dict(self._position)
        for key, ring in self._rings.items():
            wanted = resume.get(key, self._floor[key])
            if wanted < self._floor[key]:
                gap = True
                wanted = self._floor[key]
            if wanted > self._position[key]:
                sub.skip[key] = wanted  # the client has seen more than this hub; do not repeat it
                client[key] = wanted
                continue
            client[key] = wanted
            tail: list[StreamEvent] = []
            for event in reversed(ring):
                if event.offset < wanted:
                    break
                tail.append(event)
            tail.reverse()
            pending.append([e for e in tail if e.tenant_id == sub.tenant_id])
        frames: list[bytes] = []
        if gap:
            reset = {"reason": "resume position is older than the replay buffer; reload state by REST"}
            frames.append(b"event: reset\ndata: %s\n\n" % orjson.dumps(reset))
        replayed = 0
        for event in heapq.merge(*pending, key=lambda e: e.seq):
            client[(event.topic_index, event.partition)] = event.offset + 1
            if sub.matches(event):
                replayed += 1
                if replayed > self.max_replay:
                    frames.append(
                        b"event: reset\ndata: %s\n\n" % orjson.dumps({"reason": "too much to replay"})
                    )
                    break
                frames.append(event.frame(encode_position(client, self.partition_counts)))
        return frames

    def unsubscribe(self, sub: Subscriber) -> None:
        subs = self._subs.get(sub.tenant_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.tenant_id]


async def sse_frames(
    hub: StreamHub, sub: Subscriber, first: list[bytes], heartbeat: float, retry_ms: int = 2000
) -> AsyncIterator[bytes]:
    """The body of one SSE response: replay, then live frames, heartbeats when idle, until dropped."""
    try:
        yield b"retry: %d\n: connected\n\n" % retry_ms + b"".join(first)
        while True:
            if sub.dropped:
                return
            try:
                frame = await asyncio.wait_for(sub.queue.get(), heartbeat)
            except TimeoutError:
                # The queue is empty: everything the hub has processed and this client wants was sent.
                yield b": heartbeat\nid: %s\n\n" % hub.position_id(sub.skip).encode()
                continue
            chunk = [frame]
            while not sub.queue.empty() and len(chunk) < 256:
                chunk.append(sub.queue.get_nowait())
            if sub.dropped:
                return
            yield b"".join(chunk)
    finally:
        hub.unsubscribe(sub)
