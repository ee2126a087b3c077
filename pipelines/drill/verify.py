"""The verifier: reads back every topic of a drill and checks that nothing was lost or duplicated.

It prints one line per check (``PASS``/``FAIL``, the check, its figures) in the manner of Kafka's own
system tests. The topology checks are here; the sinks' are in :mod:`pipelines.drill.stores`.

- every output topic of a topology: no event id twice;
- ``task.events``: per task, the sequence numbers are 1..n in order; ``robot.status``: per robot,
  the sequence numbers never go back;
- the oracle (:mod:`pipelines.drill.oracle`): the telemetry and tasks outputs equal their kernel steps
  run over the same inputs, key by key and in order, and each inbox holds exactly the feeds' messages
  plus the step's own, each once;
- dead letters: none (nothing our producers write may be dead-lettered), and every record the oracle
  rejects is in the DLQ;
- the load's own producers wrote no record twice (their idempotence under broker failover).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from pipelines.drill.oracle import (
    TASKS_INBOX,
    TASKS_KINDS,
    TELEMETRY_INBOX,
    TELEMETRY_KINDS,
    inbox_entry,
    tasks_oracle,
    telemetry_oracle,
)
from pipelines.drill.reader import Record, TopicReader
from schemas.catalog import CATALOG, DLQ_PROCESSORS
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from topologies.kernel import Envelope, decode_envelope

__all__ = ["Check", "Evidence", "first_writes", "load_evidence", "topology_checks"]

logger = logging.getLogger(__name__)

#: The inboxes the oracle checks, and where a forwarded record of each kind comes from.
INBOXES = {TELEMETRY_INBOX: {kind: name for name, kind in TELEMETRY_KINDS.items()}, TASKS_INBOX: {}}
#: Outputs of the topologies, written exactly once (transactions).
TOPOLOGY_OUTPUTS = (
    "robot.status",
    "alerts",
    "robot.telemetry.1m",
    "timers",
    "task.events",
    "scheduler.decisions",
    "traffic.conflicts",
)
#: What the drill's load writes (simulators, schedules).
LOAD_TOPICS = ("robot.telemetry", "robot.registry", "site.maps", "task.commands", "task.schedules")
#: Written at least once by design: the timer service fires a due timer again after a restart.
AT_LEAST_ONCE = ("timers.due.telemetry", "timers.due.tasks", "timers.due.traffic")
#: Topology outputs produced at least once beside the transaction, for idempotent sinks only
#: (pipelines/sideoutput.py): a processor that stops between a checkpoint's side flush and its commit
#: writes the records since its last commit again. The oracle compares their first writes.
SIDE_OUTPUTS = ("robot.telemetry.accepted",)


@dataclass
class Check:
    """One line of the verdict. A ``warn_only`` check that does not hold prints WARN and does not fail the
    drill: it reports something to fix that costs no record (e.g. a process that had to be restarted)."""

    name: str
    ok: bool
    detail: str
    warn_only: bool = False

    @property
    def failed(self) -> bool:
        return not self.ok and not self.warn_only

    def line(self) -> str:
        status = "PASS" if self.ok else ("WARN" if self.warn_only else "FAIL")
        return f"{status}  {self.name}: {self.detail}"


@dataclass
class Evidence:
    """Every record of the drill's topics (catalog name -> records), as read_committed readers see them."""

    prefix: str
    topics: dict[str, list[Record]] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> list[Record]:
        return self.topics.get(name, [])

    def values(self, name: str) -> list[dict[str, Any]]:
        return [r.value for r in self[name] if r.value is not None]

    def counts(self) -> dict[str, int]:
        return {name: len(recs) for name, recs in sorted(self.topics.items()) if recs}


def load_evidence(kafka_config: dict[str, Any], registry_config: dict[str, Any], prefix: str) -> Evidence:
    """Read every catalog topic of the drill to its end; inbox values as :class:`Envelope`, a forwarded
    record's payload decoded by the codec of the topic it came from."""
    reader = TopicReader(kafka_config)
    registry = RegistryClient(**registry_config)
    evidence = Evidence(prefix)
    decoders: dict[str, Callable[[bytes], Any]] = {}
    try:
        for spec in CATALOG:
            decode: Callable[[bytes], Any]
            if spec.value == "bytes":
                decode = bytes
            elif spec.value == "json":
                decode = orjson.loads
            else:
                decode = AvroCodec.for_topic(registry, spec.base_name, prefix, auto_register=False).decode
            decoders[spec.base_name] = decode
        for spec in CATALOG:
            decode = decoders[spec.base_name]
            if spec.base_name in INBOXES:
                sources = {kind: decoders[name] for kind, name in INBOXES[spec.base_name].items()}
                decode = _envelopes(sources)
            evidence.topics[spec.base_name] = reader.read(f"{prefix}{spec.base_name}", decode)
            evidence.partitions[spec.base_name] = len(reader.partitions(f"{prefix}{spec.base_name}"))
    finally:
        registry.close()
    return evidence


