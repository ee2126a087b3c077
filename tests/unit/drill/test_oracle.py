"""The drill's oracle search: it finds the order in which a processor applied a key's inputs (timestamp
order, except inputs of different topics that arrived within the window of each other), and it finds
no order at all when an output was lost, duplicated or altered."""

from __future__ import annotations

from typing import Any

from pipelines.drill.oracle import Emitted, explain, merge_by_timestamp
from pipelines.drill.reader import Record


def rec(topic: str, offset: int, ts: int, value: Any, partition: int = 0, key: str = "k") -> Record:
    return Record(topic, partition, offset, ts, key, value, ())


def apply(state: int, r: Record) -> tuple[int, list[Emitted], str | None]:
    """A toy step: samples add to a total; a timer emits the total it finds."""
    if r.topic == "samples":
        return state + r.value, [], None
    return state, [("out", "k", f"total={state}")], None


SAMPLES = [rec("samples", i, 1000 * i, 1) for i in range(5)]


def test_timestamp_order_explains_outputs_made_in_that_order() -> None:
    timers = [rec("timers", 0, 2500, None)]  # after samples 0, 1, 2
    verdict = explain("k", [SAMPLES, timers], 0, apply, {("out", "k"): ["total=3"]})
    assert verdict.ok and verdict.reordered == 0
    assert verdict.emitted == [("out", "k", "total=3")]


def test_a_timer_taken_before_a_sample_of_the_same_moment_is_explained() -> None:
    timers = [
        rec("timers", 0, 2000, None)
    ]  # same millisecond as sample 2; the processor took the timer first
    verdict = explain("k", [SAMPLES, timers], 0, apply, {("out", "k"): ["total=2"]})
    assert verdict.ok and verdict.reordered == 1


def test_no_order_explains_a_lost_a_duplicated_or_an_altered_output() -> None:
    timers = [rec("timers", 0, 2500, None), rec("timers", 1, 4500, None)]
    queues = [SAMPLES, timers]
    assert explain("k", queues, 0, apply, {("out", "k"): ["total=3", "total=5"]}).ok
    lost = explain("k", queues, 0, apply, {("out", "k"): ["total=3"]})
    assert not lost.ok and "gives out[k] #1" in lost.detail
    duplicated = explain("k", queues, 0, apply, {("out", "k"): ["total=3", "total=3", "total=5"]})
    assert not duplicated.ok and "remain" in duplicated.detail
    altered = explain("k", queues, 0, apply, {("out", "k"): ["total=3", "total=9"]})
    assert not altered.ok


def test_inputs_further_apart_than_the_window_are_never_swapped() -> None:
    timers = [rec("timers", 0, 2500, None)]
    verdict = explain("k", [SAMPLES, timers], 0, apply, {("out", "k"): ["total=1"]}, window_ms=500)
    assert not verdict.ok


def test_merge_by_timestamp_is_per_partition_and_keeps_offset_order() -> None:
    a = [rec("a", 0, 10, 1), rec("a", 1, 5, 2), rec("a", 0, 1, 3, partition=1)]
    b = [rec("b", 0, 7, 4), rec("b", 0, 0, 5, partition=1)]
    order = [(r.topic, r.partition, r.offset) for r in merge_by_timestamp(a, b)]
    # partition 0: heads a@0 (10) and b@0 (7) -> b first; then a@0, a@1 (offset order within a topic)
    assert order == [("b", 0, 0), ("a", 0, 0), ("a", 0, 1), ("b", 1, 0), ("a", 1, 0)]


def test_a_sentinel_timestamp_is_named_with_where_it_was_written() -> None:
    from pipelines.drill.verify import Evidence, timestamps_check

    ok = rec("p.traffic.conflicts", 32, 1, {"event_id": "a", "occurred_at": 1, "window_end": 2})
    bad = rec(
        "p.traffic.conflicts",
        33,
        1,
        {"event_id": "b", "kind": "VERTEX", "occurred_at": 1, "window_end": (1 << 62) - 1},
    )
    nested = rec("p.scheduler.decisions", 7, 1, {"event_id": "c", "occurred_at": 1, "route": [{"eta": -5}]})
    check = timestamps_check(
        Evidence("p.", {"traffic.conflicts": [ok, bad], "scheduler.decisions": [nested]})
    )
    assert not check.ok
    assert "p.traffic.conflicts[0]@33 window_end=4611686018427387903" in check.detail
    assert "route.[0].eta=-5" in check.detail and "2 of 6" in check.detail
