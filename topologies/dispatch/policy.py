"""The dispatch policy: the cost of robot r doing task t, greedy and optimal batch assignment, chargers.

Cost (seconds-equivalent, lower is better), for robot r at node n_r and task t::

    travel(r, t)  = T(n_r -> pickup) + T(pickup -> dropoff)            shortest paths, seconds
    energy(r, t)  = travel(r, t) * battery_per_s                        state of charge used
    usable(r)     = battery(r) - battery_reserve
    feasible      = required_capabilities(t) ⊆ capabilities(r)   and   energy <= usable
                    and the task's fleet/robot pins match       and   every node is reachable
    cost(r, t)    = travel(r, t)
                  + battery_weight_s * energy / usable                   (0 .. battery_weight_s)
                  + lateness_weight * max(0, now + travel - deadline)    (seconds late, if a deadline)
                  - urgency(t)
    urgency(t)    = priority_weight_s * priority
                  + deadline_weight_s * clamp(1 - slack / deadline_horizon_s, 0, 1)
                        with slack = deadline - now - T(pickup -> dropoff)   (0 without a deadline)
                  + age_weight * min(now - queued_at, age_cap_s)

A task without a pickup starts at its dropoff (or where the robot is); without a dropoff it ends at its
pickup. ``urgency`` does not depend on the robot, so it orders tasks (higher first) and, in the optimal
assignment, decides which tasks are served when robots are scarce.

Greedy (in-process): tasks in order of (urgency desc, priority desc, created_at, task_id), each to its
cheapest feasible free robot, ties to the smallest robot_id. Optimal (the planner): minimum total cost
over the same matrix with ``scipy.optimize.linear_sum_assignment``; infeasible pairs cost ``INFEASIBLE``
and are dropped from the answer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from schemas.sitegraph import SiteGraph
from topologies.dispatch.config import DispatchConfig

__all__ = [
    "INFEASIBLE",
    "Assignment",
    "CostModel",
    "CostTable",
    "RobotView",
    "TaskView",
    "greedy",
    "nearest_free_charger",
    "optimal",
    "task_order",
]

INFEASIBLE = 1e12
"""Cost given to infeasible pairs in the optimal assignment (far above any feasible total)."""


@dataclass(frozen=True, slots=True)
class RobotView:
    """What the policy needs of a free robot."""

    robot_id: str
    node: str
    battery: float
    capabilities: frozenset[str] = frozenset()
    fleet_id: str | None = None


@dataclass(frozen=True, slots=True)
class TaskView:
    """What the policy needs of a ready task (times in epoch ms)."""

    task_id: str
    priority: int = 5
    pickup: str | None = None
    dropoff: str | None = None
    required: frozenset[str] = frozenset()
    deadline: int | None = None
    created_at: int = 0
    queued_at: int = 0
    fleet_id: str | None = None
    robot_id: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    robot_id: str
    task_id: str
    cost: float
    travel_s: float


@dataclass(frozen=True, slots=True)
class CostTable:
    """Costs of robots (rows, sorted by robot_id) x tasks (columns, in task order); inf = infeasible."""

    robots: list[RobotView]
    tasks: list[TaskView]
    cost: np.ndarray
    travel: np.ndarray
    urgency: np.ndarray
    model: CostModel | None = None
    """The model that computed the table (graph, config, now): what an external planner needs."""


def task_order(tasks: Sequence[TaskView], urgency: np.ndarray) -> np.ndarray:
    """Indices of ``tasks`` from the most to the least urgent: by (urgency desc, priority desc,
    created_at, task_id), so ties are deterministic."""
    if not len(tasks):
        return np.zeros(0, dtype=int)
    keys = (
        np.array([t.task_id for t in tasks]),
        np.array([t.created_at for t in tasks], dtype=np.int64),
        -np.array([t.priority for t in tasks], dtype=np.int64),
        -np.round(urgency, 6),
    )
    return np.lexsort(keys)


class CostModel:
    """The cost function over one site graph at one instant ``now_ms``."""

    def __init__(self, graph: SiteGraph, config: DispatchConfig, now_ms: int) -> None:
        self.graph = graph
        self.config = config
        self.now_ms = now_ms

    def _service(self, tasks: Sequence[TaskView]) -> np.ndarray:
        """T(pickup -> dropoff) per task (0 without one of them, inf when unknown/unreachable)."""
        g = self.graph
        index = g.index
        both = [j for j, t in enumerate(tasks) if t.pickup and t.dropoff]
        out = np.zeros(len(tasks))
        if not both:
            return out
        src = np.array([index.get(tasks[j].pickup or "", -1) for j in both])
        dst = np.array([index.get(tasks[j].dropoff or "", -1) for j in both])
        known = (src >= 0) & (dst >= 0)
        values = np.full(len(both), np.inf)
        if known.any():
            sources = np.unique(src[known])
            g.prepare(sources.tolist())
            rows = np.stack([g.seconds_from(int(i)) for i in sources])
            values[known] = rows[np.searchsorted(sources, src[known]), dst[known]]
        out[np.array(both)] = values
        return out

    def urgency(self, tasks: Sequence[TaskView], service: np.ndarray | None = None) -> np.ndarray:
        """urgency(t) per task (see the module docstring)."""
        cfg, now = self.config, self.now_ms
        service = self._service(tasks) if service is None else service
        priority = np.array([t.priority for t in tasks], dtype=float)
        deadline = np.array([np.nan if t.deadline is None else t.deadline for t in tasks], dtype=float)
        queued = np.array([t.queued_at for t in tasks], dtype=float)
        out = cfg.priority_weight_s * priority
        finite_service = np.where(np.isfinite(service), service, 0.0)
        slack = (deadline - now) / 1000.0 - finite_service
        pressure = np.clip(1.0 - slack / cfg.deadline_horizon_s, 0.0, 1.0)
        out = out + np.where(np.isnan(deadline), 0.0, cfg.deadline_weight_s * pressure)
        age = np.minimum(np.maximum(0.0, (now - queued) / 1000.0), cfg.age_cap_s)
        return out + cfg.age_weight * age

    def table(self, robots: Iterable[RobotView], tasks: Iterable[TaskView]) -> CostTable:
        """The cost matrix; rows sorted by robot_id, columns in task order (most urgent first)."""
        g, cfg = self.graph, self.config
        rlist = sorted(robots, key=lambda r: r.robot_id)
        tlist = list(tasks)
        service = self._service(tlist)
        urgency = self.urgency(tlist, service)
        order = task_order(tlist, urgency)
        tlist = [tlist[i] for i in order.tolist()]
        service, urgency = service[order], urgency[order]
        n_r, n_t = len(rlist), len(tlist)
        if n_r == 0 or n_t == 0:
            empty = np.zeros((n_r, n_t))
            return CostTable(rlist, tlist, empty, empty, urgency, self)

        r_idx = np.array([g.index.get(r.node, -1) for r in rlist])
        firsts = [t.pickup or t.dropoff for t in tlist]
        t_first = np.array([g.index.get(f, -1) if f else -2 for f in firsts])
        to_first = np.zeros((n_r, n_t))
        known_r = r_idx >= 0
        has_target = t_first >= 0
        if known_r.any() and has_target.any():
            to_first[np.ix_(known_r, has_target)] = self._travel(r_idx[known_r], t_first[has_target])
        to_first[~known_r, :] = np.inf
        to_first[:, t_first == -1] = np.inf  # a named node that is not on the map
        travel = to_first + service[None, :]

        battery = np.array([r.battery for r in rlist])
        usable = battery - cfg.battery_reserve
        energy = travel * cfg.battery_per_s
        with np.errstate(divide="ignore", invalid="ignore"):
            battery_pen = cfg.battery_weight_s * energy / np.where(usable > 0, usable, np.nan)[:, None]
        feasible = np.isfinite(travel) & (usable[:, None] > 0) & (energy <= usable[:, None])
        feasible &= self._eligible(rlist, tlist)

        deadline = np.array([np.nan if t.deadline is None else float(t.deadline) for t in tlist])
        late_s = np.maximum(0.0, (self.now_ms + travel * 1000.0 - deadline[None, :]) / 1000.0)
        late_s = np.where(np.isnan(late_s), 0.0, late_s)
        with np.errstate(invalid="ignore"):
            cost = travel + battery_pen + cfg.lateness_weight * late_s - urgency[None, :]
        cost = np.where(feasible, cost, np.inf)
        return CostTable(rlist, tlist, cost, travel, urgency, self)

    def _travel(self, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Seconds from each source node to each target node: one shortest-path tree per distinct source
        (from it) or per distinct target (to it, over the reversed lanes), whichever side has fewer nodes:
        a task created while a thousand robots are free costs one tree, not a thousand."""
        g = self.graph
        distinct_sources, distinct_targets = set(sources.tolist()), set(targets.tolist())
        if len(distinct_targets) < len(distinct_sources):
            columns = {t: g.seconds_to(t)[sources] for t in sorted(distinct_targets)}
            return np.stack([columns[int(t)] for t in targets], axis=1)
        if len(distinct_sources) <= g.cached_rows:
            g.prepare(distinct_sources)  # one scipy call for the rows not cached yet
        rows = {s: g.seconds_from(s)[targets] for s in sorted(distinct_sources)}
        return np.stack([rows[int(s)] for s in sources])

    @staticmethod
    def _eligible(robots: list[RobotView], tasks: list[TaskView]) -> np.ndarray:
        """Capabilities and pins, computed once per distinct capability set."""
        cap_sets = sorted({r.capabilities for r in robots}, key=sorted)
        req_sets = sorted({t.required for t in tasks}, key=sorted)
        ok = np.array([[req <= caps for req in req_sets] for caps in cap_sets], dtype=bool)
        ci = np.array([cap_sets.index(r.capabilities) for r in robots])
        ri = np.array([req_sets.index(t.required) for t in tasks])
        mask = ok[np.ix_(ci, ri)]
        for j, t in enumerate(tasks):
            if t.fleet_id is not None or t.robot_id is not None:
                for i, r in enumerate(robots):
                    if (t.fleet_id is not None and r.fleet_id != t.fleet_id) or (
                        t.robot_id is not None and r.robot_id != t.robot_id
                    ):
                        mask[i, j] = False
        return mask

    def pair(self, robot: RobotView, task: TaskView) -> float | None:
        """cost(robot, task), or None when infeasible."""
        value = float(self.table([robot], [task]).cost[0, 0])
        return value if math.isfinite(value) else None


