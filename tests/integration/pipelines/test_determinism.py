"""Replaying the same input topics gives the same outputs (DESIGN.md section 8), against the real stack.

One recorded day in small: the same input records (telemetry of six robots with duplicates, stale samples,
a reboot, battery crossings and bad records; their registrations and site map; task commands, scheduler
decisions and RMF task states; 40 s of two RMF fleet adapters with a re-sent state, an older one and bad
records), each with the Kafka timestamp it was recorded with (the broker stamps telemetry itself), are
produced twice, under two topic prefixes with different partition counts, and processed each time from
empty state by ``fleet run telemetry``, ``fleet run tasks`` and ``fleet run rmf-ingest``. The records on
every output topic, event ids included, must be the same per key and in the same order per key (the
order across keys depends on the partitioning). No timer service runs, so no timer fires: the armed
timers are compared as outputs. rmf-ingest's statuses and timers must also be those of its pure
counterpart (``topologies.rmf.fleet_outputs``) on the same records.

Where keys do not allow it, there is no promise: a task's inputs that come from a topic keyed otherwise
(robot telemetry reporting task phases) reach the task in the order the processor happens to read them,
and the pose check of a robot's first samples at a site waits for the site directory (docs/records.md).

Dispatch and traffic are replayed in a test of their own (they read what telemetry and tasks write, and
tasks reads what dispatch writes). Both feed every input, re-keyed by site, into their inbox in the order
they happen to read their four topics (``topologies/kernel/step.py`` ``feeds``: nothing aligns them), and
that order changes from one start to the next. So the recorded days are ones whose outcome no such order
changes, and what they cannot cover is said here:

- dispatch's site clock is the latest ``occurred_at`` it has read, and its greedy matching takes what is
  free when a robot or task comes in. Its day has the site map as its last record (nothing is decided
  before the map: every decision carries the map's time) and one possible robot per task (pinned by
  robot, fleet or capability). A day with the map first, or tasks several robots could take, gives
  decisions of other times or other robots from one read order to another. Its topics are read with
  different partition counts in the two runs.
- traffic drops a coordinated robot's status read before its site's map (``topologies/traffic/site.py``:
  no coordinator yet) and runs its planning rounds at the statuses' event times in the order it reads
  them. So the traffic sites' maps and task priorities are produced first and the robots report only once
  traffic has put them in its inbox (the processors are already running then), and the robots of one site
  are on one partition of ``robot.status``: their ids are chosen so that murmur2 puts them on partition 0
  at both counts the two runs use. Its GRANTs must also be those of the pure traffic step that the
  recorded robots obeyed (``tests/unit/topologies/traffic_world.py``).

``fleet replay`` (``pipelines/replay.py``) takes the read order away: it writes the inbox in event-time
order and runs the processor over it. Its test replays a day none of the above holds for (dispatch's map
first and seven tasks any of four robots may take; every robot status recorded before traffic runs),
produced in two different orders with other partition counts, and gets the same decisions, traffic's
the pure step's. Fed in the order the replay reads the topics instead, the two runs' GRANTs differ.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from pipelines.settings import CommonSettings
from schemas.catalog import topics as catalog_topics
from schemas.ids import now_ms
from schemas.registry import RegistryClient
from tests.integration.pipelines.recordings import (
    CORRIDOR_SITE,
    DISPATCH_ASSIGNED,
    DISPATCH_CHARGED,
    DISPATCH_SITE,
    DISPATCH_TASKS,
    GRID_ROBOTS,
    GRID_SITE,
    RMF_FLEET_SITES,
    ROBOT_PARTITIONS,
    TRAFFIC_RMF_ROBOTS,
    TRAFFIC_SETTINGS,
    Record,
    dispatch_day,
    rmf_day,
    rmf_expected,
    traffic_day,
)
from tests.integration.processes import ProcessStack, delete_topics_of
from topologies.rmf import RmfIngestConfig

INPUTS = (
    "robot.telemetry",
    "robot.registry",
    "site.maps",
    "task.commands",
    "scheduler.decisions",
    "rmf.task_states",
    "rmf.fleet_states",
)
OUTPUTS = (
    "robot.status",
    "alerts",
    "robot.telemetry.1m",
    "timers",
    "robot.telemetry.accepted",
    "task.events",
)
INTERNAL = (
    "telemetry.inbox", "tasks.inbox", "timers.due.telemetry", "timers.due.tasks", "task.schedules",
    "timers.due.rmf-ingest",
)  # fmt: skip
DEAD = ("dlq.telemetry", "dlq.tasks", "dlq.rmf-ingest")
TOPICS = (*INPUTS, *OUTPUTS, *INTERNAL, *DEAD)
#: dispatch and traffic: inputs, outputs, internal and dead-letter topics
DECISION_OUTPUTS = ("scheduler.decisions", "traffic.conflicts", "alerts", "timers")
DECISION_TOPICS = (
    "robot.status", "robot.registry", "site.maps", "task.events", *DECISION_OUTPUTS, "dispatch.inbox",
    "traffic.inbox", "timers.due.traffic", "dlq.dispatch", "dlq.traffic",
)  # fmt: skip
TENANT, SITE = "acme", "s1"
RMF_CONFIG = RmfIngestConfig(TENANT, SITE, RMF_FLEET_SITES, heartbeat_ms=30_000, min_interval_ms=5_000)
RMF_SETTINGS = {
    "rmf_tenant_id": TENANT, "rmf_site_id": SITE, "rmf_fleet_sites": orjson.dumps(RMF_FLEET_SITES).decode(),
    "rmf_heartbeat_s": 30, "rmf_min_interval_s": 5, "rmf_offline_timeout_s": 10, "commit_interval_s": 0.2,
}  # fmt: skip
NS = uuid.UUID("0b3c6f1e-2f43-4a7c-9a57-0a1d3e5c7b90")
BASE = (now_ms() - 3_600_000) // 60_000 * 60_000  # an hour ago: nothing is from the future


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NS, ":".join(map(str, parts))))


def _site_map() -> dict[str, Any]:
    nodes = [(0, 0), (60, 0), (60, 40), (0, 40)]
    return {
        "event_id": _id("map"), "tenant_id": TENANT, "site_id": SITE, "occurred_at": BASE - 60_000, "version": 1,
        "name": "hall", "lanes": [], "zones": [], "chargers": [],
        "nodes": [{"id": f"n{i}", "x": float(x), "y": float(y), "kind": "WAYPOINT", "name": None}
                  for i, (x, y) in enumerate(nodes)],
    }  # fmt: skip


def _registration(robot: str) -> dict[str, Any]:
    return {
        "event_id": _id("reg", robot), "tenant_id": TENANT, "site_id": SITE, "occurred_at": BASE - 30_000,
        "robot_id": robot, "fleet_id": "f1", "name": robot, "model": None, "capabilities": [],
        "max_payload_kg": None, "managed_by": "FLEETSTREAM", "active": True,
    }  # fmt: skip


def _sample(robot: str, seq: int, at: int, **overrides: Any) -> dict[str, Any]:
    return {
        "event_id": _id("tel", robot, seq, at), "tenant_id": TENANT, "site_id": SITE, "occurred_at": at,
        "robot_id": robot, "fleet_id": "f1", "seq": seq,
        "pose": {"x": float(seq % 50), "y": 10.0, "yaw": 0.0, "node_id": None, "map_name": "hall"},
        "battery": 0.3, "speed": 0.0, "mode": "IDLE", "error_code": None, "task_id": None, "task_phase": "NONE",
        "route": [], **overrides,
    }  # fmt: skip


def _telemetry() -> list[tuple[str, dict[str, Any] | bytes]]:
    out: list[tuple[str, dict[str, Any] | bytes]] = []
    for r in range(6):
        robot = f"r{r}"
        for seq in range(1, 61):
            at = BASE + seq * 2_000 + r
            mode = ("IDLE", "MOVING", "WORKING", "MOVING")[(seq // 10 + r) % 4]
            battery = max(0.05, 0.6 - seq * 0.01 * (r % 3)) if seq < 45 else 0.9
            out.append(
                (robot, _sample(robot, seq, at, mode=mode, battery=battery, speed=0.8 * (mode == "MOVING")))
            )
            if seq % 17 == 0:
                out.append((robot, _sample(robot, seq, at)))  # a duplicate
                out.append((robot, _sample(robot, seq - 3, at - 6_000)))  # a stale one
        if r == 2:  # r2 reboots: its seq begins again
            for seq in range(1, 6):
                out.append((robot, _sample(robot, seq, BASE + 130_000 + seq * 2_000)))
    out.append(("ghost", _sample("ghost", 1, BASE)))  # unknown robot: a dead letter
    out.append(("r1", _sample("r1", 99, BASE + 200_000, battery=1.7)))  # impossible battery
    out.append(("r3", b"not avro"))
    return out


def _tasks() -> list[tuple[str, str, dict[str, Any] | bytes]]:
    """(topic, key, value) of the task side, in the order a day would have produced them."""
    out: list[tuple[str, str, dict[str, Any] | bytes]] = []
    spec = {
        "category": "delivery", "priority": 5, "pickup_node": "n0", "dropoff_node": "n2",
        "required_capabilities": [], "deadline": None, "timeout_ms": None, "max_attempts": 2, "depends_on": [],
        "on_dependency_failure": "CANCEL", "fleet_id": None, "robot_id": None, "labels": {}, "payload_json": None,
    }  # fmt: skip
    for i in range(10):
        task, at = f"t{i}", BASE + i * 3_000
        out.append(("task.commands", task, {
            "event_id": _id("cmd", task), "tenant_id": TENANT, "site_id": SITE, "occurred_at": at, "task_id": task,
            "command": "CREATE", "idempotency_key": None, "spec": spec, "reason": None, "requested_by": "ops",
            "timer": None,
        }))  # fmt: skip
    for i in range(8):
        task, at = f"t{i}", BASE + 40_000 + i * 1_000
        out.append(("scheduler.decisions", task, {
            "event_id": _id("dec", task), "tenant_id": TENANT, "site_id": SITE, "occurred_at": at,
            "decision_id": _id("d", task), "kind": "ASSIGN", "robot_id": f"r{i % 6}", "task_id": task,
            "route": [], "eta": None, "cost": None, "reason": None, "conflict_id": None, "planner": "in_process",
        }))  # fmt: skip
    rmf = (
        (0, "underway", 50),
        (1, "underway", 51),
        (0, "completed", 52),
        (1, "failed", 53),
        (2, "queued", 54),
    )
    for i, status, second in rmf:
        task = f"t{i}"
        state = {
            "booking": {"id": f"rmf-{task}", "labels": [f"fleetstream_task_id={task}"]},
            "status": status,
        }
        message = {"type": "task_state_update", "data": state, "at": BASE + second * 1_000}
        out.append(("rmf.task_states", task, orjson.dumps(message)))
    out.append(("task.commands", "t9", {
        "event_id": _id("cancel", "t9"), "tenant_id": TENANT, "site_id": SITE, "occurred_at": BASE + 60_000,
        "task_id": "t9", "command": "CANCEL", "idempotency_key": None, "spec": None, "reason": "not needed",
        "requested_by": "ops", "timer": None,
    }))  # fmt: skip
    out.append(("task.commands", "t5", {  # cancel an assigned one
        "event_id": _id("cancel", "t5"), "tenant_id": TENANT, "site_id": SITE, "occurred_at": BASE + 61_000,
        "task_id": "t5", "command": "CANCEL", "idempotency_key": None, "spec": None, "reason": None,
        "requested_by": "ops", "timer": None,
    }))  # fmt: skip
    return out


@contextlib.contextmanager
def _pipeline(
    settings: CommonSettings, admin: AdminClient, tmp: Path, partitions: dict[str, int], names: Iterable[str]
) -> Iterator[ProcessStack]:
    prefix = settings.topic_prefix
    specs = catalog_topics(prefix, partitions=partitions, names=names)
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs
    ]
    for fut in admin.create_topics(new).values():
        fut.result(30)
    registry = RegistryClient(**settings.registry_client_config())
    stack = ProcessStack(settings, registry, tmp)
    try:
        yield stack
    finally:
        stack.stop_all()
        registry.close()
        delete_topics_of(admin, prefix)


def _by_key(stack: ProcessStack, name: str, timeout: float = 15) -> dict[str, list[Any]]:
    """Every record of an output topic, decoded, per key, in log order (tombstones as None)."""
    out: dict[str, list[Any]] = defaultdict(list)
    for message in stack.read(name, until=lambda m: bool(m), timeout=timeout, quiet=2.0, raw=True):
        value = message.value()
        out[message.key().decode()].append(None if value is None else stack.codec(name).decode(value))
    return dict(out)


def _count(by_key: dict[str, list[Any]], keys: Iterable[str] | None = None) -> int:
    return sum(len(records) for key, records in by_key.items() if keys is None or key in keys)


def _dead(stack: ProcessStack, name: str, count: int) -> list[tuple[str, str]]:
    """(key, reason) of the dead letters on ``name``, once there are ``count``."""
    dead = stack.read(name, until=lambda m: len(m) >= count, timeout=20, raw=True)
    return sorted((m.key().decode(), dict(m.headers())["fleet-dlq-error"].decode()) for m in dead)


def _produce(stack: ProcessStack, records: Iterable[Record]) -> None:
    """Each record as it was recorded: its key, its value (encoded unless bytes), its Kafka timestamp."""
    for topic, key, value, at in records:
        data = value if isinstance(value, bytes) else stack.codec(topic).encode(value)
        stack.producer.produce(stack.settings.topic(topic), key=key.encode(), value=data, timestamp=at)
    stack.flush()


def _wait_for(stack: ProcessStack, enough: dict[str, Callable[[dict[str, list[Any]]], bool]]) -> None:
    """Until every output topic holds enough (at most 2 minutes), then the last checkpoints."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if all(check(_by_key(stack, name)) for name, check in enough.items()):
            break
        time.sleep(2)
    time.sleep(3)