def _envelopes(sources: dict[str, Callable[[bytes], Any]]) -> Callable[[bytes], Envelope]:
    def decode(data: bytes) -> Envelope:
        envelope = decode_envelope(data)
        payload = envelope.payload
        if isinstance(payload, bytes) and envelope.kind in sources:
            return Envelope(envelope.kind, sources[envelope.kind](payload))
        return envelope

    return decode


def _per_key(records: Iterable[Record], key: Callable[[Record], str]) -> dict[str, list[Record]]:
    out: dict[str, list[Record]] = defaultdict(list)
    for rec in records:
        out[key(rec)].append(rec)
    return out


def _where(rec: Record) -> str:
    return f"{rec.topic}[{rec.partition}]@{rec.offset}"


def unique_ids(evidence: Evidence, topic: str, *, what: str = "") -> Check:
    seen: dict[str, Record] = {}
    dups: list[str] = []
    values = 0
    for rec in evidence[topic]:
        if rec.value is None:
            continue
        values += 1
        event_id = rec.value.get("event_id")
        if event_id in seen:
            dups.append(f"{event_id} at {_where(seen[event_id])} and {_where(rec)}")
        else:
            seen[event_id] = rec
    name = f"{topic}: no event id twice{what}"
    if dups:
        return Check(name, False, f"{len(dups)} duplicates in {values} records, e.g. {dups[:3]}")
    return Check(name, True, f"{values} records, 0 duplicates")


def task_sequences(evidence: Evidence) -> Check:
    bad = []
    tasks = _per_key(evidence["task.events"], lambda r: r.key or "")
    for task_id, recs in tasks.items():
        seqs = [r.value["seq"] for r in recs if r.value is not None]
        if seqs != list(range(1, len(seqs) + 1)):
            bad.append(f"{task_id}: {seqs[:12]}{'...' if len(seqs) > 12 else ''} ({_where(recs[0])}..)")
    detail = f"{len(tasks)} tasks, {sum(len(v) for v in tasks.values())} events"
    if bad:
        return Check(
            "task.events: per-task seq gapless from 1", False, f"{len(bad)} of {detail} broken: {bad[:3]}"
        )
    return Check("task.events: per-task seq gapless from 1", True, detail)


def status_sequences(evidence: Evidence) -> Check:
    bad = []
    robots = _per_key(evidence["robot.status"], lambda r: r.key or "")
    for robot_id, recs in robots.items():
        seqs = [r.value["seq"] for r in recs if r.value is not None]
        back = [(a, b, _where(r)) for a, b, r in zip(seqs, seqs[1:], recs[1:], strict=False) if b < a]
        if back:
            bad.append(f"{robot_id}: seq {back[0][0]} then {back[0][1]} at {back[0][2]}")
    detail = f"{len(robots)} robots, {len(evidence['robot.status'])} statuses"
    if bad:
        return Check("robot.status: per-robot seq monotonic", False, f"{len(bad)} robots go back: {bad[:3]}")
    return Check("robot.status: per-robot seq monotonic", True, detail)


#: The alerts the telemetry topology raises (traffic raises CONFLICT_UNRESOLVED on the same topic and keys).
TELEMETRY_ALERTS = frozenset({"ROBOT_OFFLINE", "ROBOT_ONLINE", "BATTERY_LOW", "BATTERY_OK"})


def _actual(
    evidence: Evidence, topic: str, only: Callable[[dict[str, Any]], bool] | None = None
) -> dict[str, list[str | None]]:
    out: dict[str, list[str | None]] = defaultdict(list)
    for rec in evidence[topic]:
        if rec.value is not None and only is not None and not only(rec.value):
            continue
        out[rec.key or ""].append(rec.value.get("event_id") if rec.value is not None else None)
    return out


def first_writes(actual: dict[str, list[str | None]]) -> int:
    """Keep, per key, the first write of each event id (in place); returns how many writes were repeats."""
    repeats = 0
    for key, ids in actual.items():
        seen: set[str | None] = set()
        first = []
        for event_id in ids:
            if event_id not in seen:
                seen.add(event_id)
                first.append(event_id)
        repeats += len(ids) - len(first)
        actual[key] = first
    return repeats


