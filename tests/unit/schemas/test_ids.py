from __future__ import annotations

import re
import threading
import uuid

from schemas.ids import now_ms, uuid7, uuid7_time_ms

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_uuid7_has_version_7_and_rfc_variant() -> None:
    value = uuid7()
    assert UUID7.match(value), value
    parsed = uuid.UUID(value)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122


def test_uuid7_embeds_current_time() -> None:
    before = now_ms()
    value = uuid7()
    after = now_ms()
    # the counter may borrow at most a few ms when many ids are made in one millisecond
    assert before <= uuid7_time_ms(value) <= after + 5


def test_uuid7_strictly_increasing_within_a_millisecond() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_uuid7_unique_across_threads() -> None:
    out: list[list[str]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        out[i].extend(uuid7() for _ in range(5_000))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [v for chunk in out for v in chunk]
    assert len(set(flat)) == len(flat)
    for chunk in out:
        assert chunk == sorted(chunk)


def test_now_ms_is_epoch_milliseconds() -> None:
    value = now_ms()
    assert isinstance(value, int)
    assert 1_700_000_000_000 < value < 4_000_000_000_000
