"""A small discrete world for the traffic coordinator's tests: robots that obey their grants exactly.

Each :meth:`World.tick` every robot that may (its grant reaches past where it stands, it is not stalled
or offline) moves one node along what it was granted, then every robot reports a RobotStatus (its node,
its way to its stops), and the traffic step runs on each. GRANTs reach the robots ``delay`` ticks later.
``World.collisions`` counts two robots at one node or swapping over one lane in a tick (never expected).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.sitegraph import SiteGraph, graph_for
from topologies.traffic import TrafficConfig
from topologies.traffic.site import MAP, STATUS, TrafficSite, step

T0 = 1_767_225_600_000
TICK_MS = 1_000


def grid_map(
    rows: int,
    cols: int,
    *,
    missing: Iterable[tuple[int, int]] = (),
    spurs: Iterable[tuple[str, tuple[int, int]]] = (),
    one_way: Iterable[tuple[tuple[int, int], tuple[int, int]]] = (),
    version: int = 1,
) -> dict[str, Any]:
    """A SiteMap of a ``rows`` x ``cols`` grid of nodes ``r{r}c{c}`` 1.5 m apart (two-way lanes), without
    the ``missing`` cells, with dead-end ``spurs`` (node id, attached to cell) and some ``one_way`` lanes."""
    gone = set(missing)
    cells = [(r, c) for r in range(rows) for c in range(cols) if (r, c) not in gone]
    nodes = [{"id": f"r{r}c{c}", "x": c * 1.5, "y": r * 1.5, "kind": "AISLE"} for r, c in cells]
    directed = {(a, b) for a, b in one_way}
    lanes = []
    for r, c in cells:
        for dr, dc in ((0, 1), (1, 0)):
            other = (r + dr, c + dc)
            if other in gone or other[0] >= rows or other[1] >= cols:
                continue
            a, b = (r, c), other
            if (b, a) in directed:
                a, b = b, a
            lanes.append(
                {"id": f"{a}-{b}", "from_node": f"r{a[0]}c{a[1]}", "to_node": f"r{b[0]}c{b[1]}",
                 "bidirectional": (a, b) not in directed}
            )  # fmt: skip
    for node_id, (r, c) in spurs:
        nodes.append({"id": node_id, "x": c * 1.5 + 0.75, "y": r * 1.5 - 1.5, "kind": "PARKING"})
        lanes.append({"id": f"{node_id}-lane", "from_node": f"r{r}c{c}", "to_node": node_id})
    return {
        "event_id": f"map-{version}-{rows}x{cols}-{sorted(gone)}-{list(spurs)}-{sorted(directed)}",
        "tenant_id": "t",
        "site_id": "s",
        "occurred_at": T0,
        "version": version,
        "name": "test grid",
        "nodes": nodes,
        "lanes": lanes,
        "zones": [],
        "chargers": [],
    }


@dataclass
class Bot:
    robot_id: str
    node: str
    stops: list[str] = field(default_factory=list)  # where it wants to go, in order
    granted: list[str] = field(default_factory=list)  # nodes ahead it may drive onto
    seq: int = 0
    offline: bool = False
    stalled_until: int = 0
    status: str = "IDLE"
    arrived: list[str] = field(default_factory=list)


class World:
    def __init__(self, site_map: dict[str, Any], config: TrafficConfig | None = None, delay: int = 1) -> None:
        self.site_map = site_map
        self.graph: SiteGraph = graph_for(site_map, 1.5)
        self.config = config or TrafficConfig(speed_mps=1.5, round_ms=TICK_MS, lookahead_ms=2_000)
        self.site = TrafficSite.new(self.config, "s", "t")
        self.bots: dict[str, Bot] = {}
        self.delay = delay
        self.now = T0
        self.ticks = 0
        self.in_flight: list[tuple[int, dict[str, Any]]] = []
        self.collisions: list[str] = []
        self.grants: list[dict[str, Any]] = []
        self.feed(MAP, site_map)

    def add(self, robot_id: str, node: str, stops: Iterable[str] = ()) -> Bot:
        bot = Bot(robot_id, node, list(stops))
        self.bots[robot_id] = bot
        return bot

    def feed(self, kind: str, record: dict[str, Any]) -> None:
        for out in step(self.site, kind, record, self.now):
            if out.topic == "scheduler.decisions" and out.value["kind"] == "GRANT":
                self.grants.append(out.value)
                self.in_flight.append((self.ticks + self.delay, out.value))
        self.check()

    def check(self) -> None:
        coordinator = self.site.coordinator
        if coordinator is not None:
            coordinator.table.check()

    def route_of(self, bot: Bot) -> list[str]:
        """Its way ahead: what it was granted, then quickest paths through its remaining stops."""
        way = list(bot.granted)
        here = way[-1] if way else bot.node
        for stop in bot.stops:
            if stop in way:
                continue
            way.extend(self.graph.shortest_path(here, stop)[1:])
            here = stop
        return way

    def status(self, bot: Bot) -> dict[str, Any]:
        bot.seq += 1
        route = self.route_of(bot)
        return {
            "event_id": f"{bot.robot_id}-{bot.seq}",
            "tenant_id": "t",
            "site_id": "s",
            "occurred_at": self.now,
            "robot_id": bot.robot_id,
            "fleet_id": "f",
            "status": "OFFLINE"
            if bot.offline
            else bot.status
            if bot.status != "IDLE" or not route
            else "MOVING",
            "reason": "CHANGE",
            "battery": 0.9,
            "pose": {"x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": bot.node},
            "speed": 1.0 if route else 0.0,
            "task_id": None,
            "route": [{"node_id": n, "eta": self.now} for n in route],
            "seq": bot.seq,
            "last_seen_at": self.now,
        }

    def deliver(self) -> None:
        due = [d for t, d in self.in_flight if t <= self.ticks]
        self.in_flight = [(t, d) for t, d in self.in_flight if t > self.ticks]
        for decision in due:
            bot = self.bots.get(decision["robot_id"])
            if bot is None or bot.offline:
                continue
            base = [w["node_id"] for w in decision["route"][: decision["granted"]]]
            if bot.node not in base:
                continue
            ahead = base[base.index(bot.node) + 1 :]
            if len(ahead) >= len(bot.granted):
                bot.granted = ahead

    def tick(self) -> None:
        self.ticks += 1
        self.now += TICK_MS
        self.deliver()
        before = {b.robot_id: b.node for b in self.bots.values()}
        for bot in self.bots.values():
            if bot.offline or bot.stalled_until > self.now or not bot.granted:
                continue
            bot.node = bot.granted.pop(0)
            if bot.stops and bot.node == bot.stops[0]:
                bot.arrived.append(bot.stops.pop(0))
        at: dict[str, str] = {}
        for bot in self.bots.values():
            if bot.node in at:
                self.collisions.append(f"t{self.ticks}: {at[bot.node]} and {bot.robot_id} at {bot.node}")
            at[bot.node] = bot.robot_id
        moves = {
            (before[b.robot_id], b.node): b.robot_id
            for b in self.bots.values()
            if before[b.robot_id] != b.node
        }
        for (a, b), rid in moves.items():
            if (b, a) in moves:
                self.collisions.append(f"t{self.ticks}: {rid} and {moves[(b, a)]} swap over {a}-{b}")
        for bot in sorted(self.bots.values(), key=lambda b: b.robot_id):
            if not bot.offline:
                self.feed(STATUS, self.status(bot))

    def run(self, ticks: int) -> None:
        for _ in range(ticks):
            self.tick()
