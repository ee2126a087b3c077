"""The sinks' half of the verdict: what Postgres, InfluxDB and Redis hold against what the topics hold.

- Postgres (the drill's own schema): every event table holds exactly the distinct event ids of its
  topic, less what ``sink-postgres`` dead-lettered; ``robots`` and ``tasks`` hold each robot's and
  task's latest record (the sink's own ordering: status by event time then id, task by seq).
- InfluxDB (the drill's own database): one raw point per accepted telemetry record (measurement, tags
  and time identify a point) and one point per 1-minute aggregate window.
- Redis: every robot's key holds its latest status (highest seq, then latest event time), every task's
  key its latest transition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import psycopg
import redis

from pipelines.drill.reader import Record
from pipelines.drill.verify import Check, Evidence

__all__ = ["StoreConfig", "store_checks"]

logger = logging.getLogger(__name__)

#: Postgres event tables and the topic each holds.
EVENT_TABLES = {
    "task_events": "task.events",
    "decisions": "scheduler.decisions",
    "conflicts": "traffic.conflicts",
    "alerts": "alerts",
}


@dataclass(frozen=True)
class StoreConfig:
    tenant_id: str
    postgres_dsn: str
    postgres_schema: str
    redis_url: str
    influx_url: str
    influx_database: str
    influx_raw_rp: str = "telemetry_7d"
    influx_aggregate_rp: str = "telemetry_1m_90d"


def _dead(evidence: Evidence, processor: str) -> set[tuple[str, int, int]]:
    out = set()
    for rec in evidence[f"dlq.{processor}"]:
        topic, partition, offset = (rec.header(f"fleet-dlq-{h}") for h in ("topic", "partition", "offset"))
        out.add((topic or "", int(partition or -1), int(offset or -1)))
    return out


def _live(records: list[Record], dead: set[tuple[str, int, int]]) -> list[Record]:
    return [r for r in records if r.value is not None and (r.topic, r.partition, r.offset) not in dead]


def _set_check(name: str, want: set[str], have: set[str], unit: str) -> Check:
    missing, extra = want - have, have - want
    if missing or extra:
        return Check(
            name,
            False,
            f"{len(have)} {unit} for {len(want)} expected: {len(missing)} missing (e.g. {sorted(missing)[:3]}), "
            f"{len(extra)} extra (e.g. {sorted(extra)[:3]})",
        )
    return Check(name, True, f"{len(have)} {unit} = {len(want)} distinct event ids")


def latest_status_by_time(statuses: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per robot, the status the Postgres sink keeps: the latest event time, then the largest event id."""
    out: dict[str, dict[str, Any]] = {}
    for s in statuses:
        cur = out.get(s["robot_id"])
        if cur is None or (s["occurred_at"], s["event_id"]) > (cur["occurred_at"], cur["event_id"]):
            out[s["robot_id"]] = s
    return out


