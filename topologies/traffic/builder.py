"""``build_traffic``: the thin Quix adapter around the pure per-site transition (``machine.step``).

Inputs: ``robot.status`` (key robot_id), ``site.maps`` (key site_id) and, optionally, ``task.events``
(key task_id) are concatenated first and then re-keyed by ``site_id`` with one ``group_by``, so a site's
robots, tasks and map live in one key's state (equal partition counts are required). ``site.maps`` goes
through the repartition topic too: its own key bytes and partitioner need not match the repartition
topic's (JSON keys, murmur2), so only re-keying every input alike puts a site in one partition.

State of one site key (store of the concatenated stream; sub-key names are stable — renaming one
orphans the stored state):

- ``meta``: site/tenant ids, event-time clock, prune/scan times and a revision counter (written on
  every message: one small write);
- ``map``: the latest SiteMap (written when it changes);
- ``robots``: the index of robot ids; ``robot:<id>``: one robot entry each (written when it changes);
- ``tasks``: the index of task ids; ``task:<id>``: the task's priority.

The site model and the reservation table are derived: :class:`SiteCache` keeps them in memory per
site and rebuilds them from the sub-keys when the stored revision differs from the cached one (first
message after a start or a rebalance that moved the partition away and back). One RobotStatus thus
costs O(1) state I/O: ``meta`` plus the entries it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from quixstreams import State
from quixstreams.dataframe import StreamingDataFrame

from schemas.errors import RejectedRecord
from topologies.traffic import machine
from topologies.traffic.config import TrafficConfig
from topologies.traffic.records import ALERTS, CONFLICTS, DECISIONS, Output
from topologies.traffic.state import SiteState

__all__ = [
    "OUTPUT_KEY_FIELDS",
    "OUTPUT_TOPICS",
    "STATE_MAP",
    "STATE_META",
    "STATE_ROBOTS",
    "STATE_TASKS",
    "SiteCache",
    "TrafficStep",
    "build_traffic",
]

logger = logging.getLogger(__name__)

STATE_META = "meta"
STATE_MAP = "map"
STATE_ROBOTS = "robots"
STATE_TASKS = "tasks"
_ROBOT = "robot:"
_TASK = "task:"

#: Catalog names of the outputs, and the field of each output record that is its Kafka key.
OUTPUT_TOPICS = (DECISIONS, CONFLICTS, ALERTS)
OUTPUT_KEY_FIELDS = {DECISIONS: "robot_id", CONFLICTS: "site_id", ALERTS: "subject_id"}

_STATUS = machine.STATUS


class SiteCache:
    """In-memory :class:`SiteState` per site key, each with the state revision it reflects."""

    def __init__(self) -> None:
        self._sites: dict[str, tuple[int, SiteState]] = {}

    def get(self, key: str, rev: int) -> SiteState | None:
        hit = self._sites.get(key)
        return hit[1] if hit is not None and hit[0] == rev else None

    def put(self, key: str, rev: int, site: SiteState) -> None:
        self._sites[key] = (rev, site)

    def clear(self) -> None:
        self._sites.clear()


def load(state: State, config: TrafficConfig) -> SiteState:
    """Rebuild a site from its sub-keys (after a start or a rebalance)."""
    meta = state.get(STATE_META) or {}
    site = SiteState(config=config, site_id=meta.get("site_id", ""), tenant_id=meta.get("tenant_id", ""))
    site.clock = meta.get("clock", 0)
    site.next_prune = meta.get("next_prune", 0)
    site.next_scan = meta.get("next_scan", 0)
    site.site_map = state.get(STATE_MAP)
    for rid in state.get(STATE_ROBOTS) or ():
        entry = state.get(_ROBOT + rid)
        if entry is not None:
            site.robots[rid] = entry
    for task_id in state.get(STATE_TASKS) or ():
        priority = state.get(_TASK + task_id)
        if priority is not None:
            site.tasks[task_id] = priority
    site.rebuild()
    return site


def store(state: State, site: SiteState, rev: int) -> None:
    """Write what the last step changed, and the new revision."""
    robots_changed = False
    for rid in site.dirty_robots:
        entry = site.robots.get(rid)
        if entry is None:
            state.delete(_ROBOT + rid)
        else:
            robots_changed |= not state.exists(_ROBOT + rid)
            state.set(_ROBOT + rid, entry)
        robots_changed |= entry is None
    if robots_changed:
        state.set(STATE_ROBOTS, sorted(site.robots))
    if site.dirty_tasks:
        for task_id in site.dirty_tasks:
            if task_id in site.tasks:
                state.set(_TASK + task_id, site.tasks[task_id])
            else:
                state.delete(_TASK + task_id)
        state.set(STATE_TASKS, sorted(site.tasks))
    if site.dirty_map:
        state.set(STATE_MAP, site.site_map)
    state.set(
        STATE_META,
        {
            "site_id": site.site_id,
            "tenant_id": site.tenant_id,
            "clock": site.clock,
            "next_prune": site.next_prune,
            "next_scan": site.next_scan,
            "rev": rev,
        },
    )
    site.dirty_robots.clear()
    site.dirty_tasks.clear()
    site.dirty_map = False


class TrafficStep:
    """One input of a site applied to its state: load (from cache), step, store. Stateless itself."""

    def __init__(self, config: TrafficConfig, cache: SiteCache | None = None) -> None:
        self.config = config
        self.cache = cache or SiteCache()

    def __call__(
        self, item: tuple[str, Any], key: Any, _timestamp: int, _headers: Any, state: State
    ) -> list[Output]:
        kind, value = item
        if value is None:
            return []
        site_key = str(key)
        if value.get("site_id") not in (None, site_key):
            raise RejectedRecord(f"record of site {value.get('site_id')!r} under site key {site_key!r}")
        meta = state.get(STATE_META) or {}
        rev = int(meta.get("rev", 0))
        site = self.cache.get(site_key, rev)
        if site is None:
            site = load(state, self.config)
            logger.info(
                "traffic site %s loaded from state: %d robots",
                site_key,
                len(site.robots),
                extra={"site_id": site_key},
            )
        if kind == _STATUS and site.robots.get(value["robot_id"], {}).get("seq", -1) >= value["seq"]:
            return []  # duplicate or stale: no state write at all
        _, out = machine.step(site, value, int(value.get("occurred_at") or 0))
        store(state, site, rev + 1)
        self.cache.put(site_key, rev + 1, site)
        return out


def _tagged(value: dict[str, Any]) -> tuple[str, Any]:
    """``(kind, value)``: which input a record is, told by its fields (``machine.classify``)."""
    return machine.classify(value), value


def _present(value: Any) -> bool:
    return value is not None and bool(value.get("site_id"))


def _is_for(topic: str) -> Callable[[Output], bool]:
    return lambda out: out.topic == topic


def _value(out: Output) -> dict[str, Any]:
    return out.value


def _site_of(value: Any) -> Any:
    return value["site_id"]


def build_traffic(
    status_sdf: StreamingDataFrame,
    *,
    maps_sdf: StreamingDataFrame,
    tasks_sdf: StreamingDataFrame | None = None,
    config: TrafficConfig,
    cache: SiteCache | None = None,
) -> dict[str, StreamingDataFrame]:
    """Wire the traffic topology; returns one dataframe of plain records per output catalog topic.

    :param status_sdf: ``robot.status`` (RobotStatus dicts, key robot_id); re-keyed by site here.
    :param maps_sdf: ``site.maps`` (SiteMap dicts, key site_id); re-keyed with the others here.
    :param tasks_sdf: ``task.events`` (TaskEvent dicts, key task_id; re-keyed by site here), for task
        priorities; without it every robot with a task has the default priority 5.
    :param config: margins and thresholds.
    :param cache: the in-memory site cache (one per process; a new one by default).
    :returns: ``{topic: sdf}`` for ``OUTPUT_TOPICS``; produce each with key ``OUTPUT_KEY_FIELDS[topic]``.
    """
    # Concatenate first and re-key once (as dispatch does): one repartition topic for all inputs, so a
    # map and the statuses of its site share a partition and a key, and a changelog name that stays
    # short (per-input group_bys stack repartition names into it, past 255 chars with longer prefixes).
    merged = status_sdf.concat(maps_sdf)
    if tasks_sdf is not None:
        merged = merged.concat(tasks_sdf)
    merged = merged.filter(_present).group_by(_site_of, name="site").apply(_tagged)
    step = TrafficStep(config, cache)
    routed = merged.apply(step, stateful=True, metadata=True, expand=True)
    return {name: routed.filter(_is_for(name)).apply(_value) for name in OUTPUT_TOPICS}
