"""The dispatch topology on the kernel: feeds re-key every input by site into the inbox, one step per site.

Inputs ``robot.status``, ``task.events``, ``site.maps`` and ``robot.registry`` are each fed, tagged with
their kind, into the processor's inbox (``dispatch.inbox``) keyed by ``site_id`` (tombstones, which carry
no site, are left out), so every record of a site is processed with that site's state. The state store
belongs to the inbox alone: its name does not change when an input is added.

State of a site (sub-keys of the site key; renaming one orphans it)::

    meta               {"tenant_id", "site_id", "clock"}
    map                the latest SiteMap dict
    robot:<id>         one robot entry          task:<id>   one task entry
    index:robots       sorted robot ids         index:tasks sorted task ids
    gen                the kernel's generation token of the cached model

The site model lives in memory (a :class:`~topologies.kernel.ModelCache` of :class:`SiteState`): a record
reads ``gen`` (one get) and, when it matches the cache, applies the step to the cached model and writes
only the entries the step changed: O(1) state I/O per update (the index sub-keys are rewritten only when
a robot or task is added or removed). After a rebalance, an aborted checkpoint or a restart the token
differs and the model is rebuilt from the sub-keys; a step that raises drops it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from quixstreams.dataframe import StreamingDataFrame

from schemas.catalog import SCHEDULER_DECISIONS, inbox
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.machine import KINDS, Assigner, greedy_assigner, step
from topologies.dispatch.state import SiteState
from topologies.kernel import Decode, KeyState, ModelCache, Output, build_step, feeds, rekey

__all__ = [
    "DECISIONS",
    "FEED_KEY",
    "INBOX",
    "INDEX_ROBOTS",
    "INDEX_TASKS",
    "MAP",
    "META",
    "OUTPUT_TOPICS",
    "OWNER",
    "DispatchStep",
    "build_dispatch",
    "decision_key",
    "load_site",
]

#: The field of every input that names its owner, the inbox key (the live feeds and `fleet replay`).
FEED_KEY = "site_id"

logger = logging.getLogger(__name__)

#: The processor (consumer group, state directory, ``dlq.dispatch``, its inbox).
OWNER = "dispatch"
DECISIONS = SCHEDULER_DECISIONS
INBOX = inbox(OWNER)
OUTPUT_TOPICS = (DECISIONS, INBOX)

META, MAP = "meta", "map"
INDEX_ROBOTS, INDEX_TASKS = "index:robots", "index:tasks"
_ROBOT, _TASK = "robot:", "task:"


def decision_key(decision: Mapping[str, Any]) -> str:
    """Kafka key of a Decision on ``scheduler.decisions``: the task id, else the robot id."""
    return str(decision.get("task_id") or decision["robot_id"])


def load_site(state: KeyState, config: DispatchConfig) -> SiteState:
    """Rebuild a site's model from its sub-keys (after a rebalance or a restart)."""
    meta = state.get(META) or {}
    site = SiteState(config=config, tenant_id=meta.get("tenant_id"), site_id=meta.get("site_id"))
    site.clock = int(meta.get("clock") or 0)
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
    state.set(META, {"tenant_id": site.tenant_id, "site_id": site.site_id, "clock": site.clock})
    if "robots" in index_dirty:
        state.set(INDEX_ROBOTS, sorted(site.robots))
    if "tasks" in index_dirty:
        state.set(INDEX_TASKS, sorted(site.tasks))


class DispatchStep:
    """The kernel step: one record of a site applied to its cached model; writes only what changed.

    The site's clock (``now`` of its decisions) is the latest ``occurred_at`` it has seen, kept in state,
    so the decisions of a replay carry the same times."""

    def __init__(self, config: DispatchConfig, assigner: Assigner = greedy_assigner) -> None:
        self.config = config
        self.assigner = assigner
        self.sites: ModelCache[SiteState] = ModelCache(lambda state: load_site(state, config))

    def __call__(self, state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        site = self.sites.get(state)
        site.clock = max(int(event.get("occurred_at") or 0), site.clock)
        site, decisions = step(site, kind, event, site.clock, self.assigner)
        if site.dirty or site.index_dirty:
            _store(site, state)
        return [Output(DECISIONS, decision_key(d), d) for d in decisions]


def build_dispatch(
    *,
    sources: Mapping[str, StreamingDataFrame],
    inbox: StreamingDataFrame,
    decoders: Mapping[str, Decode],
    config: DispatchConfig,
    assigner: Assigner = greedy_assigner,
) -> list[StreamingDataFrame]:
    """Wire the dispatch topology; returns the dataframes of Outputs to produce to :data:`OUTPUT_TOPICS`
    (Decisions with key :func:`decision_key`, and the feeds' inbox records).

    :param sources: kind (``status``, ``task``, ``map``, ``registration``) -> the source topic's dataframe
        (values: bytes).
    :param inbox: the processor's inbox (``dispatch.inbox``).
    :param decoders: kind -> decoder of the source's bytes.
    :param assigner: solves batches (several free robots and ready tasks at once), e.g. the gRPC planner
        behind its circuit breaker; single matches are always greedy.
    """
    unknown = set(sources) - set(KINDS)
    if unknown:
        raise ValueError(f"dispatch has no inputs of kind {sorted(unknown)}")
    by_site = feeds(sources, inbox=INBOX, forward=lambda kind: rekey(decoders[kind], FEED_KEY))
    return [*by_site, build_step(DispatchStep(config, assigner), inbox=inbox)]
