"""``build_dispatch``: the thin Quix adapter around the pure site transition (``machine.step``).

Inputs ``robot.status``, ``task.events``, ``site.maps`` and ``robot.registry`` are concatenated and
re-keyed to ``site_id`` with one ``group_by`` (tombstones, which carry no site, are dropped first), so
every record of a site is processed with that site's state.

State of a site (Quix state of the site key; renaming a sub-key orphans it)::

    meta               {"tenant_id", "site_id"}
    map                the latest SiteMap dict
    robot:<id>         one robot entry          task:<id>   one task entry
    index:robots       sorted robot ids         index:tasks sorted task ids
    gen                a token rewritten by every update

The site model lives in memory (:class:`DispatchStep` caches one :class:`SiteState` per site). A message
reads ``gen`` (one get) and, when it matches the cache, applies the step to the cached model and writes
only the entries the step changed: O(1) state I/O per update (the index sub-keys are rewritten only
when a robot or task is added or removed). After a rebalance, an aborted checkpoint or a restart the
token differs and the model is rebuilt from the sub-keys.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from quixstreams.dataframe import StreamingDataFrame

from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.machine import Assigner, greedy_assigner, step
from topologies.dispatch.state import SiteState

__all__ = [
    "GEN",
    "INDEX_ROBOTS",
    "INDEX_TASKS",
    "MAP",
    "META",
    "DispatchStep",
    "KeyState",
    "build_dispatch",
    "decision_key",
    "load_site",
]

logger = logging.getLogger(__name__)

META, MAP, GEN = "meta", "map", "gen"
INDEX_ROBOTS, INDEX_TASKS = "index:robots", "index:tasks"
_ROBOT, _TASK = "robot:", "task:"


class KeyState(Protocol):
    """The part of a Quix ``State`` the adapter uses (get/set/delete by sub-key)."""

    def get(self, key: str, default: Any = None) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...
    def delete(self, key: str) -> None: ...


def decision_key(decision: dict[str, Any]) -> str:
    """Kafka key of a Decision on ``scheduler.decisions``: the task id, else the robot id."""
    return str(decision.get("task_id") or decision["robot_id"])


def load_site(state: KeyState, config: DispatchConfig) -> SiteState:
    """Rebuild a site's model from its sub-keys (after a rebalance or a restart)."""
    meta = state.get(META) or {}
    site = SiteState(config=config, tenant_id=meta.get("tenant_id"), site_id=meta.get("site_id"))
    site.site_map = state.get(MAP)
    for rid in state.get(INDEX_ROBOTS) or ():
        robot = state.get(_ROBOT + rid)
        if robot is not None:
            site.robots[rid] = robot
    for tid in state.get(INDEX_TASKS) or ():
        task = state.get(_TASK + tid)
        if task is not None:
            site.tasks[tid] = task
    site.reindex()
    return site


def _store(site: SiteState, state: KeyState) -> None:
    dirty, index_dirty = site.take_changes()
    for kind, ident in sorted(dirty):
        if kind == "robot":
            state.set(_ROBOT + ident, site.robots[ident])
        elif kind == "task":
            task = site.tasks.get(ident)
            if task is None:
                state.delete(_TASK + ident)
            else:
                state.set(_TASK + ident, task)
        elif kind == "map":
            state.set(MAP, site.site_map)
        elif kind == "meta":
            state.set(META, {"tenant_id": site.tenant_id, "site_id": site.site_id})
    if "robots" in index_dirty:
        state.set(INDEX_ROBOTS, sorted(site.robots))
    if "tasks" in index_dirty:
        state.set(INDEX_TASKS, sorted(site.tasks))


class DispatchStep:
    """One record of a site applied to the cached model; writes back only what changed."""

    def __init__(self, config: DispatchConfig, assigner: Assigner = greedy_assigner) -> None:
        self.config = config
        self.assigner = assigner
        self._sites: dict[Any, tuple[str | None, SiteState, int]] = {}
        self.rebuilds = 0

    def __call__(self, value: dict[str, Any], key: Any, _timestamp: int, _headers: Any, state: Any) -> list:
        return self.apply(value, key, state)

    def apply(self, value: dict[str, Any], key: Any, state: KeyState) -> list[dict[str, Any]]:
        token = state.get(GEN)
        cached = self._sites.get(key)
        if cached is None or cached[0] != token:
            if cached is not None:
                logger.info("site %s: state changed under the cache, rebuilding", key)
            site, last_now = load_site(state, self.config), 0
            self.rebuilds += 1
        else:
            _, site, last_now = cached
        now = max(int(value.get("occurred_at") or 0), last_now)
        try:
            site, decisions = step(site, value, now, self.assigner)
        except Exception:
            self._sites.pop(key, None)  # the model may be half-updated: rebuild it next time
            raise
        if site.dirty or site.index_dirty:
            _store(site, state)
            token = uuid.uuid4().hex
            state.set(GEN, token)
        self._sites[key] = (token, site, now)
        return decisions

    def forget(self) -> None:
        """Drop every cached site (e.g. on partition revocation)."""
        self._sites.clear()


def _site_of(value: dict[str, Any]) -> str:
    return str(value["site_id"])


def _present(value: Any) -> bool:
    return value is not None and value.get("site_id") is not None


def build_dispatch(
    status_sdf: StreamingDataFrame,
    tasks_sdf: StreamingDataFrame,
    maps_sdf: StreamingDataFrame,
    registry_sdf: StreamingDataFrame,
    *,
    config: DispatchConfig,
    assigner: Assigner = greedy_assigner,
    step_factory: Callable[[DispatchConfig, Assigner], DispatchStep] = DispatchStep,
) -> StreamingDataFrame:
    """Wire the dispatch topology; returns a dataframe of Decision dicts for ``scheduler.decisions``.

    Produce it with key :func:`decision_key`. ``assigner`` solves batches (several free robots and ready
    tasks at once), e.g. the gRPC planner behind its circuit breaker; single matches are always greedy.
    """
    # Concatenate first and re-key once: one repartition topic, and a changelog name that stays short
    # (names derived from four stacked repartition topics exceed Kafka's 255 characters).
    merged = status_sdf.concat(tasks_sdf).concat(maps_sdf).concat(registry_sdf)
    merged = merged.filter(_present).group_by(_site_of, name="site")
    return merged.apply(step_factory(config, assigner), stateful=True, metadata=True, expand=True)