def _rmf_partitions(count: int) -> dict[str, int]:
    """rmf-ingest's input and its due timers: co-partitioned, in no group of the catalog."""
    return {"rmf.fleet_states": count, "timers.due.rmf-ingest": count}


def _run(
    settings: CommonSettings, admin: AdminClient, tmp: Path, partitions: dict[str, int]
) -> dict[str, Any]:
    tmp.mkdir(parents=True, exist_ok=True)
    rmf = rmf_expected(rmf_day(BASE), RMF_CONFIG)["robot.status"]
    with _pipeline(settings, admin, tmp, partitions, TOPICS) as s:
        site_map = _site_map()
        s.producer.produce(
            s.settings.topic("site.maps"), key=SITE.encode(), value=s.codec("site.maps").encode(site_map),
            timestamp=site_map["occurred_at"],
        )  # fmt: skip
        for r in range(6):
            reg = _registration(f"r{r}")
            s.producer.produce(
                s.settings.topic("robot.registry"), key=f"r{r}".encode(),
                value=s.codec("robot.registry").encode(reg), timestamp=reg["occurred_at"],
            )  # fmt: skip
        for key, value in _telemetry():
            s.produce("robot.telemetry", key, value)
        for topic, key, value in _tasks():
            # as recorded: each record with its own timestamp (an RMF state's is its event time)
            at = orjson.loads(value)["at"] if isinstance(value, bytes) else value["occurred_at"]
            data = value if isinstance(value, bytes) else s.codec(topic).encode(value)
            s.producer.produce(s.settings.topic(topic), key=key.encode(), value=data, timestamp=at)
        _produce(s, rmf_day(BASE))
        # the whole recorded day is in Kafka before the processors start: they replay it from empty state
        s.start("telemetry", offline_timeout_s=3600, commit_interval_s=0.2)
        s.start("tasks", default_task_timeout_s=3600)
        s.start("rmf-ingest", **RMF_SETTINGS)
        _wait_for(s, {
            "robot.telemetry.accepted": lambda got: _count(got) >= 6 * 60 + 5,
            "task.events": lambda got: _count(got) >= 35,
            "robot.status": lambda got: _count(got, rmf) >= _count(rmf),
        })  # fmt: skip
        result: dict[str, Any] = {name: _by_key(s, name) for name in OUTPUTS}
        result["dlq"] = _dead(s, "dlq.telemetry", 3)
        result["dlq.rmf-ingest"] = _dead(s, "dlq.rmf-ingest", 2)
        return result


