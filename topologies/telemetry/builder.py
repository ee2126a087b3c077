"""``build_telemetry``: the thin Quix adapter around the pure per-robot state machine.

Inputs, all keyed by ``robot_id`` and co-partitioned (equal partition counts): ``robot.telemetry``,
``robot.registry`` and, optionally, ``timers.due.telemetry``. They are concatenated into one stream so
that a robot's registration, runtime state and offline timer live in the same key's state.

State (the default store of the concatenated stream; its changelog name derives from the three input
topic names, so keep them): one sub-key ``robot`` per key holding the registration and the runtime
state (see ``machine``), so a record costs one state read and at most one write.
Rejections raise :class:`~schemas.errors.RejectedRecord` before any state is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from quixstreams import State
from quixstreams.context import message_context
from quixstreams.dataframe import StreamingDataFrame

from schemas.errors import RejectedRecord
from schemas.ids import now_ms
from topologies.telemetry import machine, records
from topologies.telemetry.config import TelemetryConfig
from topologies.telemetry.records import Output
from topologies.telemetry.rules import validate_telemetry
from topologies.telemetry.sitemaps import SiteBounds

__all__ = [
    "OUTPUT_KEY_FIELDS",
    "OUTPUT_TOPICS",
    "REGISTRATION",
    "STATE_ROBOT",
    "TELEMETRY",
    "TIMER",
    "BoundsLookup",
    "TelemetryStep",
    "build_telemetry",
]

logger = logging.getLogger(__name__)

#: The state sub-key of a robot (registration + runtime). Renaming it orphans the stored state.
STATE_ROBOT = "robot"

#: Catalog names of the outputs, and the field of each output record that is its Kafka key.
OUTPUT_TOPICS = (records.STATUS, records.ALERTS, records.AGGREGATES, records.TIMERS)
OUTPUT_KEY_FIELDS = {
    records.STATUS: "robot_id",
    records.ALERTS: "subject_id",
    records.AGGREGATES: "robot_id",
    records.TIMERS: "timer_id",
}

#: ``(tenant_id, site_id) -> bounds of the site's latest map`` (None when the site has no known map).
BoundsLookup = Callable[[str, str], SiteBounds | None]

#: Kinds of input, by the topic they come from.
TELEMETRY, REGISTRATION, TIMER = "telemetry", "registration", "timer"


def _no_maps(_tenant_id: str, _site_id: str) -> SiteBounds | None:
    return None


class TelemetryStep:
    """One input of a robot applied to its state: load, validate, transition, store. Stateless itself.

    The robot's registration and runtime state share one state entry (one read per record):
    ``{"registration": {...} | None, "runtime": {...} | None}`` under sub-key :data:`STATE_ROBOT`.
    """

    def __init__(
        self,
        config: TelemetryConfig,
        site_bounds: BoundsLookup,
        clock: Callable[[], int],
        kinds: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.site_bounds = site_bounds
        self.clock = clock
        self.kinds = kinds or {}

    def __call__(self, value: Any, key: Any, _timestamp: int, _headers: Any, state: State) -> list[Output]:
        """The Quix callback: the input's kind comes from the topic of the message being processed."""
        return self.apply(self.kinds[message_context().topic], value, key, state)

    def apply(self, kind: str, value: dict[str, Any] | None, key: Any, state: State) -> list[Output]:
        """Apply one input of ``kind`` (``telemetry``, ``registration``, ``timer``) for robot ``key``."""
        if value is not None and kind != TIMER and value["robot_id"] != key:
            raise RejectedRecord(f"record key {key!r} does not match robot_id {value['robot_id']!r}")
        entry = state.get(STATE_ROBOT) or {}
        registration = entry.get("registration")
        robot = entry.get("runtime")
        if kind == TELEMETRY:
            if value is None:
                return []
            validate_telemetry(
                value,
                registration,
                self.site_bounds(value["tenant_id"], value["site_id"]),
                self.config,
                self.clock(),
            )
            order = machine.classify_order(robot, value)
            if order != "new":
                logger.debug(
                    "dropped %s telemetry seq %s (last %s)", order, value["seq"], robot["seq"] if robot else None,
                    extra={"robot_id": value["robot_id"], "tenant_id": value["tenant_id"]},
                )  # fmt: skip
                return []
            new, out = machine.on_telemetry(robot, value, self.config)
        elif kind == REGISTRATION:  # a tombstone (None) forgets the robot
            state.set(
                STATE_ROBOT, {"registration": machine.on_registration(registration, value), "runtime": robot}
            )
            return []
        else:
            if value is None:
                return []
            new, out = machine.on_timer(robot, value, self.config)
            if new is robot:
                return out
        state.set(STATE_ROBOT, {"registration": registration, "runtime": new})
        return out


def build_telemetry(
    sdf: StreamingDataFrame,
    *,
    registry_sdf: StreamingDataFrame,
    timers_due_sdf: StreamingDataFrame | None = None,
    config: TelemetryConfig,
    site_bounds: BoundsLookup | None = None,
    clock: Callable[[], int] = now_ms,
) -> dict[str, StreamingDataFrame]:
    """Wire the telemetry topology; returns one dataframe of plain records per output catalog topic.

    :param sdf: ``robot.telemetry`` (RobotTelemetry dicts, key robot_id).
    :param registry_sdf: ``robot.registry`` (RobotRegistration dicts, key robot_id).
    :param timers_due_sdf: ``timers.due.telemetry`` (Timer dicts, key robot_id); without it no robot
        ever goes OFFLINE.
    :param config: thresholds and periods.
    :param site_bounds: bounds of a site's latest map, for the pose check (None: no pose check).
    :param clock: wall clock in epoch ms, for the future-timestamp check.
    :returns: ``{topic: sdf}`` for ``OUTPUT_TOPICS``; produce each with key ``OUTPUT_KEY_FIELDS[topic]``.
    """
    kinds = {t.name: TELEMETRY for t in sdf.topics} | {t.name: REGISTRATION for t in registry_sdf.topics}
    merged = sdf.concat(registry_sdf)
    if timers_due_sdf is not None:
        kinds |= {t.name: TIMER for t in timers_due_sdf.topics}
        merged = merged.concat(timers_due_sdf)
    step = TelemetryStep(config, site_bounds or _no_maps, clock, kinds)
    routed = merged.apply(step, stateful=True, metadata=True, expand=True)
    return {name: routed.filter(_for_topic(name)).apply(_value) for name in OUTPUT_TOPICS}


def _for_topic(name: str) -> Callable[[Output], bool]:
    def predicate(out: Output) -> bool:
        return out.topic == name

    return predicate


def _value(out: Output) -> dict[str, Any]:
    return out.value
