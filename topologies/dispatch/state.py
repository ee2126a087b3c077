"""The per-site model of the dispatch topology: robots and tasks as plain dicts plus derived indexes.

Persisted (one Quix state sub-key each, see ``builder.py``)::

    map                 the latest SiteMap dict
    robot:<robot_id>    RobotEntry: robot_id, fleet_id, registered, active, capabilities, status, battery,
                        node, x, y, status_at, task_id (booked task), charger, charger_node, charge_seq
    task:<task_id>      TaskEntry: task_id, seq, state, spec, created_at, queued_at, attempt,
                        robot_id (booked robot), booked_seq, confirmed, assign_seq, requeue
    index:robots / index:tasks   sorted id lists (a Quix state cannot be scanned)

Derived in memory (rebuilt by :meth:`SiteState.reindex`): the graph of the map, the free robots (and
which of them stand on a parking spot), the robots with a task, the robots waiting for a charger, the
ready tasks and who holds each charger. ``dirty`` collects the entries a
step changed so the adapter writes only those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict

from schemas.records import SiteMap, TaskSpec, task_spec
from schemas.sitegraph import SiteGraph, graph_for
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.policy import RobotView, TaskView

__all__ = ["READY_STATES", "RobotEntry", "SiteState", "TaskEntry", "new_robot", "robot_view", "task_view"]

READY_STATES = frozenset({"QUEUED"})
_FREE_STATUSES = frozenset({"IDLE", "CHARGING"})


class RobotEntry(TypedDict):
    """A robot of the site (state sub-key ``robot:<robot_id>``)."""

    robot_id: str
    fleet_id: str | None
    registered: bool
    active: bool
    capabilities: list[str]
    status: str
    battery: float
    node: str | None
    x: float | None
    y: float | None
    status_at: int
    task_id: str | None  # the booked task
    charger: str | None  # the charger it is sent to or holds
    charger_node: str | None
    charge_seq: int


class TaskEntry(TypedDict):
    """A task of the site (state sub-key ``task:<task_id>``), from its TaskEvents."""

    task_id: str
    seq: int
    state: str
    spec: TaskSpec | None
    created_at: int
    queued_at: int
    attempt: int
    robot_id: str | None  # the booked robot
    booked_seq: int | None
    confirmed: bool  # the tasks topology confirmed the booking (ASSIGNED to that robot)
    assign_seq: int
    requeue: bool  # waits for its next transition before it is dispatched again


#: What :func:`task_view` reads of a task without a spec.
_NO_SPEC: TaskSpec = task_spec()


def new_robot(robot_id: str) -> RobotEntry:
    return {
        "robot_id": robot_id,
        "fleet_id": None,
        "registered": False,
        "active": True,
        "capabilities": [],
        "status": "UNKNOWN",
        "battery": 0.0,
        "node": None,
        "x": None,
        "y": None,
        "status_at": -1,
        "task_id": None,
        "charger": None,
        "charger_node": None,
        "charge_seq": 0,
    }


def robot_view(robot: RobotEntry) -> RobotView:
    return RobotView(
        robot_id=robot["robot_id"],
        node=robot["node"] or "",
        battery=float(robot["battery"]),
        capabilities=frozenset(robot["capabilities"]),
        fleet_id=robot["fleet_id"],
    )


def task_view(task: TaskEntry) -> TaskView:
    spec = task["spec"] or _NO_SPEC
    return TaskView(
        task_id=task["task_id"],
        priority=int(spec.get("priority", 5)),
        pickup=spec.get("pickup_node"),
        dropoff=spec.get("dropoff_node"),
        required=frozenset(spec.get("required_capabilities") or ()),
        deadline=spec.get("deadline"),
        created_at=int(task["created_at"]),
        queued_at=int(task["queued_at"]),
        fleet_id=spec.get("fleet_id"),
        robot_id=spec.get("robot_id"),
    )


@dataclass
class SiteState:
    """One site's dispatch model. ``step`` updates it in place and records what changed in ``dirty``."""

    config: DispatchConfig = field(default_factory=DispatchConfig)
    tenant_id: str | None = None
    site_id: str | None = None
    clock: int = 0
    site_map: SiteMap | None = None
    robots: dict[str, RobotEntry] = field(default_factory=dict)
    tasks: dict[str, TaskEntry] = field(default_factory=dict)
    # derived
    free: set[str] = field(default_factory=set)
    parked: set[str] = field(default_factory=set)  # free robots on a PARKING node
    booked: set[str] = field(default_factory=set)  # robots with a task
    needs_charge: set[str] = field(default_factory=set)
    ready: set[str] = field(default_factory=set)
    charger_holder: dict[str, str] = field(default_factory=dict)
    views: dict[str, TaskView] = field(default_factory=dict, repr=False)
    # bookkeeping for the adapter
    dirty: set[tuple[str, str]] = field(default_factory=set)
    index_dirty: set[str] = field(default_factory=set)

    _graph: tuple[SiteMap, SiteGraph] | None = field(default=None, repr=False)

    @property
    def graph(self) -> SiteGraph | None:
        """The graph of the current map (kept per map object; built through the per-version cache)."""
        if self.site_map is None:
            return None
        if self._graph is None or self._graph[0] is not self.site_map:
            self._graph = (self.site_map, graph_for(self.site_map, self.config.nominal_speed_mps))
        return self._graph[1]

    # -- derived indexes ---------------------------------------------------------------------------
    def is_free(self, robot: RobotEntry) -> bool:
        """Online, registered and active, not booked, not held at a charger, above the reserve."""
        return (
            robot["registered"]
            and robot["active"]
            and robot["status"] in _FREE_STATUSES
            and robot["task_id"] is None
            and robot["charger"] is None
            and robot["node"] is not None
            and float(robot["battery"]) >= self.config.battery_reserve
        )

    def wants_charge(self, robot: RobotEntry) -> bool:
        return (
            robot["registered"]
            and robot["active"]
            and robot["status"] == "IDLE"
            and robot["task_id"] is None
            and robot["charger"] is None
            and robot["node"] is not None
            and float(robot["battery"]) < self.config.battery_reserve
        )

    def is_ready(self, task: TaskEntry) -> bool:
        return (
            task["state"] in READY_STATES
            and task["robot_id"] is None
            and task["spec"] is not None
            and not task["requeue"]
        )

    def refresh_robot(self, robot_id: str) -> None:
        robot = self.robots.get(robot_id)
        self.free.discard(robot_id)
        self.parked.discard(robot_id)
        self.booked.discard(robot_id)
        self.needs_charge.discard(robot_id)
        if robot is None:
            return
        if robot["task_id"] is not None:
            self.booked.add(robot_id)
        if self.is_free(robot):
            self.free.add(robot_id)
            graph, node = self.graph, robot["node"]
            if graph is not None and node is not None and node in graph and graph.kind(node) == "PARKING":
                self.parked.add(robot_id)
        elif self.wants_charge(robot):
            self.needs_charge.add(robot_id)

    def busy_cap(self) -> int | None:
        """How many robots may have a task before parked robots stay parked (None: no limit); see
        ``DispatchConfig.max_busy_density``."""
        graph, density = self.graph, self.config.max_busy_density
        if graph is None or density <= 0:
            return None
        return max(1, int(density * (len(graph) - len(graph.tips))))

    def task_view(self, task_id: str) -> TaskView:
        """The policy's view of a task, cached until the task changes."""
        view = self.views.get(task_id)
        if view is None:
            view = self.views[task_id] = task_view(self.tasks[task_id])
        return view

    def refresh_task(self, task_id: str) -> None:
        self.views.pop(task_id, None)
        task = self.tasks.get(task_id)
        if task is not None and self.is_ready(task):
            self.ready.add(task_id)
        else:
            self.ready.discard(task_id)

    def reindex(self) -> None:
        """Rebuild every derived index from the entries (after a restore or a map change)."""
        self.free.clear()
        self.parked.clear()
        self.booked.clear()
        self.needs_charge.clear()
        self.ready.clear()
        self.views.clear()
        self.charger_holder = {r["charger"]: rid for rid, r in self.robots.items() if r["charger"]}
        for rid in self.robots:
            self.refresh_robot(rid)
        for tid in self.tasks:
            self.refresh_task(tid)

    # -- changes -----------------------------------------------------------------------------------
    def touch_robot(self, robot_id: str) -> None:
        self.dirty.add(("robot", robot_id))
        self.refresh_robot(robot_id)

    def touch_task(self, task_id: str) -> None:
        self.dirty.add(("task", task_id))
        self.refresh_task(task_id)

    def add_robot(self, robot_id: str) -> RobotEntry:
        robot = self.robots[robot_id] = new_robot(robot_id)
        self.index_dirty.add("robots")
        return robot

    def add_task(self, task: TaskEntry) -> None:
        self.tasks[task["task_id"]] = task
        self.index_dirty.add("tasks")

    def drop_task(self, task_id: str) -> None:
        if self.tasks.pop(task_id, None) is not None:
            self.index_dirty.add("tasks")
        self.dirty.add(("task", task_id))
        self.ready.discard(task_id)
        self.views.pop(task_id, None)

    def take_changes(self) -> tuple[set[tuple[str, str]], set[str]]:
        """The entries and indexes changed since the last call (and forget them)."""
        dirty, index_dirty = self.dirty, self.index_dirty
        self.dirty, self.index_dirty = set(), set()
        return dirty, index_dirty
