"""The drill's telemetry oracle runs the kernel step as the processor does: outputs written by the step on
a Quix store (robot, its site's directory through the inbox, a sample forwarded from a wrong partition)
are explained exactly; a lost or duplicated status is not, and a lost inbox message shows in the inbox
multiset."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from typing import Any

import orjson

from pipelines.drill.oracle import TELEMETRY_INBOX, inbox_entry, telemetry_oracle
from pipelines.drill.reader import Record
from pipelines.drill.verify import _inbox_check, first_writes
from schemas import catalog
from topologies.kernel import Envelope, murmur2_partition
from topologies.kernel.testing import StepHarness
from topologies.telemetry import REGISTRATION, TELEMETRY, TelemetryConfig, TelemetryStep

T0 = int(datetime(2025, 3, 1, 8, 0, tzinfo=UTC).timestamp() * 1000)
PARTITIONS = 4


def registration(robot_id: str) -> dict[str, Any]:
    return {
        "event_id": f"reg-{robot_id}",
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": T0 - 60_000,
        "robot_id": robot_id,
        "fleet_id": "f1",
        "name": robot_id,
        "model": None,
        "capabilities": [],
        "max_payload_kg": None,
        "managed_by": "FLEETSTREAM",
        "active": True,
    }


def sample(robot_id: str, seq: int, battery: float) -> dict[str, Any]:
    return {
        "event_id": f"{robot_id}-e{seq}",
        "tenant_id": "acme",
        "site_id": "s1",
        "occurred_at": T0 + seq * 1000,
        "robot_id": robot_id,
        "fleet_id": "f1",
        "seq": seq,
        "pose": {"x": 1.0, "y": 1.0, "yaw": 0.0, "node_id": None, "map_name": None},
        "battery": battery,
        "speed": 0.0,
        "mode": "IDLE" if seq % 3 else "MOVING",
        "error_code": None,
        "task_id": None,
        "task_phase": "NONE",
        "route": [],
    }


def _home(key: str) -> int:
    return murmur2_partition(key.encode(), PARTITIONS)


def run_processor() -> tuple[dict[str, list[Record]], list[Record], dict[str, dict[str, list[str | None]]]]:
    """What the telemetry processor writes for two robots: each direct record applied in timestamp order
    on its key's partition, inbox messages applied after the record that sent them; r2's samples written
    to a wrong partition are forwarded through the inbox first."""
    step = TelemetryStep(TelemetryConfig(), decode=orjson.loads)
    harness = StepHarness(step)
    direct: dict[str, list[Record]] = defaultdict(list)
    inbox: list[Record] = []
    actual: dict[str, dict[str, list[str | None]]] = defaultdict(lambda: defaultdict(list))
    offsets: Counter[tuple[str, int]] = Counter()

    def record(topic: str, key: str, value: Any, ts: int, partition: int) -> Record:
        offset = offsets[(topic, partition)]
        offsets[(topic, partition)] += 1
        return Record(f"p.{topic}", partition, offset, ts, key, value, ())

    def deliver(kind: str, key: str, event: Any, ts: int) -> None:
        queue = [(kind, key, event)]
        while queue:
            kind, key, event = queue.pop(0)
            payload = orjson.dumps(event) if kind == TELEMETRY else event
            for out in harness.send(kind, key, payload, ts):
                if isinstance(out.value, Envelope):
                    inbox.append(record(TELEMETRY_INBOX, out.key, out.value, ts, _home(out.key)))
                    queue.append((out.value.kind, out.key, out.value.payload))
                else:
                    value = orjson.loads(out.value) if isinstance(out.value, bytes) else out.value
                    actual[out.topic][out.key].append(value.get("event_id") if value else None)

    for robot in ("r1", "r2"):
        reg = registration(robot)
        direct[catalog.ROBOT_REGISTRY].append(
            record(catalog.ROBOT_REGISTRY, robot, reg, T0 - 1000, _home(robot))
        )
        deliver(REGISTRATION, robot, reg, T0 - 1000)
    for seq in range(1, 8):
        for robot in ("r1", "r2"):
            value = sample(robot, seq, battery=0.9 - 0.12 * seq)
            ts = value["occurred_at"]
            if robot == "r2" and seq in (3, 4):  # another partitioner: forwarded home through the inbox
                wrong = (_home(robot) + 1) % PARTITIONS
                direct[catalog.ROBOT_TELEMETRY].append(
                    record(catalog.ROBOT_TELEMETRY, robot, value, ts, wrong)
                )
                inbox.append(record(TELEMETRY_INBOX, robot, Envelope(TELEMETRY, value), ts, _home(robot)))
            else:
                direct[catalog.ROBOT_TELEMETRY].append(
                    record(catalog.ROBOT_TELEMETRY, robot, value, ts, _home(robot))
                )
            deliver(TELEMETRY, robot, value, ts)
    harness.close()
    for records in direct.values():
        records.sort(key=lambda r: (r.partition, r.offset))
    inbox.sort(key=lambda r: (r.partition, r.offset))
    return direct, inbox, actual


def test_the_oracle_explains_what_the_step_wrote_and_its_inbox() -> None:
    direct, inbox, actual = run_processor()
    assert actual[catalog.ALERTS], "the samples drain the battery: an alert is part of what is explained"
    expected, verdicts = telemetry_oracle(direct, inbox, [], actual, PARTITIONS)
    assert [v.key for v in verdicts] == ["r1", "r2", "site:s1"]
    assert all(v.ok for v in verdicts), [v.detail for v in verdicts]
    for topic, by_key in actual.items():
        assert expected.outputs[topic] == by_key, topic
    written = Counter(inbox_entry(r.key or "", r.value) for r in inbox)
    assert Counter(expected.inbox) == written
    assert sum(written.values()) == 6, "two joins, two answers, two forwarded samples"


def test_a_lost_or_duplicated_status_is_unexplained() -> None:
    direct, inbox, actual = run_processor()
    statuses = actual[catalog.ROBOT_STATUS]["r1"]
    assert len(statuses) >= 2
    lost = {**actual, catalog.ROBOT_STATUS: {**actual[catalog.ROBOT_STATUS], "r1": statuses[:-1]}}
    _, verdicts = telemetry_oracle(direct, inbox, [], lost, PARTITIONS)
    assert [v.key for v in verdicts if not v.ok] == ["r1"]
    twice = {**actual, catalog.ROBOT_STATUS: {**actual[catalog.ROBOT_STATUS], "r1": [statuses[0], *statuses]}}
    _, verdicts = telemetry_oracle(direct, inbox, [], twice, PARTITIONS)
    assert [v.key for v in verdicts if not v.ok] == ["r1"]


def test_a_lost_inbox_message_is_missing_from_the_expected_multiset() -> None:
    direct, inbox, actual = run_processor()
    expected, _ = telemetry_oracle(direct, inbox[1:], [], actual, PARTITIONS)
    written = Counter(inbox_entry(r.key or "", r.value) for r in inbox[1:])
    assert Counter(expected.inbox) - written, "the step's message that was not written is missed"


def test_accepted_samples_written_again_after_a_restart_are_explained_by_theirfirst_writes() -> None:
    """robot.telemetry.accepted is written at least once (pipelines/sideoutput.py): a restart writes the
    samples since the last commit again. Its first writes must still be exactly the step's; a lost sample
    is not explained away."""
    direct, inbox, actual = run_processor()
    accepted = actual[catalog.ROBOT_TELEMETRY_ACCEPTED]["r1"]
    assert len(accepted) >= 4
    rewritten = {**actual[catalog.ROBOT_TELEMETRY_ACCEPTED], "r1": [*accepted[:3], *accepted[1:]]}
    repeats = first_writes(rewritten)
    assert repeats == 2 and rewritten["r1"] == accepted
    _, verdicts = telemetry_oracle(
        direct, inbox, [], {**actual, catalog.ROBOT_TELEMETRY_ACCEPTED: rewritten}, PARTITIONS
    )
    assert all(v.ok for v in verdicts), [v.detail for v in verdicts]

    lost = {**actual[catalog.ROBOT_TELEMETRY_ACCEPTED], "r1": [*accepted[:2], *accepted[3:], accepted[1]]}
    assert first_writes(lost) == 1
    _, verdicts = telemetry_oracle(
        direct, inbox, [], {**actual, catalog.ROBOT_TELEMETRY_ACCEPTED: lost}, PARTITIONS
    )
    assert [v.key for v in verdicts if not v.ok] == ["r1"]


def test_an_inbox_message_written_twice_is_reported_with_where_each_copy_is() -> None:
    direct, inbox, _actual = run_processor()
    expected, _ = telemetry_oracle(direct, inbox, [], _actual, PARTITIONS)
    first = inbox[0]
    trace = (("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
    again = Record(first.topic, first.partition, 999, first.timestamp, first.key, first.value, trace)
    check = _inbox_check("telemetry", [*inbox, again], expected.inbox)
    assert not check.ok
    assert check.detail.startswith("0 missing, 1 extra of 6")
    assert (
        f"copies of {first.key}: {first.partition}@{first.offset} ts={first.timestamp} traceparent=None, "
        in check.detail
    )
    assert (
        f"{first.partition}@999 ts={first.timestamp} traceparent=00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        in check.detail
    )
    assert _inbox_check("telemetry", inbox, expected.inbox).ok
