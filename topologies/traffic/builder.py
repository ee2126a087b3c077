"""The traffic topology's adapter to the kernel: feeds re-key every input by site into the inbox, one
:class:`TrafficStep` per site around the pure transition (``machine.step``).

Inputs: ``robot.status`` (key robot_id), ``site.maps`` (key site_id) and ``task.events`` (key task_id,
for task priorities) are each fed, tagged with their kind, into the processor's inbox (``traffic.inbox``)
keyed by ``site_id`` (tombstones, which carry no site, are left out), so a site's robots, tasks and map
live in one key's state. The store belongs to the inbox alone: its name does not change with the inputs.

State of one site key (sub-keys are stable — renaming one orphans the stored state):

- ``meta``: site/tenant ids, event-time clock, prune/scan times (written on every record: one small write);
- ``map``: the latest SiteMap (written when it changes);
- ``robots``: the index of robot ids; ``robot:<id>``: one robot entry each (written when it changes);
- ``tasks``: the index of task ids; ``task:<id>``: the task's priority;
- ``gen``: the kernel's generation token of the cached model.

The site model and the reservation table are derived: a :class:`~topologies.kernel.ModelCache` keeps them
in memory per site, rebuilt from the sub-keys when the stored token differs from the cached one (first
record after a start or a rebalance) and dropped when a step raises. One RobotStatus thus costs O(1)
state I/O: the token, ``meta`` and the entries it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from quixstreams.dataframe import StreamingDataFrame

from schemas.catalog import inbox
from schemas.errors import RejectedRecord
from topologies.kernel import Decode, KeyState, ModelCache, Output, build_step, feeds, rekey
from topologies.traffic import machine
from topologies.traffic.config import OWNER, TrafficConfig
from topologies.traffic.records import ALERTS, CONFLICTS, DECISIONS
from topologies.traffic.state import SiteState

__all__ = [
    "INBOX",
    "KINDS",
    "OUTPUT_TOPICS",
    "STATE_MAP",
    "STATE_META",
    "STATE_ROBOTS",
    "STATE_TASKS",
    "TrafficStep",
    "build_traffic",
    "load",
    "store",
]

logger = logging.getLogger(__name__)

STATE_META = "meta"
STATE_MAP = "map"
STATE_ROBOTS = "robots"
STATE_TASKS = "tasks"
_ROBOT = "robot:"
_TASK = "task:"

INBOX = inbox(OWNER)
#: Catalog names of the outputs (each output carries its key).
OUTPUT_TOPICS = (DECISIONS, CONFLICTS, ALERTS, INBOX)
#: Kinds of input, one per source topic.
KINDS = (machine.STATUS, machine.MAP, machine.TASK)


def load(state: KeyState, config: TrafficConfig) -> SiteState:
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
    logger.info(
        "traffic site %s loaded from state: %d robots",
        state.key,
        len(site.robots),
        extra={"site_id": state.key},
    )
    return site


def store(state: KeyState, site: SiteState) -> None:
    """Write what the last step changed."""
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
        },
    )
    site.dirty_robots.clear()
    site.dirty_tasks.clear()
    site.dirty_map = False


class TrafficStep:
    """The kernel step: one input of a site applied to its cached model, then stored."""

    def __init__(self, config: TrafficConfig) -> None:
        self.config = config
        self.sites: ModelCache[SiteState] = ModelCache(lambda state: load(state, config))

    def __call__(self, state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        if kind not in KINDS:
            raise RejectedRecord(f"traffic: no input of kind {kind!r}")
        if event.get("site_id") != state.key:
            raise RejectedRecord(f"record of site {event.get('site_id')!r} under site key {state.key!r}")
        site = self.sites.get(state)
        if kind == machine.STATUS and site.robots.get(event["robot_id"], {}).get("seq", -1) >= event["seq"]:
            return []  # duplicate or stale: no state write at all
        _, out = machine.step(site, event, int(event.get("occurred_at") or 0))
        store(state, site)
        return [Output(o.topic, o.key, o.value) for o in out]


def build_traffic(
    *,
    sources: Mapping[str, StreamingDataFrame],
    inbox: StreamingDataFrame,
    decoders: Mapping[str, Decode],
    config: TrafficConfig,
) -> list[StreamingDataFrame]:
    """Wire the traffic topology; returns the dataframes of Outputs to produce to :data:`OUTPUT_TOPICS`.

    :param sources: kind (``status``, ``map``, ``task``) -> the source topic's dataframe (values: bytes);
        without ``task`` every robot with a task has the default priority 5.
    :param inbox: the processor's inbox (``traffic.inbox``).
    :param decoders: kind -> decoder of the source's bytes.
    """
    unknown = set(sources) - set(KINDS)
    if unknown:
        raise ValueError(f"traffic has no inputs of kind {sorted(unknown)}")
    by_site = feeds(sources, inbox=INBOX, forward=lambda kind: rekey(decoders[kind], "site_id"))
    return [*by_site, build_step(TrafficStep(config), inbox=inbox)]