def latest_status_by_seq(statuses: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per robot, the status the Redis sink keeps: the highest seq, then the latest event time."""
    out: dict[str, dict[str, Any]] = {}
    for s in statuses:
        cur = out.get(s["robot_id"])
        if cur is None or (s["seq"], s["occurred_at"]) > (cur["seq"], cur["occurred_at"]):
            out[s["robot_id"]] = s
    return out


def latest_transitions(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("kind", "TRANSITION") != "TRANSITION":
            continue
        cur = out.get(e["task_id"])
        if cur is None or e["seq"] > cur["seq"]:
            out[e["task_id"]] = e
    return out


def postgres_checks(evidence: Evidence, cfg: StoreConfig) -> list[Check]:
    dead = _dead(evidence, "sink-postgres")
    checks = []
    with psycopg.connect(cfg.postgres_dsn, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{cfg.postgres_schema}"')
        for table, topic in EVENT_TABLES.items():
            want = {r.value["event_id"] for r in _live(evidence[topic], dead)}
            have = {row[0] for row in conn.execute(f"SELECT event_id FROM {table}").fetchall()}
            checks.append(_set_check(f"postgres {table} = {topic}", want, have, "rows"))
        statuses = [r.value for r in _live(evidence["robot.status"], dead)]
        want_robots = {rid: s["event_id"] for rid, s in latest_status_by_time(statuses).items()}
        have_robots: dict[str, Any] = dict(
            conn.execute(
                "SELECT robot_id, status_event_id FROM robots WHERE status_event_id IS NOT NULL"
            ).fetchall()
        )
        checks.append(_latest_check("postgres robots = latest robot.status", want_robots, have_robots))
        events = [r.value for r in _live(evidence["task.events"], dead)]
        want_tasks = {tid: e["event_id"] for tid, e in latest_transitions(events).items()}
        have_tasks: dict[str, Any] = dict(conn.execute("SELECT task_id, last_event_id FROM tasks").fetchall())
        checks.append(_latest_check("postgres tasks = latest task.events transition", want_tasks, have_tasks))
        maps = {(m["tenant_id"], m["site_id"], m["version"]) for m in evidence.values("site.maps")}
        have_maps = set(conn.execute("SELECT tenant_id, site_id, version FROM site_maps").fetchall())
        checks.append(
            Check(
                "postgres site_maps = site.maps",
                maps == have_maps,
                f"{len(have_maps)} rows, {len(maps)} maps",
            )
        )
    return checks


def _latest_check(name: str, want: dict[str, Any], have: dict[str, Any]) -> Check:
    wrong = [k for k in want if have.get(k) != want[k]]
    extra = [k for k in have if k not in want]
    if wrong or extra:
        sample = [f"{k}: {have.get(k)} instead of {want[k]}" for k in wrong[:3]]
        return Check(
            name, False, f"{len(wrong)} of {len(want)} wrong, {len(extra)} unexpected: {sample} {extra[:3]}"
        )
    return Check(name, True, f"{len(want)} keys, each at its latest record")


def _influx_count(cfg: StoreConfig, rp: str, measurement: str, field: str) -> int:
    query = f'SELECT count("{field}") FROM "{rp}"."{measurement}" WHERE "tenant" = \'{cfg.tenant_id}\''
    resp = httpx.get(f"{cfg.influx_url}/query", params={"db": cfg.influx_database, "q": query}, timeout=30)
    resp.raise_for_status()
    results = resp.json().get("results", [{}])
    series = results[0].get("series") or []
    return int(series[0]["values"][0][1]) if series else 0


def influx_checks(evidence: Evidence, cfg: StoreConfig) -> list[Check]:
    dead = _dead(evidence, "sink-influx")
    # The InfluxDB sink reads robot.telemetry.accepted once the telemetry topology writes it; until then
    # (the topic empty while telemetry flows) it reads raw robot.telemetry.
    source = "robot.telemetry.accepted" if evidence["robot.telemetry.accepted"] else "robot.telemetry"
    raw = {
        (v["tenant_id"], v["site_id"], v["robot_id"], v["fleet_id"], v["occurred_at"])
        for v in (r.value for r in _live(evidence[source], dead | _dead(evidence, "telemetry")))
    }
    aggregates = {
        (v["tenant_id"], v["site_id"], v["robot_id"], v["fleet_id"], v["window_start"])
        for v in (r.value for r in _live(evidence["robot.telemetry.1m"], dead))
    }
    points = _influx_count(cfg, cfg.influx_raw_rp, "robot_telemetry", "seq")
    windows = _influx_count(cfg, cfg.influx_aggregate_rp, "robot_telemetry_1m", "count")
    return [
        Check(
            f"influxdb points = {source}", points == len(raw), f"{points} points, {len(raw)} distinct records"
        ),
        Check(
            "influxdb 1m points = robot.telemetry.1m",
            windows == len(aggregates),
            f"{windows} points, {len(aggregates)} distinct windows",
        ),
    ]


def redis_checks(evidence: Evidence, cfg: StoreConfig) -> list[Check]:
    dead = _dead(evidence, "sink-redis")
    client = redis.Redis.from_url(cfg.redis_url)
    try:
        statuses = [r.value for r in _live(evidence["robot.status"], dead)]
        want = latest_status_by_seq(statuses)
        keys = [f"fleet:{cfg.tenant_id}:robot:{rid}" for rid in want]
        got = client.mget(keys) if keys else []
        have = {
            rid: orjson.loads(raw)["event_id"] if raw else None for rid, raw in zip(want, got, strict=True)
        }
        robots = _latest_check(
            "redis robots = latest robot.status", {k: v["event_id"] for k, v in want.items()}, have
        )
        events = [r.value for r in _live(evidence["task.events"], dead)]
        tasks = latest_transitions(events)
        task_keys = [f"fleet:{cfg.tenant_id}:task:{tid}" for tid in tasks]
        views = client.mget(task_keys) if task_keys else []
        have_seq = {
            tid: orjson.loads(raw)["seq"] if raw else None for tid, raw in zip(tasks, views, strict=True)
        }
        task_check = _latest_check(
            "redis tasks = latest task.events transition", {k: v["seq"] for k, v in tasks.items()}, have_seq
        )
    finally:
        client.close()
    return [robots, task_check]


def store_checks(evidence: Evidence, cfg: StoreConfig) -> list[Check]:
    checks: list[Check] = []
    for name, fn in (("postgres", postgres_checks), ("influxdb", influx_checks), ("redis", redis_checks)):
        try:
            checks += fn(evidence, cfg)
        except Exception as exc:
            logger.exception("%s checks failed to run", name)
            checks.append(Check(f"{name}: readable", False, f"{type(exc).__name__}: {exc}"))
    return checks
