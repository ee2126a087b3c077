"""The traffic topology's adapter to the kernel: feeds re-key every input by site into the inbox, one
:class:`TrafficStep` per site around the pure transition (:func:`topologies.traffic.site.step`).

Inputs: ``robot.status`` and ``robot.registry`` (key robot_id), ``site.maps`` (key site_id),
``task.events`` (key task_id, for task priorities) and ``timers.due.traffic`` (planning ticks) are each fed, tagged with their kind,
into the processor's inbox (``traffic.inbox``) keyed by ``site_id`` (tombstones, which carry no site, are
left out), so a site's robots, tasks and map live in one key's state. The store belongs to the inbox
alone: its name does not change with the inputs.

Ticks: robots that wait for a grant stand still, and a standing robot's status changes no more, so the
planner cannot count on statuses to run its rounds. While a coordinated robot wants to move, the step
keeps one timer of the site armed (``traffic:<site>``, through the timer service) for its next round;
the due timer comes back as a ``timer`` input and runs that round.

State of one site key (sub-keys are stable — renaming one orphans the stored state):

- ``meta``: site/tenant ids, event-time clock, prune/scan times, the alert budget and the planner's round
  clock (written on every record: one small write);
- ``map``: the latest SiteMap (written when it changes);
- ``robots``: the index of monitored robot ids (Open-RMF's); ``robot:<id>``: one entry each;
- ``movers``: the index of coordinated robot ids; ``mover:<id>``: what one holds and where it goes;
- ``monitored``: ids of the robots that plan their own traffic;
- ``wanted``: node id -> the robot that is granted it once its holder has left;
- ``tasks``: the index of task ids; ``task:<id>``: the task's priority;
- ``gen``: the kernel's generation token of the cached model.

The site model, the grant table and the reservation table are derived: a
:class:`~topologies.kernel.ModelCache` keeps them in memory per site, rebuilt from the sub-keys when the
stored token differs from the cached one (first record after a start or a rebalance) and dropped when a
step raises. One RobotStatus thus costs O(1) state I/O: the token, ``meta`` and the entries it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict, cast

from quixstreams.dataframe import StreamingDataFrame

from schemas.catalog import TIMERS, inbox
from schemas.errors import RejectedRecord
from schemas.records import RobotStatus
from schemas.sitegraph import graph_for
from topologies import timers
from topologies.kernel import Decode, KeyState, ModelCache, Output, build_step, feeds, rekey
from topologies.traffic import site as traffic_site
from topologies.traffic.config import OWNER, TrafficConfig
from topologies.traffic.coordinate import Coordinator
from topologies.traffic.grants import ACTIVE
from topologies.traffic.records import ALERTS, CONFLICTS, DECISIONS
from topologies.traffic.site import TrafficSite

__all__ = [
    "FEED_KEY",
    "INBOX",
    "KINDS",
    "OUTPUT_TOPICS",
    "STATE_MAP",
    "STATE_META",
    "STATE_MONITORED",
    "STATE_MOVERS",
    "STATE_ROBOTS",
    "STATE_TASKS",
    "SiteMeta",
    "TrafficStep",
    "build_traffic",
    "load",
    "store",
]

#: The field of every input that names its owner, the inbox key (the live feeds and `fleet replay`).
FEED_KEY = "site_id"

logger = logging.getLogger(__name__)

STATE_META = "meta"
STATE_MAP = "map"
STATE_ROBOTS = "robots"
STATE_TASKS = "tasks"
STATE_MOVERS = "movers"
STATE_MONITORED = "monitored"
STATE_WANTED = "wanted"
_ROBOT = "robot:"
_TASK = "task:"
_MOVER = "mover:"

INBOX = inbox(OWNER)
#: Catalog names of the outputs (each output carries its key).
OUTPUT_TOPICS = (DECISIONS, CONFLICTS, ALERTS, TIMERS, INBOX)
#: Kinds of input, one per source topic.
KINDS = (traffic_site.STATUS, traffic_site.REGISTRATION, traffic_site.MAP, traffic_site.TASK, timers.TIMER)


class SiteMeta(TypedDict):
    """The ``meta`` sub-key of a site: its ids and clocks (module doc)."""

    site_id: str
    tenant_id: str
    clock: int
    next_prune: int
    next_scan: int
    alert_tokens: float
    alert_at: int
    alerts_suppressed: int
    tick_due: int | None
    next_round: NotRequired[int]  # with a coordinator (a map) only
    rounds: NotRequired[int]


def load(state: KeyState, config: TrafficConfig) -> TrafficSite:
    """Rebuild a site from its sub-keys (after a start or a rebalance)."""
    meta = cast("SiteMeta", state.get(STATE_META) or {})  # (empty for a new site: each read has a default)
    site = TrafficSite.new(config, meta.get("site_id", ""), meta.get("tenant_id", ""))
    monitor = site.monitor
    monitor.clock = meta.get("clock", 0)
    monitor.next_prune = meta.get("next_prune", 0)
    monitor.next_scan = meta.get("next_scan", 0)
    monitor.alert_tokens = meta.get("alert_tokens", -1.0)
    monitor.alert_at = meta.get("alert_at", 0)
    monitor.alerts_suppressed = meta.get("alerts_suppressed", 0)
    site.tick_due = meta.get("tick_due")
    monitor.site_map = state.get(STATE_MAP)
    for rid in state.get(STATE_ROBOTS) or ():
        entry = state.get(_ROBOT + rid)
        if entry is not None:
            monitor.robots[rid] = entry
    for task_id in state.get(STATE_TASKS) or ():
        priority = state.get(_TASK + task_id)
        if priority is not None:
            monitor.tasks[task_id] = priority
    monitor.rebuild()
    site.monitored = set(state.get(STATE_MONITORED) or ())
    movers = [m for m in (state.get(_MOVER + rid) for rid in state.get(STATE_MOVERS) or ()) if m is not None]
    if monitor.site_map is not None:
        coordinator = site.coordinator = Coordinator(graph_for(monitor.site_map, config.speed_mps), config)
        coordinator.load(movers)
        coordinator.next_round = meta.get("next_round", 0)
        coordinator.rounds = meta.get("rounds", 0)
        index = coordinator.graph.index
        coordinator.wanted = {
            index[node]: rid for node, rid in (state.get(STATE_WANTED) or {}).items() if node in index
        }
        traffic_site.block_monitored(site, monitor.clock)
    logger.info(
        "traffic site %s loaded from state: %d coordinated and %d monitored robots",
        state.key,
        len(movers),
        len(monitor.robots),
        extra={"site_id": state.key},
    )
    return site


def store(state: KeyState, site: TrafficSite) -> None:
    """Write what the last step changed."""
    monitor = site.monitor
    robots_changed = False
    for rid in monitor.dirty_robots:
        entry = monitor.robots.get(rid)
        if entry is None:
            state.delete(_ROBOT + rid)
        else:
            robots_changed |= not state.exists(_ROBOT + rid)
            state.set(_ROBOT + rid, entry)
        robots_changed |= entry is None
    if robots_changed:
        state.set(STATE_ROBOTS, sorted(monitor.robots))
    if monitor.dirty_tasks:
        for task_id in monitor.dirty_tasks:
            if task_id in monitor.tasks:
                state.set(_TASK + task_id, monitor.tasks[task_id])
            else:
                state.delete(_TASK + task_id)
        state.set(STATE_TASKS, sorted(monitor.tasks))
    if monitor.dirty_map:
        state.set(STATE_MAP, monitor.site_map)
    meta: SiteMeta = {
        "site_id": monitor.site_id,
        "tenant_id": monitor.tenant_id,
        "clock": monitor.clock,
        "next_prune": monitor.next_prune,
        "next_scan": monitor.next_scan,
        "alert_tokens": monitor.alert_tokens,
        "alert_at": monitor.alert_at,
        "alerts_suppressed": monitor.alerts_suppressed,
        "tick_due": site.tick_due,
    }
    coordinator = site.coordinator
    if coordinator is not None:
        meta["next_round"] = coordinator.next_round
        meta["rounds"] = coordinator.rounds
        if coordinator.changed:
            movers_changed = False
            for rid, record in coordinator.records(coordinator.changed).items():
                if record is None:
                    movers_changed |= state.exists(_MOVER + rid)
                    state.delete(_MOVER + rid)
                else:
                    movers_changed |= not state.exists(_MOVER + rid)
                    state.set(_MOVER + rid, record)
            if movers_changed:
                state.set(STATE_MOVERS, sorted(coordinator.table.movers))
            coordinator.changed.clear()
        wanted = {coordinator.graph.ids[n]: rid for n, rid in sorted(coordinator.wanted.items())}
        if wanted != (state.get(STATE_WANTED) or {}):
            state.set(STATE_WANTED, wanted)
    if sorted(site.monitored) != (state.get(STATE_MONITORED) or []):
        state.set(STATE_MONITORED, sorted(site.monitored))
    state.set(STATE_META, meta)
    monitor.dirty_robots.clear()
    monitor.dirty_tasks.clear()
    monitor.dirty_map = False


class TrafficStep:
    """The kernel step: one input of a site applied to its cached model, then stored."""

    def __init__(self, config: TrafficConfig) -> None:
        self.config = config
        self.sites: ModelCache[TrafficSite] = ModelCache(lambda state: load(state, config))

    def __call__(self, state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        if kind not in KINDS:
            raise RejectedRecord(f"traffic: no input of kind {kind!r}")
        if event.get("site_id") != state.key:
            raise RejectedRecord(f"record of site {event.get('site_id')!r} under site key {state.key!r}")
        site = self.sites.get(state)
        if kind == traffic_site.STATUS and _seen(site, event):
            return []  # duplicate or stale: no state write at all
        if kind == timers.TIMER:
            if not timers.is_armed(event, site.tick_due):
                return []  # re-armed since, or fired twice
            site.tick_due = None
            now = int(event["due_at"])
            out = traffic_site.step(site, traffic_site.TICK, None, now)
        else:
            now = int(event.get("occurred_at") or now_ms)
            out = traffic_site.step(site, kind, event, now)
        out.extend(_tick(site, now))
        store(state, site)
        return [Output(o.topic, o.key, o.value) for o in out]


def _tick(site: TrafficSite, now: int) -> list[Output]:
    """Arm the site's planning tick when a coordinated robot wants to move and none is pending."""
    coordinator = site.coordinator
    if coordinator is None or (site.tick_due is not None and site.tick_due > now):
        return []
    if not any(
        m.mode == ACTIVE and m.held and m.goal is not None and m.goal != m.frontier
        for m in coordinator.table.movers.values()
    ):
        return []
    site.tick_due = max(coordinator.next_round, now + site.config.round_ms)
    monitor = site.monitor
    return [
        timers.arm(
            owner=OWNER,
            timer_id=f"{OWNER}:{monitor.site_id}",
            target_key=monitor.site_id,
            due_at=site.tick_due,
            at=now,
            tenant_id=monitor.tenant_id,
            site_id=monitor.site_id,
            payload={},
        )
    ]


def _seen(site: TrafficSite, event: RobotStatus) -> bool:
    """Whether this RobotStatus is one the site has already applied (or an older one)."""
    rid, seq = event["robot_id"], event["seq"]
    coordinator = site.coordinator
    mover = coordinator.table.movers.get(rid) if coordinator is not None else None
    if mover is not None:
        return bool(mover.seq > seq or (mover.seq == seq and not _goes_offline(event, mover.mode)))
    known = site.monitor.robots.get(rid)
    last = known.get("seq", -1) if known is not None else -1
    status = known.get("status") if known is not None else None
    return bool(last > seq or (last == seq and not _goes_offline(event, status)))


def _goes_offline(event: RobotStatus, known: str | None) -> bool:
    """Whether ``event`` is the OFFLINE status of a robot last known online. Telemetry stamps the status
    it emits when a robot falls silent with the seq of the robot's last sample: same seq, new fact."""
    return bool(event.get("status") == "OFFLINE" and known != "OFFLINE")


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
    by_site = feeds(sources, inbox=INBOX, forward=lambda kind: rekey(decoders[kind], FEED_KEY))
    return [*by_site, build_step(TrafficStep(config), inbox=inbox)]