def _run_decisions(
    settings: CommonSettings, admin: AdminClient, tmp: Path, partitions: dict[str, int]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Dispatch's and traffic's day replayed; returns their outputs and the GRANTs of the pure step."""
    tmp.mkdir(parents=True, exist_ok=True)
    before, statuses, grants = traffic_day(TENANT, BASE)
    with _pipeline(settings, admin, tmp, partitions, DECISION_TOPICS) as s:
        _produce(s, [*dispatch_day(TENANT, BASE), *before])
        s.start("dispatch", commit_interval_s=0.2)
        s.start("traffic", commit_interval_s=0.2, **TRAFFIC_SETTINGS)
        # the traffic sites' maps and task priorities in traffic's inbox before any of their robots reports
        sites = (GRID_SITE, CORRIDOR_SITE)
        inbox = s.read(
            "traffic.inbox", until=lambda m: sum(x.key().decode() in sites for x in m) >= len(before),
            timeout=90, quiet=0, raw=True,
        )  # fmt: skip
        assert sum(x.key().decode() in sites for x in inbox) == len(before), s.log("traffic")[-3000:]
        _produce(s, statuses)
        expected = len(DISPATCH_ASSIGNED) + 1 + len(grants) + 2  # ASSIGN, CHARGE, GRANT, HOLD and RESUME
        _wait_for(s, {
            "scheduler.decisions": lambda got: _count(got) >= expected,
            "traffic.conflicts": lambda got: _count(got) >= 1,
        })  # fmt: skip
        result: dict[str, Any] = {
            name: _by_key(s, name, timeout=15 if name != "alerts" else 5) for name in DECISION_OUTPUTS
        }
        result["dlq"] = [_dead(s, "dlq.dispatch", 1), _dead(s, "dlq.traffic", 1)]
        return result, grants


@pytest.mark.timeout(600)
def test_the_same_input_topics_processed_twice_give_the_same_outputs(
    settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    first = _run(
        settings.model_copy(update={"topic_prefix": f"d{uuid.uuid4().hex[:6]}.", "state_dir": tmp_path / "a"}),
        kafka_admin, tmp_path / "a", {"robot": 2, "task": 2, "site": 2, **_rmf_partitions(1)},
    )  # fmt: skip
    second = _run(
        settings.model_copy(update={"topic_prefix": f"d{uuid.uuid4().hex[:6]}.", "state_dir": tmp_path / "b"}),
        kafka_admin, tmp_path / "b", {"robot": 3, "task": 3, "site": 1, **_rmf_partitions(3)},
    )  # fmt: skip
    for name in OUTPUTS:
        assert first[name], f"nothing on {name}"
        assert first[name] == second[name], name
    assert first["dlq"] == second["dlq"] and len(first["dlq"]) == 3
    assert first["dlq.rmf-ingest"] == second["dlq.rmf-ingest"] and len(first["dlq.rmf-ingest"]) == 2
    for name, by_key in rmf_expected(rmf_day(BASE), RMF_CONFIG).items():  # statuses and offline timers
        assert {key: first[name].get(key) for key in by_key} == by_key, name
    events = first["task.events"]
    assert [e["state"] for e in events["t0"] if e["kind"] == "TRANSITION"][-1] == "SUCCEEDED"
    assert [e["state"] for e in events["t9"] if e["kind"] == "TRANSITION"][-1] == "CANCELLED"
    accepted = first["robot.telemetry.accepted"]
    assert len(accepted["r2"]) == 65 and [r["seq"] for r in accepted["r2"]][-5:] == [1, 2, 3, 4, 5]  # reboot
    assert {len(accepted[f"r{r}"]) for r in (0, 1, 3, 4, 5)} == {60}  # neither duplicates nor stale ones


@pytest.mark.timeout(600)
def test_dispatch_and_traffic_replayed_twice_give_the_same_decisions(
    settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    first, grants = _run_decisions(
        settings.model_copy(update={"topic_prefix": f"d{uuid.uuid4().hex[:6]}.", "state_dir": tmp_path / "a"}),
        kafka_admin, tmp_path / "a", {"robot": ROBOT_PARTITIONS[0], "task": 2, "site": 2},
    )  # fmt: skip
    second, _ = _run_decisions(
        settings.model_copy(update={"topic_prefix": f"d{uuid.uuid4().hex[:6]}.", "state_dir": tmp_path / "b"}),
        kafka_admin, tmp_path / "b", {"robot": ROBOT_PARTITIONS[1], "task": 3, "site": 1},
    )  # fmt: skip
    for name in DECISION_OUTPUTS:
        assert first[name] == second[name], name
    assert first["dlq"] == second["dlq"] and [len(dead) for dead in first["dlq"]] == [1, 1]
    decisions = first["scheduler.decisions"]

    # dispatch: each task to the one robot it can go to, the robot below the reserve to the charger, all at
    # the map's time; the inactive, the unregistered and the incapable robot's tasks wait
    for task, robot in DISPATCH_ASSIGNED.items():
        [assign] = decisions[task]
        assert (assign["kind"], assign["robot_id"], assign["planner"]) == ("ASSIGN", robot, "in_process")
        assert (assign["site_id"], assign["occurred_at"]) == (DISPATCH_SITE, BASE + 90_000)
        assert assign["route"][-1]["node_id"] == assign["dropoff_node"] == DISPATCH_TASKS[task][1]
        assert assign["labels"] == {"order": f"o-{task}"}
    assert not {"job6", "job7", "job8"} & decisions.keys()
    [charge] = decisions[DISPATCH_CHARGED]
    assert (charge["kind"], charge["route"][-1]["node_id"]) == ("CHARGE", "ch")

    # traffic: the grid's robots got the GRANTs the pure step gave them when they drove the recorded day
    for robot in GRID_ROBOTS:
        pure = [g for g in grants if g["robot_id"] == robot]
        assert pure and [{k: d[k] for k in pure[0]} for d in decisions[robot]] == pure, robot
    assert first["timers"][f"traffic:{GRID_SITE}"]  # its planning ticks (no timer service: never due)
    # and the corridor's lower priority RMF robot is held, then resumed once the other has passed
    [conflict] = first["traffic.conflicts"][CORRIDOR_SITE]
    assert conflict["resolved_robot_id"] == TRAFFIC_RMF_ROBOTS[1] and conflict["resolution"] == "HOLD"
    assert [d["kind"] for d in decisions[TRAFFIC_RMF_ROBOTS[1]]] == ["HOLD", "RESUME"]
    assert TRAFFIC_RMF_ROBOTS[0] not in decisions


def _interleaved(records: list[Record], seed: int) -> list[Record]:
    """``records`` in another produce order: each (topic, key)'s records in their order, the rest shuffled."""
    rng = random.Random(seed)
    queues: dict[tuple[str, str], deque[Record]] = {}
    for rec in records:
        queues.setdefault((rec[0], rec[1]), deque()).append(rec)
    live = list(queues.values())
    out: list[Record] = []
    while live:
        queue = rng.choice(live)
        out.append(queue.popleft())
        if not queue:
            live.remove(queue)
    return out


def _replay_decisions(
    settings: CommonSettings, admin: AdminClient, tmp: Path, partitions: dict[str, int], seed: int | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Dispatch's and traffic's day recorded whole (dispatch's map first and its tasks for any robot, every
    robot's status), produced in its order or (``seed``) in a shuffled one, then each processor replayed
    over it by ``fleet replay``; returns their outputs and the GRANTs of the pure step."""
    tmp.mkdir(parents=True, exist_ok=True)
    before, statuses, grants = traffic_day(TENANT, BASE)
    day = [*dispatch_day(TENANT, BASE, map_at=BASE - 1_000, pinned=False), *before, *statuses]
    with _pipeline(settings, admin, tmp, partitions, DECISION_TOPICS) as s:
        _produce(s, day if seed is None else _interleaved(day, seed))
        result: dict[str, Any] = {"replayed": {}}
        for name, extra in (("dispatch", {}), ("traffic", TRAFFIC_SETTINGS)):
            output = s.replay(name, commit_interval_s=0.2, **extra)
            [line] = [x for x in output.splitlines() if f"{name} replayed:" in x]
            result["replayed"][name] = line.split("replayed: ", 1)[1].split(" source records")[0]
        refused = s.replay("dispatch", exit_code=2)  # its inbox is full now: not from empty state
        assert "already holds" in refused and "FLEET_TOPIC_PREFIX" in refused, refused[-2000:]
        if seed is None:  # its inbox deleted, the state it left still refuses a replay
            inbox = settings.topic("dispatch.inbox")
            admin.delete_topics([inbox])[inbox].result(30)
            deadline = time.monotonic() + 30
            while inbox in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
                time.sleep(0.5)
            refused = s.replay("dispatch", exit_code=2)
            assert "state from an earlier run" in refused, refused[-2000:]
            assert f"changelog__{settings.topic_prefix}fleet-dispatch--" in refused, refused[-2000:]
            assert f"local state in {settings.state_dir / 'dispatch'}" in refused, refused[-2000:]
        result.update({name: _by_key(s, name, timeout=10) for name in DECISION_OUTPUTS})
        result["dlq"] = [_dead(s, "dlq.dispatch", 1), _dead(s, "dlq.traffic", 1)]
        result["day"] = len(day)
        return result, grants


@pytest.mark.timeout(900)
def test_dispatch_and_traffic_replayed_in_event_time_order_decide_the_same_at_any_partition_counts(
    settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    """``fleet replay``: a day whose outcome live depends on the order dispatch and traffic read their topics
    (dispatch has its map before any robot or task, and seven tasks any of four robots may take; traffic
    plans at the statuses it has read), recorded twice with other partition counts and another produce
    order, replayed, decides the same."""
    first, grants = _replay_decisions(
        settings.model_copy(update={"topic_prefix": f"r{uuid.uuid4().hex[:6]}.", "state_dir": tmp_path / "a"}),
        kafka_admin, tmp_path / "a", {"robot": 2, "task": 2, "site": 2}, None,
    )  # fmt: skip
    second, _ = _replay_decisions(
        settings.model_copy(update={"topic_prefix": f"r{uuid.uuid4().hex[:6]}.", "state_dir": tmp_path / "b"}),
        kafka_admin, tmp_path / "b", {"robot": 3, "task": 3, "site": 1}, 5,
    )  # fmt: skip
    assert first["replayed"] == {"dispatch": str(first["day"]), "traffic": str(first["day"])}
    for name in DECISION_OUTPUTS:
        assert first[name] == second[name], name
    assert first["dlq"] == second["dlq"] and [len(dead) for dead in first["dlq"]] == [1, 1]
    decisions = first["scheduler.decisions"]

    # dispatch decided as tasks were queued: four of the seven to the four free robots, one each (the
    # inactive and the unregistered robot get none; the one below its reserve goes to charge)
    assigned = {task: d for task in DISPATCH_TASKS for d in decisions.get(task, []) if d["kind"] == "ASSIGN"}
    assert sorted(d["robot_id"] for d in assigned.values()) == sorted(DISPATCH_ASSIGNED.values()), assigned
    assert all(BASE + 40_000 <= d["occurred_at"] < BASE + 90_000 for d in assigned.values())
    assert [d["kind"] for d in decisions[DISPATCH_CHARGED]][:1] == ["CHARGE"]

    # traffic: the grid's robots got the GRANTs the pure step gave them, in the order of the day
    for robot in GRID_ROBOTS:
        pure = [g for g in grants if g["robot_id"] == robot]
        assert pure and [{k: d[k] for k in pure[0]} for d in decisions[robot]] == pure, robot
    [conflict] = first["traffic.conflicts"][CORRIDOR_SITE]
    assert conflict["resolved_robot_id"] == TRAFFIC_RMF_ROBOTS[1] and conflict["resolution"] == "HOLD"
    assert [d["kind"] for d in decisions[TRAFFIC_RMF_ROBOTS[1]]] == ["HOLD", "RESUME"]


def test_a_replay_of_a_prefix_without_its_topics_says_so_and_creates_nothing(
    settings: CommonSettings, kafka_admin: AdminClient, tmp_path: Path
) -> None:
    prefix = f"r{uuid.uuid4().hex[:6]}"  # the trailing dot forgotten: no topic of the day is found
    registry = RegistryClient(**settings.registry_client_config())
    try:
        stack = ProcessStack(
            settings.model_copy(update={"topic_prefix": prefix, "state_dir": tmp_path}), registry, tmp_path
        )
        output = stack.replay("traffic", exit_code=1)
        made = [t for t in kafka_admin.list_topics(timeout=10).topics if t.startswith(prefix)]
    finally:
        registry.close()
        delete_topics_of(kafka_admin, prefix)
    assert f"none of {prefix}robot.status" in output and "trailing dot" in output, output[-2000:]
    assert made == []
