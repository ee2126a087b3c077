"""The topology kernel on Quix's memory and RocksDB stores: buffered writes, dropped on a raise; the model
cache and its generation token; kinds tagged at wiring; events made with the record's headers; misplaced
records forwarded; the inbox envelope."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import copy_context
from typing import Any

import pytest
from quixstreams.context import set_message_context
from quixstreams.models import MessageContext

from schemas.errors import RecordError, RejectedRecord
from topologies import timers
from topologies.kernel import (
    GENERATION,
    Envelope,
    HomePartition,
    KeyState,
    ModelCache,
    Output,
    StepAdapter,
    decode_envelope,
    encode_envelope,
    murmur2_partition,
)
from topologies.kernel.testing import StepHarness

Harness = Callable[[Any], StepHarness]


def counter(state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
    """Counts inputs per key in sub-key ``n`` and keeps the last kind; ``boom`` raises after writing."""
    n = state.get("n", 0) + 1
    state.set("n", n)
    state.set("last", {"kind": kind, "at": now_ms})
    if kind == "boom":
        raise RejectedRecord("boom")
    if kind == "forget":
        state.delete("last")
    return [Output("out", state.key, {"n": n})]


def test_writes_reach_the_store_when_the_step_returns(harness: Harness) -> None:
    h = harness(counter)
    assert h.send("a", "k1", None, 5) == [Output("out", "k1", {"n": 1})]
    assert h.send("a", "k1", None, 6)[0].value == {"n": 2}
    assert h.send("a", "k2", None, 7)[0].value == {"n": 1}
    h.checkpoint()
    assert (h.stored("k1", "n"), h.stored("k1", "last")) == (2, {"kind": "a", "at": 6})


def test_a_step_that_raises_leaves_no_write_behind(harness: Harness) -> None:
    h = harness(counter)
    h.send("a", "k1", None, 5)
    with pytest.raises(RejectedRecord):
        h.send("boom", "k1", None, 6)
    h.checkpoint()
    assert (h.stored("k1", "n"), h.stored("k1", "last")) == (1, {"kind": "a", "at": 5})


def test_deletes_and_reads_of_own_writes(harness: Harness) -> None:
    h = harness(counter)
    h.send("a", "k1", None, 5)
    h.send("forget", "k1", None, 6)
    h.checkpoint()
    assert h.stored("k1", "last") is None and h.stored("k1", "n") == 2

    state = KeyState(h.state("k1"), "k1")
    state.set("x", [1])
    state.delete("n")
    assert (state.get("x"), state.get("n", "gone"), state.exists("n"), state.exists("x")) == (
        [1],
        "gone",
        False,
        True,
    )
    assert h.state("k1").get("n") == 2  # nothing reached the store yet
    state.discard()
    assert h.state("k1").get("x") is None


class Site:
    """A model derived from sub-keys: the set of members (``member:<id>``) and an index."""

    def __init__(self, members: dict[str, Any]) -> None:
        self.members = members


def load_site(state: KeyState) -> Site:
    return Site({m: state.get(f"member:{m}") for m in state.get("index", [])})


def site_step(cache: ModelCache[Site]) -> Callable[..., list[Output]]:
    def step(state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        site = cache.get(state)
        if kind == "join":
            site.members[event] = {"at": now_ms}
            state.set(f"member:{event}", site.members[event])
            state.set("index", sorted(site.members))
        elif kind == "fail":
            site.members["half"] = {}  # the model changed in memory, then the step fails
            raise RuntimeError("a bug")
        return [Output("out", state.key, sorted(site.members))]

    return step


def test_the_model_cache_costs_one_read_per_update_and_rebuilds_on_a_foreign_token(harness: Harness) -> None:
    cache = ModelCache(load_site)
    h = harness(site_step(cache))
    for i, member in enumerate(("a", "b", "c")):
        h.send("join", "s1", member, i)
    assert cache.loads == 1  # built once, then kept with the token it wrote
    assert h.send("look", "s1", None, 9)[0].value == ["a", "b", "c"] and cache.loads == 1
    h.state("s1").set(GENERATION, "another instance wrote here")
    assert h.send("look", "s1", None, 10)[0].value == ["a", "b", "c"] and cache.loads == 2


def test_a_raising_step_drops_its_half_updated_model(harness: Harness) -> None:
    cache = ModelCache(load_site)
    h = harness(site_step(cache))
    h.send("join", "s1", "a", 1)
    with pytest.raises(RuntimeError):
        h.send("fail", "s1", None, 2)
    assert h.send("look", "s1", None, 3)[0].value == ["a"] and cache.loads == 2


def test_an_aborted_checkpoint_leaves_another_token_so_the_model_is_rebuilt(harness: Harness) -> None:
    cache = ModelCache(load_site)
    h = harness(site_step(cache))
    h.send("join", "s1", "a", 1)
    h.checkpoint()
    h.send("join", "s1", "b", 2)
    h.abort()  # "b" was never stored; the cache still has it
    assert h.send("look", "s1", None, 3)[0].value == ["a"] and cache.loads == 2


def test_a_restarted_process_carries_on_from_the_stored_state(harness: Harness) -> None:
    h = harness(site_step(ModelCache(load_site)))
    h.send("join", "s1", "a", 1)
    fresh = ModelCache(load_site)
    h.restart(site_step(fresh))
    assert h.send("join", "s1", "b", 2)[0].value == ["a", "b"] and fresh.loads == 1


def _in_record(topic: str, partition: int, call: Callable[[], Any]) -> Any:
    def run() -> Any:
        set_message_context(MessageContext(topic=topic, partition=partition, offset=0, size=0))
        return call()

    return copy_context().run(run)


def test_the_adapter_tags_kinds_by_topic_decodes_and_reads_envelopes(harness: Harness) -> None:
    seen: list[tuple[str, Any, int]] = []

    def step(state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        seen.append((kind, event, now_ms))
        return []

    h = harness(step)
    adapter = StepAdapter(
        step, kinds={"p.a": "alpha", "p.b": "beta"}, decoders={"alpha": bytes.decode, "beta": bytes.upper}
    )
    _in_record("p.a", 0, lambda: adapter(b"x", "k", 10, None, h.state("k")))
    _in_record("p.b", 0, lambda: adapter(b"y", "k", 11, None, h.state("k")))
    _in_record("p.inbox", 0, lambda: adapter(Envelope("beta", b"z"), "k", 12, None, h.state("k")))
    _in_record("p.inbox", 0, lambda: adapter(Envelope("dep", {"j": 1}), "k", 13, None, h.state("k")))
    assert seen == [("alpha", "x", 10), ("beta", b"Y", 11), ("beta", b"Z", 12), ("dep", {"j": 1}, 13)]
    with pytest.raises(RejectedRecord, match="without a key"):
        _in_record("p.a", 0, lambda: adapter(b"x", None, 14, None, h.state("k")))


def test_a_direct_input_with_a_header_decoder_gets_its_event_from_value_and_headers(harness: Harness) -> None:
    seen: list[tuple[str, Any, int]] = []

    def step(state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        seen.append((kind, event, now_ms))
        state.set("last", kind)
        return []

    def where(value: Any, headers: Any) -> Any:
        found = dict(headers or ()).get("where")
        if found == b"nowhere":
            raise RejectedRecord("nowhere")
        return (found, value)

    h = harness(step)
    adapter = StepAdapter(
        step,
        kinds={"p.a": "alpha", "p.b": "beta"},
        decoders={"beta": bytes.upper},
        header_decoders={"alpha": where},
    )
    _in_record("p.a", 0, lambda: adapter(b"x", "k", 10, [("where", b"here")], h.state("k")))
    _in_record("p.a", 0, lambda: adapter(None, "k", 11, None, h.state("k")))  # a tombstone without headers
    _in_record("p.b", 0, lambda: adapter(b"y", "k", 12, [("where", b"there")], h.state("k")))  # as before
    # an inbox record of that kind carries no headers: a wiring error, which stops the processor
    with pytest.raises(ValueError, match="through the inbox"):
        _in_record("p.inbox", 0, lambda: adapter(Envelope("alpha", b"z"), "k", 13, None, h.state("k")))
    _in_record("p.inbox", 0, lambda: adapter(Envelope("beta", b"z"), "k", 13, None, h.state("k")))
    assert seen == [
        ("alpha", (b"here", b"x"), 10),
        ("alpha", (None, None), 11),
        ("beta", b"Y", 12),
        ("beta", b"Z", 13),
    ]
    h.checkpoint()
    with pytest.raises(RejectedRecord, match="nowhere"):
        _in_record("p.a", 0, lambda: adapter(b"w", "k", 14, [("where", b"nowhere")], h.state("k")))
    with pytest.raises(RejectedRecord, match="without a key"):
        _in_record("p.a", 0, lambda: adapter(b"w", None, 15, [("where", b"here")], h.state("k")))
    assert len(seen) == 4 and h.stored("k", "last") == "beta"
    with pytest.raises(ValueError, match="headers"):  # a record forwarded through the inbox loses its headers
        StepAdapter(step, kinds={}, inbox="x.inbox", home=HomePartition(2), header_decoders={"alpha": where})


def test_a_record_on_another_partition_than_its_keys_goes_through_the_inbox(harness: Harness) -> None:
    applied: list[str] = []

    def step(state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        applied.append(state.key)
        return []

    h = harness(step)
    home = HomePartition(6)
    adapter = StepAdapter(step, kinds={"t": "telemetry"}, inbox="x.inbox", home=home)
    key = "robot-7"
    right, wrong = home(key), (home(key) + 1) % 6
    assert _in_record("t", right, lambda: adapter(b"v", key, 1, None, h.state(key))) == []
    forwarded = _in_record("t", wrong, lambda: adapter(b"v", key, 1, None, h.state(key)))
    assert forwarded == [Output("x.inbox", key, Envelope("telemetry", b"v"))] and applied == [key]
    # from the inbox (on the right partition by construction) it is applied
    _in_record("x.inbox", right, lambda: adapter(Envelope("telemetry", b"v"), key, 1, None, h.state(key)))
    assert applied == [key, key]


def test_murmur2_partitions_like_kafkas_default_partitioner() -> None:
    from aiokafka.partitioner import murmur2 as reference  # the Java client's algorithm, in aiokafka

    for key in ("r1", "robot-7", "a", "ab", "abc", "abcd", "ünïcode", "x" * 57):
        data = key.encode()
        assert murmur2_partition(data, 6) == (reference(data) & 0x7FFFFFFF) % 6, key
    assert murmur2_partition(b"r1", 6) == 2117483452 % 6


@pytest.mark.parametrize("payload", [b"\x00\x00\x00\x00\x01avro", {"type": "dep", "n": [1, 2]}, None, b""])
def test_envelopes_round_trip(payload: Any) -> None:
    envelope = Envelope("registration", payload)
    assert decode_envelope(encode_envelope(envelope)) == envelope
    assert bytes(envelope) == encode_envelope(envelope)


@pytest.mark.parametrize("data", [b"", b"\x00b", b"kind", b"kind\x00x123", b"kind\x00j{not json"])
def test_bytes_that_are_not_an_envelope_are_a_record_error(data: bytes) -> None:
    with pytest.raises(RecordError):
        decode_envelope(data)


def test_timers_arm_cancel_and_lazy_rearm() -> None:
    armed = timers.arm(
        owner="telemetry", timer_id="t:1", target_key="r1", due_at=2_000, at=1_000, tenant_id="acme",
        site_id=None, payload={"kind": "offline"},
    )  # fmt: skip
    assert (armed.topic, armed.key) == ("timers", "t:1")
    assert armed.value["owner"] == "telemetry" and armed.value["target_key"] == "r1"
    assert timers.payload_of(armed.value) == {"kind": "offline"}
    assert timers.is_armed(armed.value, 2_000) and not timers.is_armed(armed.value, 3_000)
    assert timers.cancel("t:1") == Output("timers", "t:1", None)
    assert timers.remaining_due(last_seen=1_500, timeout_ms=1_000, due_at=2_000) == 2_500
    assert timers.remaining_due(last_seen=1_000, timeout_ms=1_000, due_at=2_000) is None
    with pytest.raises(RejectedRecord):
        timers.payload_of({**armed.value, "payload_json": "[1]"})
