"""The recorded days that ``test_determinism.py`` replays through dispatch, traffic and rmf-ingest.

Each is a list of :class:`Record`: topic, key, value (a dict the topic's codec encodes, or the bytes as
recorded) and the Kafka timestamp it was recorded with. Where a day comes from a pure model (the traffic
robots obey their grants in ``traffic_world``; rmf-ingest's pure counterpart ``fleet_outputs``), what that
model decided goes with it, for the test to hold the processors to.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson

from pipelines.rmf import fleet_state, robot_state
from tests.unit.topologies import test_traffic_support as support
from tests.unit.topologies.test_traffic_scenarios import CORRIDOR, EAST, WEST
from tests.unit.topologies.traffic_world import World, grid_map
from topologies.kernel import murmur2_partition
from topologies.rmf import RmfIngestConfig, fleet_outputs
from topologies.traffic import TrafficConfig

__all__ = [
    "CORRIDOR_SITE",
    "DISPATCH_ASSIGNED",
    "DISPATCH_CHARGED",
    "DISPATCH_SITE",
    "DISPATCH_TASKS",
    "GRID_ROBOTS",
    "GRID_SITE",
    "RMF_FLEET_SITES",
    "ROBOT_PARTITIONS",
    "TRAFFIC_CONFIG",
    "TRAFFIC_RMF_ROBOTS",
    "TRAFFIC_SETTINGS",
    "Record",
    "dispatch_day",
    "rmf_day",
    "rmf_expected",
    "sharing_partition",
    "traffic_day",
]

NS = uuid.UUID("5d7e2f0a-6b1c-4e8d-9f3a-2c4b6a8e0d17")
DISPATCH_SITE, GRID_SITE, CORRIDOR_SITE = "d1", "x1", "x2"
RMF_FLEET_SITES = {"tinyRobot": "s1", "deliveryRobot": "s2"}
#: The traffic processor's settings (FLEET_TRAFFIC_*) and the same as the pure model's configuration.
TRAFFIC_SETTINGS = {
    "traffic_speed_mps": 1.5, "traffic_round_s": 1, "traffic_lookahead_s": 2, "traffic_latency_s": 0,
}  # fmt: skip
TRAFFIC_CONFIG = TrafficConfig(speed_mps=1.5, round_ms=1_000, lookahead_ms=2_000, latency_ms=0)


class Record(NamedTuple):
    topic: str
    key: str
    value: dict[str, Any] | bytes
    timestamp: int


def _id(*parts: object) -> str:
    return str(uuid.uuid5(NS, ":".join(map(str, parts))))


def _base(tenant: str, site: str, at: int, *parts: object) -> dict[str, Any]:
    return {"event_id": _id(site, at, *parts), "tenant_id": tenant, "site_id": site, "occurred_at": at}


def sharing_partition(prefix: str, count: int, partitions: Iterable[int]) -> list[str]:
    """The first ``count`` ids ``<prefix><n>`` that murmur2 puts on partition 0 at each of ``partitions``."""
    counts = tuple(partitions)
    names = (f"{prefix}{n}" for n in range(1, 10_000))
    found = [name for name in names if all(murmur2_partition(name.encode(), c) == 0 for c in counts)]
    return found[:count]


#: The partition counts of ``robot.status`` in the test's two runs of dispatch and traffic, and the
#: traffic sites' robots: all of a site's on partition 0 at either count (see the test's docstring).
ROBOT_PARTITIONS = (2, 3)
GRID_ROBOTS = sharing_partition("agv", 4, ROBOT_PARTITIONS)
TRAFFIC_RMF_ROBOTS = sharing_partition("rmf-", 2, ROBOT_PARTITIONS)


# -- dispatch ----------------------------------------------------------------------------------------------
#: robot -> (node it ends the recording idle at, fleet, capabilities, battery, registration: active or none)
DISPATCH_ROBOTS: dict[str, tuple[str, str, list[str], float, bool | None]] = {
    "amr1": ("g00", "f1", [], 0.9, True),
    "amr2": ("g30", "f1", [], 0.7, True),
    "amr3": ("g12", "f1", ["lift"], 0.8, True),
    "amr4": ("g22", "f2", [], 0.9, True),
    "amr5": ("g10", "f1", [], 0.1, True),  # below the reserve: sent to the charger
    "amr6": ("g31", "f1", [], 0.9, False),  # registered inactive: never free
    "amr7": ("g02", "f1", [], 0.9, None),  # never registered: never free
}
#: task -> (pickup, dropoff, priority, what picks its robot: {"robot_id"|"fleet_id"|"required_capabilities"})
DISPATCH_TASKS: dict[str, tuple[str, str, int, dict[str, Any]]] = {
    "job1": ("g20", "g32", 5, {"robot_id": "amr1"}),
    "job2": ("g01", "g11", 7, {"robot_id": "amr2"}),
    "job3": ("g21", "g02", 5, {"required_capabilities": ["lift"]}),
    "job4": ("g32", "g00", 3, {"fleet_id": "f2"}),
    "job6": ("g11", "g20", 5, {"robot_id": "amr6"}),
    "job7": ("g11", "g20", 5, {"robot_id": "amr7"}),
    "job8": ("g11", "g20", 5, {"required_capabilities": ["crane"]}),
}
#: What dispatch must decide: task -> robot, and the robot it sends to charge.
DISPATCH_ASSIGNED = {"job1": "amr1", "job2": "amr2", "job3": "amr3", "job4": "amr4"}
DISPATCH_CHARGED = "amr5"


def _dispatch_map(tenant: str, at: int) -> dict[str, Any]:
    """A 4 x 3 grid of two-way lanes 10 m apart (nodes ``g<x><y>``) and a charger off g00."""
    cells = [(x, y) for x in range(4) for y in range(3)]
    nodes = [
        {"id": f"g{x}{y}", "x": 10.0 * x, "y": 10.0 * y, "kind": "WAYPOINT", "name": None} for x, y in cells
    ]
    nodes.append({"id": "ch", "x": -10.0, "y": 0.0, "kind": "CHARGER", "name": None})
    pairs = [
        ((x, y), (x + dx, y + dy))
        for x, y in cells
        for dx, dy in ((1, 0), (0, 1))
        if (x + dx, y + dy) in cells
    ]
    lanes = [
        {
            "id": f"g{a[0]}{a[1]}-g{b[0]}{b[1]}",
            "from_node": f"g{a[0]}{a[1]}",
            "to_node": f"g{b[0]}{b[1]}",
            "bidirectional": True,
            "speed_limit": None,
        }
        for a, b in pairs
    ]
    lanes.append(
        {"id": "g00-ch", "from_node": "g00", "to_node": "ch", "bidirectional": True, "speed_limit": None}
    )
    return {
        **_base(tenant, DISPATCH_SITE, at, "map"), "version": 1, "name": "yard", "nodes": nodes, "lanes": lanes,
        "zones": [], "chargers": [{"id": "c1", "node_id": "ch"}],
    }  # fmt: skip


def _dispatch_status(tenant: str, robot: str, seq: int, at: int, state: str, node: str) -> dict[str, Any]:
    _, fleet, _, battery, _ = DISPATCH_ROBOTS[robot]
    x, y = (-10.0, 0.0) if node == "ch" else (10.0 * int(node[1]), 10.0 * int(node[2]))
    return {
        **_base(tenant, DISPATCH_SITE, at, "status", robot, seq), "robot_id": robot, "fleet_id": fleet,
        "status": state, "previous_status": None, "battery": battery, "speed": 0.0, "task_id": None,
        "route": [], "seq": seq, "pose": {"x": x, "y": y, "yaw": 0.0, "node_id": node, "map_name": None},
        "last_seen_at": at, "reason": "CHANGE",
    }  # fmt: skip


def dispatch_day(tenant: str, base: int, map_at: int | None = None, pinned: bool = True) -> list[Record]:
    """A site's robots report and register, its tasks are created and queued, and its map comes last
    (at ``base`` + 90 s; ``map_at`` moves it).

    Dispatch decides nothing before it has a map, and the map is the latest record of the site: every
    decision is taken once it is read, with the site's clock at the map's time, whatever the order in
    which dispatch reads its four input topics. Each ready task has one robot it can go to (a robot,
    fleet or capability pin) and each free robot one task, so no read order changes who gets what. With
    the map first, or without the pins (``pinned=False``: any free robot may take any task), dispatch
    decides as robots and tasks come in: live, the order in which it reads them then matters.
    """
    out: list[Record] = []
    nodes = [node for node, *_ in DISPATCH_ROBOTS.values()]
    for k, (robot, (node, fleet, capabilities, _, active)) in enumerate(DISPATCH_ROBOTS.items()):
        if active is not None:
            at = base + k * 1_000
            out.append(Record("robot.registry", robot, {
                **_base(tenant, DISPATCH_SITE, at, "reg", robot), "robot_id": robot, "fleet_id": fleet,
                "name": robot, "model": None, "capabilities": capabilities, "max_payload_kg": None,
                "managed_by": "FLEETSTREAM", "active": active,
            }, at))  # fmt: skip
        # on its way and at work where the next robot ends, then idle where it stays; then a status re-sent,
        # and a late one
        away = nodes[(k + 1) % len(nodes)]
        statuses = [
            _dispatch_status(tenant, robot, 1, base + 10_000 + k * 100, "MOVING", away),
            _dispatch_status(tenant, robot, 2, base + 20_000 + k * 100, "WORKING", away),
            _dispatch_status(tenant, robot, 3, base + 30_000 + k * 100, "IDLE", node),
        ]
        statuses.append(statuses[-1])
        statuses.append(_dispatch_status(tenant, robot, 2, base + 25_000 + k * 100, "IDLE", away))
        out.extend(Record("robot.status", robot, s, s["occurred_at"]) for s in statuses)
    out.append(Record("robot.status", "amr2", b"\x07not avro", base + 31_000))  # dead-lettered
    for k, (task, (pickup, dropoff, priority, pin)) in enumerate(DISPATCH_TASKS.items()):
        spec = {
            "category": "delivery", "priority": priority, "pickup_node": pickup, "dropoff_node": dropoff,
            "required_capabilities": [], "deadline": None, "timeout_ms": None, "max_attempts": 2,
            "depends_on": [], "on_dependency_failure": "CANCEL", "fleet_id": None, "robot_id": None,
            "labels": {"order": f"o-{task}"}, "payload_json": None, **(pin if pinned else {}),
        }  # fmt: skip
        events = []
        for seq, state, at in (
            (1, "CREATED", base + 5_000 + k * 100),
            (2, "QUEUED", base + 40_000 + k * 100),
        ):
            events.append({
                **_base(tenant, DISPATCH_SITE, at, "task", task, seq), "task_id": task, "seq": seq,
                "kind": "TRANSITION", "state": state, "previous_state": None, "reason": None, "robot_id": None,
                "attempt": 0, "spec": spec if state == "CREATED" else None, "external_id": None,
                "causation_id": None,
            })  # fmt: skip
        events.append(events[-1])  # QUEUED twice: a producer's retry
        out.extend(Record("task.events", task, e, e["occurred_at"]) for e in events)
    site_map = _dispatch_map(tenant, base + 90_000 if map_at is None else map_at)
    out.append(Record("site.maps", DISPATCH_SITE, site_map, site_map["occurred_at"]))
    return out


# -- traffic -----------------------------------------------------------------------------------------------
class _Recorder(World):
    """``traffic_world``'s robots obeying their grants, reporting RobotStatus records of a real tenant and
    site at real times; every status they report is kept (``statuses``)."""

    def __init__(self, site_map: dict[str, Any], tenant: str, base: int) -> None:
        super().__init__(site_map, TRAFFIC_CONFIG)
        self.tenant, self.now = tenant, base
        self.statuses: list[dict[str, Any]] = []

    def status(self, bot: Any) -> dict[str, Any]:
        record = super().status(bot)
        record.update(_base(self.tenant, GRID_SITE, self.now, "status", bot.robot_id, bot.seq))
        record.update(previous_status=None, pose={**record["pose"], "map_name": None})
        self.statuses.append(record)
        return record


def _moved(record: dict[str, Any], tenant: str, site: str, at: int, *parts: object) -> dict[str, Any]:
    """A traffic support record (stamped at its fixed T0) moved to ``tenant``, ``site`` and time ``at``."""
    shift = at - record["occurred_at"]
    moved = {**record, **_base(tenant, site, at, *parts)}
    if "last_seen_at" in record:
        moved["last_seen_at"] = record["last_seen_at"] + shift
    if "route" in record:
        moved["route"] = [{**w, "eta": w["eta"] + shift} for w in record["route"]]
    return moved


def traffic_day(tenant: str, base: int) -> tuple[list[Record], list[Record], list[dict[str, Any]]]:
    """Two sites: four robots traffic coordinates (:data:`GRID_ROBOTS`) cross a 3 x 4 grid corner to
    corner, obeying their grants (recorded from ``traffic_world``), and two Open-RMF robots traffic monitors
    (:data:`TRAFFIC_RMF_ROBOTS`) meet head on in a corridor: the one with the lower priority task is held,
    then resumed once the other has passed.

    Returns what must reach traffic before the robots report (the two maps, the corridor's tasks), the
    robots' statuses, and the GRANTs the pure traffic step gave the grid's robots.
    """
    grid = {**grid_map(3, 4), **_base(tenant, GRID_SITE, base - 60_000, "map")}
    world = _Recorder(grid, tenant, base)
    corners = (("r0c0", "r2c3"), ("r2c3", "r0c0"), ("r0c3", "r2c0"), ("r2c0", "r0c3"))
    for robot, (start, goal) in zip(GRID_ROBOTS, corners, strict=True):
        world.add(robot, start, [goal])
    world.run(25)
    assert world.collisions == [] and all(bot.arrived for bot in world.bots.values()), world.collisions
    corridor = _moved(CORRIDOR, tenant, CORRIDOR_SITE, base - 60_000, "map")
    first, second = TRAFFIC_RMF_ROBOTS
    before = [
        Record("site.maps", GRID_SITE, grid, grid["occurred_at"]),
        Record("site.maps", CORRIDOR_SITE, corridor, corridor["occurred_at"]),
    ]
    for task, priority, robot in (("c-hi", 8, first), ("c-lo", 3, second)):
        event = _moved(
            support.task(task, priority, robot_id=robot), tenant, CORRIDOR_SITE, base - 30_000, task
        )
        before.append(Record("task.events", task, event, event["occurred_at"]))
    after = [Record("robot.status", s["robot_id"], s, s["occurred_at"]) for s in world.statuses]

    def rmf(status: dict[str, Any], at: int) -> Record:
        record = {
            **_moved(status, tenant, CORRIDOR_SITE, at, status["robot_id"], status["seq"]),
            "reason": "RMF",
        }
        return Record("robot.status", record["robot_id"], record, at)

    at = base + 40_000
    after.append(rmf(support.status(first, "WS", EAST, task_id="c-hi"), at))
    after.append(rmf(support.status(second, "ES", WEST, task_id="c-lo"), at))
    # the first has passed the corridor and stands in the east: the second may go
    after.append(rmf(support.status(first, "EA", [], seq=2, task_id="c-hi", state="IDLE"), at + 15_000))
    grants = [g for g in world.grants if g["site_id"] == GRID_SITE]
    return before, after, grants


# -- rmf-ingest --------------------------------------------------------------------------------------------
def rmf_day(base: int) -> list[Record]:
    """40 s of two RMF fleet adapters: tiny1 idles, works a task and idles again while it drives round;
    tiny2 charges standing still (its battery alone changes); dbot1 stands idle (heartbeats only). A state
    re-sent on reconnect, an older one and two bad records (not JSON; a key that is not the fleet) too."""
    out: list[Record] = []
    t0 = base / 1000
    for k in range(41):
        t, at = t0 + k, base + k * 1_000
        status, task = ("working", "delivery.dispatch-1") if 15 <= k < 30 else ("idle", "")
        tiny2 = robot_state("tiny2", t, status="charging", battery=round(0.3 + 0.01 * k, 2))
        tiny2["location"] = {"map": "L1", "x": 3.0, "y": 4.0, "yaw": 0.0}
        tiny1 = robot_state("tiny1", t, battery=round(0.9 - 0.005 * k, 3), status=status, task_id=task)
        tiny = orjson.dumps(fleet_state("tinyRobot", {"tiny1": tiny1, "tiny2": tiny2}))
        out.append(Record("rmf.fleet_states", "tinyRobot", tiny, at))
        if k % 2 == 0:
            dbot1 = robot_state("dbot1", t, battery=0.6)
            dbot1["location"] = {"map": "L2", "x": 1.0, "y": 1.0, "yaw": 1.5}
            message = orjson.dumps(fleet_state("deliveryRobot", {"dbot1": dbot1}))
            out.append(Record("rmf.fleet_states", "deliveryRobot", message, at + 300))
        if k == 10:
            out.append(Record("rmf.fleet_states", "tinyRobot", tiny, at + 500))  # re-sent on reconnect
        if k == 20:
            old = fleet_state("tinyRobot", {"tiny1": robot_state("tiny1", t - 3, status="error")})
            out.append(Record("rmf.fleet_states", "tinyRobot", orjson.dumps(old), at + 600))
    out.append(Record("rmf.fleet_states", "tinyRobot", b"{not json", base + 5_500))
    stray = orjson.dumps(fleet_state("deliveryRobot", {"dbot9": robot_state("dbot9", t0 + 7)}))
    out.append(Record("rmf.fleet_states", "wrong", stray, base + 7_000))
    return out


def rmf_expected(records: list[Record], config: RmfIngestConfig) -> dict[str, dict[str, list[Any]]]:
    """What rmf-ingest's pure counterpart makes of the day: topic -> key -> records, in order per key."""
    memories: dict[str, dict[str, Any]] = defaultdict(dict)
    out: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        try:
            message = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            continue
        if message["data"]["name"] != record.key:
            continue
        for o in fleet_outputs(memories[record.key], message, config, record.timestamp):
            out[o.topic][o.key].append(o.value)
    return {topic: dict(by_key) for topic, by_key in out.items()}
