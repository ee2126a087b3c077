from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from io import BytesIO
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer

from pipelines.simulator import (
    FaultConfig,
    FaultInjector,
    FleetConfig,
    FleetSim,
    MalformedKind,
    malformed_payload,
)
from schemas.avsc import load_schema, parse_plain
from schemas.codec import frame_header, split_frame
from schemas.errors import SchemaDecodeError

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TICK = 500
TICKS = 400
ROBOTS = 5


def fleet_ticks(site_map: dict[str, Any]) -> list[tuple[int, list[dict[str, Any]]]]:
    sim = FleetSim(site_map, FleetConfig(robots=ROBOTS, seed=1), T0)
    return [(t, sim.step(t)) for t in (T0 + k * TICK for k in range(TICKS))]


@pytest.fixture(scope="module")
def ticks(site_map: dict[str, Any]) -> list[tuple[int, list[dict[str, Any]]]]:
    return fleet_ticks(site_map)


def inject(ticks, **kw: Any) -> tuple[FaultInjector, list]:
    inj = FaultInjector(FaultConfig(**kw), T0)
    out = [o for t, recs in ticks for o in inj.apply(recs, t)]
    out += inj.flush()
    return inj, out


def test_without_faults_everything_passes_in_order(ticks) -> None:
    inj, out = inject(ticks)
    assert [o.record for o in out] == [r for _, recs in ticks for r in recs]
    assert all(o.fault is None and o.key == o.record["robot_id"] for o in out)
    assert inj.stats.dropped == inj.stats.duplicates == inj.stats.reordered == inj.stats.malformed == 0


def test_duplicates_repeat_the_same_record_right_after_it(ticks) -> None:
    inj, out = inject(ticks, duplicate_prob=0.05, seed=3)
    dups = [i for i, o in enumerate(out) if o.fault == "duplicate"]
    assert len(dups) == inj.stats.duplicates
    assert 0.03 * TICKS * ROBOTS < len(dups) < 0.07 * TICKS * ROBOTS
    for i in dups:
        assert out[i].record is out[i - 1].record  # same seq, same event_id, same bytes once encoded
    per_key = Counter((o.record["robot_id"], o.record["seq"]) for o in out)
    assert sum(n - 1 for n in per_key.values()) == inj.stats.duplicates
    assert len(per_key) == TICKS * ROBOTS  # nothing lost


def test_reordering_swaps_a_record_with_the_robots_next_one(ticks) -> None:
    inj, out = inject(ticks, reorder_prob=0.05, seed=4)
    assert 0.03 * TICKS * ROBOTS < inj.stats.reordered < 0.07 * TICKS * ROBOTS
    seqs: dict[str, list[int]] = defaultdict(list)
    for o in out:
        seqs[o.key].append(o.record["seq"])
    decreases = sum(1 for s in seqs.values() for x, y in itertools.pairwise(s) if y < x)
    assert decreases == inj.stats.reordered
    assert all(sorted(s) == list(range(min(s), min(s) + len(s))) for s in seqs.values())
    assert sum(len(s) for s in seqs.values()) == TICKS * ROBOTS  # nothing lost or repeated
    assert all(abs(x - y) == 1 for s in seqs.values() for x, y in itertools.pairwise(s) if y < x)


def test_drop_outs_silence_a_robot_for_the_configured_time(ticks) -> None:
    inj, out = inject(ticks, drop_prob=0.005, dropout_ms=5000, seed=5)
    assert inj.stats.dropouts >= 2
    assert sum(1 for _ in out) == TICKS * ROBOTS - inj.stats.dropped
    last_tick = ticks[-1][0]
    silences = missing = 0
    for robot in {o.key for o in out}:
        times = [o.record["occurred_at"] for o in out if o.key == robot]
        gaps = [b - a for a, b in itertools.pairwise(times) if b - a != TICK]
        assert all(g == 5000 + TICK for g in gaps)  # silent for exactly 5 s = 10 records at 2 Hz
        silences += len(gaps)
        missing += 10 * len(gaps)
        tail = (last_tick - times[-1]) // TICK  # a silence still running when the run ends
        assert tail <= 10
        silences += tail > 0
        missing += tail
        head = (times[0] - ticks[0][0]) // TICK  # a silence from the first tick on
        silences += head > 0
        missing += head
    assert (silences, missing) == (inj.stats.dropouts, inj.stats.dropped)


def test_exactly_n_malformed_payloads_spread_over_the_window(ticks) -> None:
    inj, out = inject(ticks, malformed=7, malformed_window_ms=60_000, seed=6)
    bad = [o for o in out if o.fault == "malformed"]
    assert len(bad) == inj.stats.malformed == 7
    assert inj.malformed_pending == 0
    assert all(o.malformed in set(MalformedKind) for o in bad)
    assert sum(inj.stats.malformed_by_kind.values()) == 7
    valid = [o for o in out if o.fault != "malformed"]
    assert len(valid) == TICKS * ROBOTS


def test_malformed_payloads_still_to_come_are_sent_by_flush(ticks) -> None:
    inj = FaultInjector(FaultConfig(malformed=5, malformed_window_ms=3_600_000, seed=1), T0)
    during = [o for t, recs in ticks[:20] for o in inj.apply(recs, t)]
    tail = inj.flush()
    bad = [o for o in [*during, *tail] if o.fault == "malformed"]
    assert len(bad) == 5 and inj.stats.malformed == 5


def test_the_same_seed_injects_the_same_faults(ticks) -> None:
    kw = {"drop_prob": 0.01, "duplicate_prob": 0.02, "reorder_prob": 0.02, "malformed": 3, "seed": 9}
    _, a = inject(ticks, **kw)
    _, b = inject(ticks, **kw)
    assert a == b
    _, c = inject(ticks, **{**kw, "seed": 10})
    assert a != c


def test_probabilities_are_validated() -> None:
    with pytest.raises(ValueError, match="drop_prob"):
        FaultConfig(drop_prob=1.5)
    with pytest.raises(ValueError, match="malformed"):
        FaultConfig(malformed=-1)


@pytest.mark.parametrize("kind", list(MalformedKind))
def test_malformed_payloads_are_not_valid_avro_frames(kind: MalformedKind, ticks) -> None:
    record = ticks[10][1][0]
    schema = parse_plain(load_schema("RobotTelemetry"))
    buf = BytesIO()
    schemaless_writer(buf, schema, record)
    valid = frame_header(42) + buf.getvalue()
    payload = malformed_payload(kind, valid, record)
    assert payload != valid
    if kind in (MalformedKind.JSON, MalformedKind.BAD_MAGIC):
        with pytest.raises(SchemaDecodeError):
            split_frame(payload)
    elif kind is MalformedKind.UNKNOWN_SCHEMA_ID:
        schema_id, body = split_frame(payload)
        assert schema_id != 42 and bytes(body) == valid[5:]  # resolved against the registry: unknown there
    else:
        schema_id, body = split_frame(payload)
        assert schema_id == 42
        with pytest.raises(Exception):  # noqa: B017 - fastavro raises EOFError or a struct/Unicode error
            schemaless_reader(BytesIO(bytes(body)), schema)