def greedy(table: CostTable) -> list[Assignment]:
    """Most urgent task first, each to its cheapest feasible robot not yet used."""
    out: list[Assignment] = []
    n_r = len(table.robots)
    if n_r == 0:
        return out
    free = np.ones(n_r, dtype=bool)
    for j in range(len(table.tasks)):
        column = np.where(free, table.cost[:, j], np.inf)
        i = int(np.argmin(column))
        if not math.isfinite(column[i]):
            continue
        free[i] = False
        out.append(
            Assignment(
                table.robots[i].robot_id, table.tasks[j].task_id, float(column[i]), float(table.travel[i, j])
            )
        )
        if not free.any():
            break
    return out


def optimal(table: CostTable) -> list[Assignment]:
    """Minimum total cost assignment of the same table (Hungarian / LAPJV via scipy)."""
    if not table.robots or not table.tasks:
        return []
    finite = np.isfinite(table.cost)
    if not finite.any():
        return []
    matrix = np.where(finite, table.cost, INFEASIBLE)
    rows, cols = linear_sum_assignment(matrix)
    out = [
        Assignment(
            table.robots[i].robot_id,
            table.tasks[j].task_id,
            float(table.cost[i, j]),
            float(table.travel[i, j]),
        )
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
        if finite[i, j]
    ]
    return sorted(out, key=lambda a: (a.task_id, a.robot_id))


def nearest_free_charger(
    graph: SiteGraph, node: str, free: Iterable[tuple[str, str]]
) -> tuple[str, str, float] | None:
    """(charger_id, node_id, travel_s) of the nearest reachable free charger, ties by charger id."""
    best: tuple[float, str, str] | None = None
    for charger_id, charger_node in free:
        seconds = graph.travel_s(node, charger_node)
        if math.isfinite(seconds) and (best is None or (seconds, charger_id) < (best[0], best[1])):
            best = (seconds, charger_id, charger_node)
    return None if best is None else (best[1], best[2], best[0])
