"""Benchmark: our registry-backed Avro codec against raw schemaless fastavro, in the same run.

Both sides encode and decode the same ~50k RobotTelemetry records with the same parsed schema
(logical types stripped, as the codec does); the codec adds the Confluent framing (5-byte header,
schema-id lookup from its cache, trailing-bytes check). Registry calls happen once, before timing.
Goal: codec >= 80% of raw fastavro.
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from schemas.avsc import load_schema, parse_plain
from schemas.catalog import subject_name
from schemas.codec import AvroCodec
from schemas.ids import uuid7
from schemas.registry import RegistryClient

__all__ = ["make_records", "run"]

DEFAULT_REGISTRY_URL = "http://127.0.0.1:18081/apis/ccompat/v7"
RECORDS = 50_000
ROUNDS = 3
CHUNK = 2_000
GOAL = 0.8


def make_records(count: int = RECORDS, seed: int = 7) -> list[dict[str, Any]]:
    """Realistic RobotTelemetry dicts: 200 robots, a pose, a 3-waypoint route, some optional fields set."""
    rng = random.Random(seed)
    base = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    modes = ["IDLE", "MOVING", "WORKING", "CHARGING"]
    out = []
    for i in range(count):
        robot = i % 200
        moving = rng.random() < 0.6
        out.append(
            {
                "event_id": uuid7(),
                "tenant_id": "tenant-a",
                "site_id": f"site-{robot % 4}",
                "occurred_at": base + i * 10,
                "robot_id": f"robot-{robot:04d}",
                "fleet_id": f"fleet-{robot % 3}",
                "seq": i // 200 + 1,
                "pose": {
                    "x": rng.uniform(0, 120),
                    "y": rng.uniform(0, 80),
                    "yaw": rng.uniform(-3.14, 3.14),
                    "node_id": f"n{rng.randrange(500)}" if not moving else None,
                    "map_name": "L1",
                },
                "battery": rng.uniform(0.05, 1.0),
                "speed": rng.uniform(0.2, 1.5) if moving else 0.0,
                "mode": "MOVING" if moving else rng.choice(modes),
                "error_code": None,
                "task_id": f"task-{rng.randrange(10_000)}" if moving else None,
                "task_phase": "IN_PROGRESS" if moving else "NONE",
                "route": [
                    {"node_id": f"n{rng.randrange(500)}", "eta": base + i * 10 + k * 4000} for k in range(3)
                ]
                if moving
                else [],
            }
        )
    return out


def _paired(
    baseline: Callable[[int, int], object], candidate: Callable[[int, int], object], count: int
) -> tuple[float, float]:
    """records/s of ``baseline`` and ``candidate``, timed in alternating chunks.

    Alternating small chunks (instead of one long run each) lets both sides see the same machine
    load; of ``ROUNDS`` rounds the least disturbed one (smallest total time) is reported, both
    figures from that same round so that their ratio is a like-for-like comparison.
    """
    rounds = []
    for _ in range(ROUNDS):
        base_total = cand_total = 0.0
        for lo in range(0, count, CHUNK):
            hi = min(lo + CHUNK, count)
            start = time.perf_counter()
            baseline(lo, hi)
            middle = time.perf_counter()
            candidate(lo, hi)
            cand_total += time.perf_counter() - middle
            base_total += middle - start
        rounds.append((base_total + cand_total, base_total, cand_total))
    _, base_best, cand_best = min(rounds)
    return count / base_best, count / cand_best


def run(settings_env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Run the benchmark; returns result rows (name, value, unit, baseline, ratio, goal)."""
    env = {**os.environ, **(settings_env or {})}
    registry = RegistryClient(
        env.get("FLEET_SCHEMA_REGISTRY_URL", DEFAULT_REGISTRY_URL),
        username=env.get("FLEET_SCHEMA_REGISTRY_USERNAME") or None,
        password=env.get("FLEET_SCHEMA_REGISTRY_PASSWORD") or None,
        ca_location=env.get("FLEET_SCHEMA_REGISTRY_CA_LOCATION") or None,
    )
    subject = subject_name(f"{env.get('FLEET_TOPIC_PREFIX', '')}bench.robot.telemetry")
    codec = AvroCodec(registry, subject, load_schema("RobotTelemetry"))
    codec.prepare()  # registry call happens here, not in the timed loops
    parsed = parse_plain(load_schema("RobotTelemetry"))
    records = make_records()
    count = len(records)

    raw_payloads = []
    for record in records:
        buf = BytesIO()
        schemaless_writer(buf, parsed, record)
        raw_payloads.append(buf.getvalue())
    framed = [codec.encode(r) for r in records]
    codec.decode(framed[0])  # warm the id -> schema cache
    encode = codec.encode
    decode = codec.decode

    def raw_encode(lo: int, hi: int) -> None:
        for record in records[lo:hi]:
            buf = BytesIO()
            schemaless_writer(buf, parsed, record)
            buf.getvalue()

    def codec_encode(lo: int, hi: int) -> None:
        for record in records[lo:hi]:
            encode(record)

    def raw_decode(lo: int, hi: int) -> None:
        for payload in raw_payloads[lo:hi]:
            schemaless_reader(BytesIO(payload), parsed)

    def codec_decode(lo: int, hi: int) -> None:
        for data in framed[lo:hi]:
            decode(data)

    raw_enc, codec_enc = _paired(raw_encode, codec_encode, count)
    raw_dec, codec_dec = _paired(raw_decode, codec_decode, count)
    registry.close()
    return [
        _row("codec.encode", codec_enc, raw_enc),
        _row("codec.decode", codec_dec, raw_dec),
    ]


def _row(name: str, value: float, baseline: float) -> dict[str, Any]:
    return {
        "name": name,
        "value": round(value),
        "unit": "records/s",
        "baseline": round(baseline),
        "ratio": round(value / baseline, 3),
        "goal": f">= {GOAL}",
    }


if __name__ == "__main__":
    for row in run():
        sys.stdout.write(
            f"{row['name']:<14} {row['value']:>9,} {row['unit']}  raw fastavro {row['baseline']:>9,}  "
            f"ratio {row['ratio']:.3f} (goal {row['goal']})\n"
        )
