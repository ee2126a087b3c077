"""The shared rule of the sinks: isolate what a target refuses, write the rest, never swallow an outage."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from quixstreams.sinks import SinkBackpressureError, SinkBatch

from sinks.batching import Origins
from sinks.deadletters import RecordRefused, SinkRecord, refuse_always, write_isolating


class Target:
    """A target that refuses any batch holding a value in ``bad`` (as Postgres refuses a transaction)."""

    def __init__(self, bad: set[int], down: bool = False) -> None:
        self.bad = bad
        self.down = down
        self.stored: set[int] = set()
        self.writes = 0

    def write(self, values: Sequence[int]) -> None:
        self.writes += 1
        if self.down:
            raise SinkBackpressureError(retry_after=1.0)
        refused = self.bad.intersection(values)
        if refused:
            raise RecordRefused(f"{min(refused)} is refused")
        self.stored.update(values)


@pytest.mark.parametrize("bad", [set(), {0}, {99}, {17, 18}, {3, 50, 97}, set(range(0, 100, 2))])
def test_refused_records_are_isolated_and_every_other_one_written(bad: set[int]) -> None:
    target, refused = Target(bad), []
    count = write_isolating(list(range(100)), target.write, lambda v, e: refused.append((v, e.reason)))
    assert count == len(bad) and sorted(v for v, _ in refused) == sorted(bad)
    assert all(reason == f"{v} is refused" for v, reason in refused)
    assert target.stored == set(range(100)) - bad
    if not bad:
        assert target.writes == 1
    elif len(bad) == 1:
        assert target.writes <= 2 * 7 + 1  # halving: about 2 log2(n) writes for one refused record


def test_an_outage_is_never_taken_for_refused_data() -> None:
    target, refused = Target({5}, down=True), []
    with pytest.raises(SinkBackpressureError):
        write_isolating(list(range(10)), target.write, lambda v, e: refused.append(v))
    assert refused == [] and target.writes == 1


def test_a_sink_without_dead_letters_stops_on_a_refused_record() -> None:
    with pytest.raises(RecordRefused, match="3 is refused"):
        write_isolating([1, 2, 3], Target({3}).write, lambda v, e: refuse_always(SinkRecord(v), e))


def test_origins_name_where_each_value_of_a_flush_was_read() -> None:
    batches = [SinkBatch("a", 0), SinkBatch("b", 2)]
    for offset in (10, 11):
        batches[0].append(f"a{offset}", b"k", 0, [], offset)
    batches[1].append("b5", None, 0, [("h", b"v")], 5)
    origin = Origins(batches)
    assert origin(1) == SinkRecord("a11", b"k", [], "a", 0, 11)
    assert origin(2) == SinkRecord("b5", None, [("h", b"v")], "b", 2, 5)
    assert Origins(values=["x"])(0) == SinkRecord("x")
