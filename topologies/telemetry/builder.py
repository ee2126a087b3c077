"""The telemetry topology on the kernel: one :class:`TelemetryStep` over each robot's state.

Inputs, each tagged with its kind at wiring (:func:`build_telemetry`):

- direct, keyed by ``robot_id`` and co-partitioned (read aligned by timestamp): ``robot.telemetry``
  (``telemetry``), ``robot.registry`` (``registration``) and ``timers.due.telemetry`` (``timer``). A
  record a producer put on another partition than its key's (a partitioner other than murmur2) is
  forwarded through the inbox, which puts it on the right one (``topologies.kernel``);
- the inbox ``telemetry.inbox``: those forwarded records, the site maps (fed from ``site.maps``, keyed by
  site) and the site directory's messages (``sitemaps``).

State (the store of the dataframe of those four topics; new inputs come through the inbox, so its name
stays): a robot's key holds one sub-key ``robot``: its registration, its runtime state (``machine``) and
the bounds of its site's map; a site's key (``site:<id>``) holds the site directory. Rejections raise
:class:`~schemas.errors.RejectedRecord` before any state is written.

Outputs (:class:`~topologies.kernel.Output`): every accepted sample, its bytes unchanged, to
``robot.telemetry.accepted``; RobotStatus, alerts, 1-minute aggregates and timers; site-directory
messages to the inbox.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from quixstreams.dataframe import StreamingDataFrame

from schemas.errors import RejectedRecord
from schemas.records import RobotRegistration, RobotTelemetry, Timer
from schemas.sitegraph import Bounds
from topologies.kernel import Decode, KeyState, Output, StateView, annotate, build_step, feed
from topologies.telemetry import machine, records, sitemaps
from topologies.telemetry.config import TelemetryConfig
from topologies.telemetry.machine import RobotEntry
from topologies.telemetry.rules import validate_telemetry
from topologies.telemetry.sitemaps import SITE_BOUNDS, SITE_JOIN, SITE_MAP, bounds_from_list

__all__ = [
    "OUTPUT_TOPICS",
    "REGISTRATION",
    "STATE_ROBOT",
    "TELEMETRY",
    "TIMER",
    "TelemetryStep",
    "build_telemetry",
]

logger = logging.getLogger(__name__)

#: The state sub-key of a robot (registration + runtime + site bounds). Renaming it orphans the state.
STATE_ROBOT = "robot"

#: Catalog names of the outputs.
OUTPUT_TOPICS = (
    records.ACCEPTED, records.STATUS, records.ALERTS, records.AGGREGATES, records.TIMERS, records.INBOX,
)  # fmt: skip

#: Kinds of the direct inputs.
TELEMETRY, REGISTRATION, TIMER = "telemetry", "registration", "timer"


class TelemetryStep:
    """One input of a robot (or of a site's directory) applied to its state.

    ``decode`` turns the bytes of a telemetry sample into its record: the step decodes samples itself so
    that an accepted one is produced to ``robot.telemetry.accepted`` as it came, without encoding it again.
    """

    def __init__(self, config: TelemetryConfig, decode: Decode) -> None:
        self.config = config
        self.decode = decode
        self._bounds: dict[tuple[float, ...], Bounds | None] = {}  # a site's bounds, parsed once

    def __call__(self, state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        if kind == TELEMETRY:
            return self.telemetry(state, event, now_ms)
        if kind == REGISTRATION:
            return self.registration(state, event)
        if kind == TIMER:
            return self.timer(state, event)
        if kind == SITE_BOUNDS:
            entry: RobotEntry = state.get(STATE_ROBOT) or RobotEntry()
            new = sitemaps.on_site_bounds(entry, event)
            if new is not None:
                state.set(STATE_ROBOT, new)
            return []
        if kind == SITE_MAP:
            return sitemaps.on_site_map(state, event)
        if kind == SITE_JOIN:
            return sitemaps.on_site_join(state, event)
        raise RejectedRecord(f"telemetry: no input of kind {kind!r}")

    def telemetry(self, state: KeyState, raw: bytes, now_ms: int) -> list[Output]:
        record: RobotTelemetry = self.decode(raw)
        annotate(record)
        key = state.key
        if record["robot_id"] != key:
            raise RejectedRecord(f"record key {key!r} does not match robot_id {record['robot_id']!r}")
        entry: RobotEntry = state.get(STATE_ROBOT) or RobotEntry()
        joined = entry.get("joined")
        tenant, site = record["tenant_id"], record["site_id"]
        here = joined is not None and joined[0] == tenant and joined[1] == site
        bounds = self.bounds(entry.get("bounds")) if here else None
        validate_telemetry(record, entry.get("registration"), bounds, self.config, now_ms)
        robot = entry.get("runtime")
        new, out = machine.on_telemetry(robot, record, self.config)
        if new is robot:  # a duplicate or a stale sample: nothing changes, nothing to store
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "dropped %s telemetry seq %s (last %s)", machine.classify_order(robot, record, self.config),
                    record["seq"], robot["seq"] if robot else None, extra={"robot_id": key, "tenant_id": tenant},
                )  # fmt: skip
            return out
        out.insert(0, Output(records.ACCEPTED, key, raw))
        if here:
            state.set(STATE_ROBOT, {**entry, "runtime": new})
        else:  # first sample at this site: ask for its bounds
            state.set(STATE_ROBOT, {**entry, "runtime": new, "joined": [tenant, site], "bounds": None})
            out.append(sitemaps.join(key, tenant, site))
        return out

    def bounds(self, values: list[float] | None) -> Bounds | None:
        """The Bounds of a robot's stored ``[version, min_x, min_y, max_x, max_y]`` (parsed once per value:
        every sample needs them, and few sites and versions are in play)."""
        if not values:
            return None
        key = tuple(values)
        bounds = self._bounds.get(key)
        if bounds is None:
            if len(self._bounds) >= 4096:  # a bound for maps that come and go
                self._bounds.clear()
            bounds = self._bounds[key] = bounds_from_list(values)
        return bounds

    def registration(self, state: KeyState, record: RobotRegistration | None) -> list[Output]:
        """A registration (a tombstone forgets the robot: its later telemetry is rejected as unknown)."""
        key = state.key
        if record is not None and record["robot_id"] != key:
            raise RejectedRecord(f"record key {key!r} does not match robot_id {record['robot_id']!r}")
        entry: RobotEntry = state.get(STATE_ROBOT) or RobotEntry()
        new: RobotEntry = {
            **entry,
            "registration": machine.on_registration(entry.get("registration"), record),
        }
        out: list[Output] = []
        if record is not None and entry.get("joined") != [record["tenant_id"], record["site_id"]]:
            new["joined"], new["bounds"] = [record["tenant_id"], record["site_id"]], None
            out.append(sitemaps.join(key, record["tenant_id"], record["site_id"]))
        state.set(STATE_ROBOT, new)
        return out

    def timer(self, state: KeyState, timer: Timer | None) -> list[Output]:
        if timer is None:
            return []
        entry: RobotEntry = state.get(STATE_ROBOT) or RobotEntry()
        robot = entry.get("runtime")
        new, out = machine.on_timer(robot, timer, self.config)
        if new is not robot:
            state.set(STATE_ROBOT, {**entry, "runtime": new})
        return out


def build_telemetry(
    *,
    telemetry: StreamingDataFrame,
    registry: StreamingDataFrame,
    timers_due: StreamingDataFrame,
    inbox: StreamingDataFrame,
    site_maps: StreamingDataFrame | None,
    decoders: Mapping[str, Decode],
    config: TelemetryConfig,
    partitions: int,
    state_view: StateView | None = None,
) -> list[StreamingDataFrame]:
    """Wire the telemetry topology; returns the dataframes of Outputs to produce to :data:`OUTPUT_TOPICS`.

    :param telemetry: ``robot.telemetry`` (values: bytes, key robot_id).
    :param registry: ``robot.registry`` (values: bytes, key robot_id).
    :param timers_due: ``timers.due.telemetry`` (values: bytes, key robot_id); the offline timers.
    :param inbox: ``telemetry.inbox`` (values: envelopes).
    :param site_maps: ``site.maps`` (values: bytes, key site_id), for the pose check (None: no pose check).
    :param decoders: kind -> decoder of the bytes of ``telemetry``, ``registration``, ``timer`` and
        ``site_map`` (the SiteMap codec).
    :param partitions: the partitions of the direct inputs (and of the inbox).
    :param state_view: what the robots' state goes through (the processor keeps it write-behind; the
        step treats what it reads as immutable).
    """
    step = TelemetryStep(config, decoders[TELEMETRY])
    outputs = build_step(
        step,
        direct={TELEMETRY: telemetry, REGISTRATION: registry, TIMER: timers_due},
        inbox=inbox,
        inbox_topic=records.INBOX,
        decoders={REGISTRATION: decoders[REGISTRATION], TIMER: decoders[TIMER]},
        partitions=partitions,
        state_view=state_view,
    )
    if site_maps is None:
        return [outputs]
    decode_map = decoders[SITE_MAP]

    def to_site(value: Any, key: Any, _timestamp: int) -> list[tuple[str, Any]]:
        if key is None:
            raise RejectedRecord("site map without a key (the site id)")
        return sitemaps.map_message(decode_map(value) if value is not None else None, str(key))

    return [outputs, feed(site_maps, SITE_MAP, inbox=records.INBOX, forward=to_site)]