def _compare(name: str, expected: dict[str, list[str | None]], actual: dict[str, list[str | None]]) -> Check:
    keys = set(expected) | set(actual)
    diffs = []
    for key in sorted(keys):
        want, got = expected.get(key, []), actual.get(key, [])
        if want != got:
            at = next(
                (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
                min(len(want), len(got)),
            )
            diffs.append(
                f"{key}: {len(want)} expected, {len(got)} written; first difference at #{at}: "
                f"expected {want[at] if at < len(want) else '(nothing)'}, written {got[at] if at < len(got) else '(nothing)'}"
            )
    total = sum(len(v) for v in expected.values())
    if diffs:
        return Check(name, False, f"{len(diffs)} of {len(keys)} keys differ: {diffs[:3]}")
    return Check(name, True, f"{total} records over {len(keys)} keys, equal in order")


def _dlq_coordinates(evidence: Evidence, processor: str) -> dict[tuple[str, int, int], str]:
    out = {}
    for rec in evidence[f"dlq.{processor}"]:
        topic, partition, offset = (rec.header(f"fleet-dlq-{h}") for h in ("topic", "partition", "offset"))
        out[(topic or "", int(partition or -1), int(offset or -1))] = rec.header("fleet-dlq-error") or ""
    return out


def oracle_checks(evidence: Evidence) -> list[Check]:
    """The telemetry and tasks outputs against their kernel steps over the same inputs."""
    telemetry_out = ("robot.status", "alerts", "robot.telemetry.1m", "robot.telemetry.accepted", "timers")
    actual = {t: _actual(evidence, t) for t in telemetry_out if t in evidence.topics}
    rewritten = {t: first_writes(actual[t]) for t in SIDE_OUTPUTS if t in actual}
    actual["alerts"] = _actual(evidence, "alerts", lambda v: v.get("kind") in TELEMETRY_ALERTS)
    telemetry, verdicts = telemetry_oracle(
        {name: evidence[name] for name in TELEMETRY_KINDS},
        evidence[TELEMETRY_INBOX],
        evidence["site.maps"],
        actual,
        partitions=evidence.partitions.get("robot.telemetry") or 1,
    )
    tasks = tasks_oracle({name: evidence[name] for name in TASKS_KINDS}, evidence[TASKS_INBOX])
    checks = []
    failed = [v for v in verdicts if not v.ok]
    name = "oracle telemetry: every output the step's output for its inputs, in order"
    emitted = sum(len(v.emitted) for v in verdicts)
    reordered = sum(v.reordered for v in verdicts)
    if failed:
        detail = "; ".join(f"{v.key}: {v.detail}" for v in failed[:3])
        checks.append(Check(name, False, f"{len(failed)} of {len(verdicts)} keys unexplained: {detail}"))
    else:
        checks.append(
            Check(
                name,
                True,
                f"{emitted} records over {len(verdicts)} keys (robots and sites); {reordered} inputs applied "
                "out of timestamp order (same-moment inputs of different topics)",
            )
        )
    for topic in sorted(actual):
        check = _compare(
            f"oracle telemetry -> {topic}",
            telemetry.outputs.get(topic, {}),
            _robot_keys(actual[topic], topic),
        )
        if topic in rewritten:
            check.detail += f" (first writes; {rewritten[topic]} written again after restarts, at least once)"
        checks.append(check)
    checks.append(
        _compare(
            "oracle tasks -> task.events",
            tasks.outputs.get("task.events", {}),
            _actual(evidence, "task.events"),
        )
    )
    # The timers topic is shared: telemetry's keys start "telemetry:", traffic's planning ticks "traffic:"
    # (traffic has no oracle here; its outputs are checked for duplicates), the rest are tasks'.
    task_timers = {
        k: v for k, v in _actual(evidence, "timers").items() if not k.startswith(("telemetry:", "traffic:"))
    }
    checks.append(_compare("oracle tasks -> timers", tasks.outputs.get("timers", {}), task_timers))
    for processor, inbox, expected in (
        ("telemetry", TELEMETRY_INBOX, telemetry),
        ("tasks", TASKS_INBOX, tasks),
    ):
        checks.append(_inbox_check(processor, evidence[inbox], expected.inbox))
    for processor, expected in (("telemetry", telemetry), ("tasks", tasks)):
        dead = _dlq_coordinates(evidence, processor)
        want_dead = {(t, p, o) for t, p, o, _reason in expected.rejected}
        name = f"oracle {processor}: rejected records are the dead letters"
        ok = want_dead == set(dead)
        checks.append(
            Check(name, ok, f"{len(want_dead)} rejected by the steps, {len(dead)} in dlq.{processor}")
        )
    return checks


def _inbox_check(processor: str, records: list[Record], expected: dict[bytes, int]) -> Check:
    written = Counter(inbox_entry(r.key or "", r.value) for r in records if isinstance(r.value, Envelope))
    want = Counter(expected)
    missing, extra = want - written, written - want
    name = f"oracle {processor} inbox: the feeds' and the step's messages, each once"
    if missing or extra:
        sample = [orjson.loads(k) for k in list(missing)[:2]] + [orjson.loads(k) for k in list(extra)[:2]]
        return Check(
            name,
            False,
            f"{sum(missing.values())} missing, {sum(extra.values())} extra of {sum(want.values())}: {sample}"
            + "".join(f"; {where}" for where in _copies(records, list(extra)[:4])),
        )
    return Check(name, True, f"{sum(want.values())} messages, each once")


def _copies(records: list[Record], entries: list[bytes]) -> list[str]:
    """Where each copy of an inbox message written more than expected is (partition@offset, Kafka
    timestamp, the ``traceparent`` of the processing that wrote it, whose span id is drawn per processing):
    copies with one ``traceparent`` came from one processing of the input record, copies with two from
    two processings of it (a transaction that should have been aborted or fenced)."""
    found: dict[bytes, list[Record]] = defaultdict(list)
    wanted = set(entries)
    for rec in records:
        if isinstance(rec.value, Envelope):
            entry = inbox_entry(rec.key or "", rec.value)
            if entry in wanted:
                found[entry].append(rec)
    return [
        f"copies of {rec_list[0].key}: "
        + ", ".join(
            f"{r.partition}@{r.offset} ts={r.timestamp} traceparent={r.header('traceparent')}"
            for r in rec_list
        )
        for rec_list in found.values()
    ]


def _robot_keys(actual: dict[str, list[str | None]], topic: str) -> dict[str, list[str | None]]:
    """The written records of a telemetry output topic that belong to robots (timers: the offline ones)."""
    if topic != "timers":
        return actual
    return {k: v for k, v in actual.items() if k.startswith("telemetry:")}


#: Fields of our records that are Avro timestamp-millis (schemas/avro/*.avsc), at any depth.
TIMESTAMP_FIELDS = frozenset(
    {"occurred_at", "eta", "window_start", "window_end", "last_seen_at", "due_at", "deadline"}
)
MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


def _timestamps(value: Any, path: str = "") -> Iterable[tuple[str, int]]:
    if isinstance(value, dict):
        for name, inner in value.items():
            if name in TIMESTAMP_FIELDS and isinstance(inner, int) and not isinstance(inner, bool):
                yield f"{path}{name}", inner
            else:
                yield from _timestamps(inner, f"{path}{name}.")
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield from _timestamps(inner, f"{path}[{i}].")


def timestamps_check(evidence: Evidence) -> Check:
    """Every timestamp our producers wrote lies in 1970..9999 (no sentinel for "still open")."""
    bad = []
    checked = 0
    for name, records in sorted(evidence.topics.items()):
        if name.startswith("dlq."):
            continue
        for rec in records:
            for field_name, ms in _timestamps(rec.value):
                checked += 1
                if not 0 <= ms <= MAX_MS:
                    kind = rec.value.get("kind") if isinstance(rec.value, dict) else None
                    bad.append(f"{_where(rec)} {field_name}={ms} ({kind or ''} {rec.value.get('event_id')})")
    name = "timestamps: every one written lies in 1970..9999"
    if bad:
        return Check(name, False, f"{len(bad)} of {checked} out of range: {bad[:3]}")
    return Check(name, True, f"{checked} timestamps")


def dlq_check(evidence: Evidence) -> Check:
    found = {p: evidence[f"dlq.{p}"] for p in DLQ_PROCESSORS if evidence[f"dlq.{p}"]}
    if not found:
        return Check(
            "dead letters: none from our own producers",
            True,
            f"0 records in {len(DLQ_PROCESSORS)} DLQ topics",
        )
    detail = "; ".join(
        f"dlq.{p}: {len(recs)} (e.g. {recs[0].header('fleet-dlq-topic')}@{recs[0].header('fleet-dlq-offset')}: "
        f"{recs[0].header('fleet-dlq-error')})"
        for p, recs in found.items()
    )
    return Check("dead letters: none from our own producers", False, detail)


def topology_checks(evidence: Evidence) -> list[Check]:
    checks = [unique_ids(evidence, t) for t in TOPOLOGY_OUTPUTS if t in evidence.topics]
    checks += [task_sequences(evidence), status_sequences(evidence)]
    checks += oracle_checks(evidence)
    checks += [
        unique_ids(evidence, t, what=" (load producers)") for t in ("robot.telemetry", "task.commands")
    ]
    checks.append(timestamps_check(evidence))
    checks.append(dlq_check(evidence))
    return checks
