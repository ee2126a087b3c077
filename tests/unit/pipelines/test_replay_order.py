"""The order ``fleet replay`` writes an inbox in: the records alone decide it, not their partitions."""

from __future__ import annotations

import random

from pipelines.replay import Recorded, _hop_headers, event_time_order
from schemas.tracing import parse_traceparent
from topologies.kernel import murmur2_partition

SOURCES = ("robot.status", "task.events", "site.maps")


def _log(count: int, seed: int) -> list[tuple[str, bytes | None, int, bytes]]:
    """``count`` records (topic, key, timestamp, value) in produce order; timestamps collide and some go
    back within a key (a late record)."""
    rng = random.Random(seed)
    out = []
    for n in range(count):
        topic = rng.choice(SOURCES)
        key = None if rng.random() < 0.05 else f"{topic[0]}{rng.randrange(12)}".encode()
        out.append((topic, key, 1_000 + rng.randrange(40) * 100, f"v{n}".encode()))
    return out


def _partitioned(
    log: list[tuple[str, bytes | None, int, bytes]], partitions: int, spread: bytes | None = None
) -> list[Recorded]:
    """The log as a reader sees it with ``partitions`` per topic: partition by partition, each in offset
    order. Keyed records go to their key's partition (murmur2); keyless ones, and those of the key
    ``spread`` (a producer with a round-robin partitioner), round robin."""
    parts: dict[tuple[str, int], list[tuple[str, bytes | None, int, bytes]]] = {}
    for n, rec in enumerate(log):
        topic, key = rec[0], rec[1]
        partition = n % partitions if key is None or key == spread else murmur2_partition(key, partitions)
        parts.setdefault((topic, partition), []).append(rec)
    out = []
    for (topic, partition), recs in sorted(parts.items(), key=lambda item: (-item[0][1], item[0][0])):
        for offset, (_topic, key, ts, value) in enumerate(recs):
            out.append(Recorded(topic, SOURCES.index(topic), topic, partition, offset, ts, key, value, None))
    return out


def test_any_partition_count_gives_the_same_order() -> None:
    log = _log(600, seed=7)
    assert any(rec[1] is None for rec in log)  # keyless records too, round robin
    orders = [[r.value for r in event_time_order(_partitioned(log, n, spread=b"r3"))] for n in (1, 2, 3, 7)]
    assert len(orders[0]) == len(log)
    assert all(order == orders[1] for order in orders[2:])  # r3 is spread over partitions from 2 on


def test_a_key_spread_over_partitions_goes_by_time() -> None:
    log = [("robot.status", b"r1", ts, f"v{n}".encode()) for n, ts in enumerate((300, 100, 200))]
    for partitions in (2, 3):
        ordered = event_time_order(_partitioned(log, partitions, spread=b"r1"))
        assert [r.timestamp for r in ordered] == [100, 200, 300]
    assert [r.timestamp for r in event_time_order(_partitioned(log, 1))] == [300, 100, 200]  # its log order


def test_records_go_by_time_then_input_then_key_and_each_key_keeps_its_log_order() -> None:
    log = _log(600, seed=11)
    ordered = event_time_order(_partitioned(log, 3))
    position = {rec.value: n for n, rec in enumerate(ordered)}
    for key in {rec[1] for rec in log if rec[1] is not None}:
        for topic in SOURCES:
            mine = [rec[3] for rec in log if rec[1] == key and rec[0] == topic]
            assert [position[v] for v in mine] == sorted(position[v] for v in mine), (topic, key)


def test_without_late_records_the_order_is_by_time_then_input_then_key() -> None:
    log = sorted(_log(600, seed=13), key=lambda rec: rec[2])  # each key's timestamps never go back
    ordered = event_time_order(_partitioned(log, 3))
    keyed = [(r.timestamp, r.rank, r.key) for r in ordered if r.key is not None]
    assert keyed == sorted(keyed)
    assert len(ordered) == len(log)


def test_a_late_record_waits_behind_its_key_and_no_one_else() -> None:
    def rec(topic: str, key: bytes, ts: int, offset: int) -> Recorded:
        return Recorded(
            topic,
            SOURCES.index(topic),
            topic,
            0,
            offset,
            ts,
            key,
            f"{topic}/{key.decode()}@{ts}".encode(),
            None,
        )

    records = [
        rec("robot.status", b"a", 300, 0),
        rec("robot.status", b"a", 100, 1),  # late: sent after 300, stamped before
        rec("robot.status", b"b", 200, 2),
        rec("task.events", b"t", 300, 0),
        rec("site.maps", b"s", 50, 0),
    ]
    assert [r.value.decode() for r in event_time_order(records)] == [  # type: ignore[union-attr]
        "site.maps/s@50",
        "robot.status/b@200",
        "robot.status/a@300",
        "robot.status/a@100",
        "task.events/t@300",
    ]


def test_a_fed_record_carries_the_source_headers_and_a_span_of_its_own_in_the_source_trace() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    rec = Recorded("status", 0, "robot.status", 0, 7, 1_000, b"r1", b"v", [
        ("x-site", b"s1"), ("traceparent", parent.encode()),
    ])  # fmt: skip
    headers = _hop_headers(rec)
    assert headers[0] == ("x-site", b"s1")
    assert [name for name, _ in headers] == ["x-site", "traceparent"]
    fed = parse_traceparent(headers[1][1].decode())
    assert fed is not None
    assert fed.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert fed.span_id != "b7ad6b7169203331"  # this hop's span, not the source's


def test_a_fed_record_without_a_trace_starts_one() -> None:
    rec = Recorded("status", 0, "robot.status", 0, 7, 1_000, b"r1", b"v", None)
    ((name, value),) = _hop_headers(rec)
    assert name == "traceparent"
    assert parse_traceparent(value.decode()) is not None
