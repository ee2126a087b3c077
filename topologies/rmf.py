"""The RMF ingest topology (key: RMF fleet name): ``rmf.fleet_states`` -> ``robot.status``.

Open-RMF fleet adapters report their robots in ``fleet_state_update`` messages (rmf_api_msgs
``fleet_state``: one ``robot_state`` per robot), about once a second, and re-send the latest one on every
reconnect. Each robot becomes a :class:`~schemas.models.RobotStatus` like the ones the telemetry topology
derives for our own robots, so dispatch, traffic, the sinks and the gateway see RMF robots too.

Mapping (``robot_step``, pure):

- ``robot_id`` = the robot's ``name`` (its key in ``robots`` when the name is missing), ``fleet_id`` = the
  fleet's ``name``; tenant and site come from the configuration (one tenant per deployment, a site per
  fleet). Robot names must therefore be unique across the RMF fleets of one tenant.
- ``occurred_at`` = ``seq`` = ``last_seen_at`` = RMF's ``unix_millis_time`` (the record's Kafka timestamp
  when RMF gives none); ``reason`` = ``RMF``; ``event_id`` is derived from (tenant, fleet, robot, time), so
  a replay emits the same ids.
- status: see :data:`RMF_ROBOT_STATUS`; no status: UNKNOWN.
- battery: RMF's fraction 0..1 as it is; location ``{map, x, y, yaw}`` -> pose ``{x, y, yaw,
  map_name = map, node_id = None}``; a missing battery or location keeps the last known one.
- speed: distance over time since the previous state on the same map (RMF reports no speed).
- ``task_id``: RMF's task id (``<category>.dispatch-<n>``), empty -> None.

When a robot state yields a record:

- never for a duplicate or an older state (``unix_millis_time`` not newer than the last one seen: RMF's
  re-sends on reconnect, and Kafka's at-least-once re-deliveries);
- at once when status, task or map changed (or for the first state of a robot);
- for a pose or battery change, at most once every ``min_interval_ms`` (event time);
- otherwise as a heartbeat when nothing was emitted for ``heartbeat_ms``.

State: per fleet key, one sub-key ``robot:<robot_id>`` per robot (:data:`STATE_ROBOT_PREFIX`; renaming it
orphans the stored state) holding the last state seen and the last record emitted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from quixstreams import State
from quixstreams.dataframe import StreamingDataFrame

from schemas.errors import RejectedRecord
from schemas.ids import det_uuid7

__all__ = [
    "OUTPUT_KEY_FIELD",
    "OUTPUT_TOPIC",
    "OWNER",
    "RMF_ROBOT_STATUS",
    "STATE_ROBOT_PREFIX",
    "RmfIngestConfig",
    "RmfIngestStep",
    "build_rmf_ingest",
    "fleet_statuses",
    "robot_step",
]

logger = logging.getLogger(__name__)

#: The processor that runs this topology (consumer group, state directory, ``dlq.rmf-ingest``).
OWNER = "rmf-ingest"
#: Catalog name of the output, and the field of each output record that is its Kafka key.
OUTPUT_TOPIC = "robot.status"
OUTPUT_KEY_FIELD = "robot_id"
#: State sub-key prefix of a robot (``robot:<robot_id>``) within its fleet's key.
STATE_ROBOT_PREFIX = "robot:"

#: RMF ``robot_state.status`` -> our RobotState.
RMF_ROBOT_STATUS: dict[str, str] = {
    "uninitialized": "UNKNOWN",
    "offline": "OFFLINE",
    "shutdown": "OFFLINE",
    "idle": "IDLE",
    "charging": "CHARGING",
    "working": "WORKING",
    "error": "ERROR",
}

#: What a robot's state sub-key holds: ``at`` (last unix_millis_time seen), ``pose``, ``battery`` (last
#: seen), ``emitted`` (fingerprint of the last record), ``status`` (its status), ``emitted_at``.
RobotMemory = dict[str, Any]


@dataclass(frozen=True, slots=True)
class RmfIngestConfig:
    """Where RMF robots belong and how often they are reported.

    :param tenant_id: tenant of every record (one tenant per deployment of the processor).
    :param site_id: site of fleets not in ``fleet_sites``.
    :param fleet_sites: RMF fleet name -> site id.
    :param heartbeat_ms: a record is emitted when none was for this long, even if nothing changed.
    :param min_interval_ms: pose or battery changes alone are emitted at most this often per robot.
    """

    tenant_id: str
    site_id: str
    fleet_sites: Mapping[str, str] = field(default_factory=dict)
    heartbeat_ms: int = 30_000
    min_interval_ms: int = 1_000

    def __post_init__(self) -> None:
        if not self.tenant_id or not self.site_id:
            raise ValueError("tenant_id and site_id must not be empty")
        if self.heartbeat_ms <= 0 or self.min_interval_ms < 0:
            raise ValueError("heartbeat_ms must be positive and min_interval_ms not negative")

    def site_of(self, fleet: str) -> str:
        return self.fleet_sites.get(fleet, self.site_id)


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def robot_step(
    memory: RobotMemory | None,
    fleet: str,
    robot_id: str,
    robot: Mapping[str, Any],
    config: RmfIngestConfig,
    received_ms: int,
) -> tuple[RobotMemory | None, dict[str, Any] | None]:
    """One RMF ``robot_state`` of ``robot_id`` in ``fleet`` -> (new memory, the RobotStatus dict or None).

    Returns ``memory`` itself (the same object) when the state is a duplicate or older than the last one.
    """
    raw_at = robot.get("unix_millis_time")
    at = int(raw_at) if isinstance(raw_at, int) and not isinstance(raw_at, bool) else int(received_ms)
    if memory is not None and at <= memory["at"]:
        return memory, None
    last_pose: dict[str, Any] = (memory or {}).get("pose") or {
        "x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": None, "map_name": None,
    }  # fmt: skip
    location = robot.get("location")
    pose: dict[str, Any]
    if isinstance(location, Mapping):
        pose = {
            "x": _number(location.get("x"), last_pose["x"]),
            "y": _number(location.get("y"), last_pose["y"]),
            "yaw": _number(location.get("yaw"), last_pose["yaw"]),
            "node_id": None,
            "map_name": str(location["map"]) if location.get("map") is not None else last_pose["map_name"],
        }
    else:
        pose = dict(last_pose)
    battery = min(1.0, max(0.0, _number(robot.get("battery"), (memory or {}).get("battery", 0.0))))
    status = RMF_ROBOT_STATUS.get(str(robot.get("status")), "UNKNOWN")
    task_id = robot.get("task_id") or None
    speed = 0.0
    if memory is not None and memory["pose"].get("map_name") == pose["map_name"]:
        distance = math.hypot(pose["x"] - memory["pose"]["x"], pose["y"] - memory["pose"]["y"])
        speed = round(distance / ((at - memory["at"]) / 1000.0), 3)
    fingerprint = [status, task_id, pose["map_name"], round(pose["x"], 3), round(pose["y"], 3),
                   round(pose["yaw"], 3), round(battery, 4)]  # fmt: skip
    new: RobotMemory = {**(memory or {}), "at": at, "pose": pose, "battery": battery}
    last = (memory or {}).get("emitted")
    since = at - (memory or {}).get("emitted_at", at)
    if last is None or last[:3] != fingerprint[:3]:
        emit = True  # first state, or status, task or map changed
    elif last != fingerprint:
        emit = since >= config.min_interval_ms  # moved or (dis)charged
    else:
        emit = since >= config.heartbeat_ms
    if not emit:
        return new, None
    previous = (memory or {}).get("status")
    new.update(emitted=fingerprint, status=status, emitted_at=at)
    record: dict[str, Any] = {
        "event_id": det_uuid7(at, config.tenant_id, fleet, robot_id, at),
        "tenant_id": config.tenant_id,
        "site_id": config.site_of(fleet),
        "occurred_at": at,
        "robot_id": robot_id,
        "fleet_id": fleet,
        "status": status,
        "previous_status": previous,
        "battery": battery,
        "pose": pose,
        "speed": speed,
        "task_id": task_id,
        "route": [],
        "seq": at,
        "last_seen_at": at,
        "reason": "RMF",
    }
    return new, record


def fleet_statuses(
    memories: dict[str, RobotMemory], message: Mapping[str, Any], config: RmfIngestConfig, received_ms: int
) -> list[dict[str, Any]]:
    """Every record a ``fleet_state_update`` means, updating ``memories`` (robot id -> memory) in place.

    The pure counterpart of :class:`RmfIngestStep` for tests and tools that keep memories in a dict.
    """
    out: list[dict[str, Any]] = []
    for robot_id, robot in _robots(message):
        memory, record = robot_step(
            memories.get(robot_id), _fleet(message), robot_id, robot, config, received_ms
        )
        if memory is not None:
            memories[robot_id] = memory
        if record is not None:
            out.append(record)
    return out


def _fleet(message: Mapping[str, Any]) -> str:
    data = message.get("data")
    name = data.get("name") if isinstance(data, Mapping) else None
    return name if isinstance(name, str) else ""


def _robots(message: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    data = message.get("data")
    robots = data.get("robots") if isinstance(data, Mapping) else None
    if not isinstance(robots, Mapping):
        return []
    out = []
    for name, robot in sorted(robots.items()):
        if isinstance(robot, Mapping):
            robot_id = robot.get("name") or name
            if isinstance(robot_id, str) and robot_id:
                out.append((robot_id, robot))
    return out


class RmfIngestStep:
    """The Quix callback: one ``fleet_state_update`` of the fleet ``key`` -> RobotStatus records.

    Each robot's memory is its own state sub-key, so a message costs one read and at most one write per
    robot it reports.
    """

    def __init__(self, config: RmfIngestConfig) -> None:
        self.config = config

    def __call__(
        self, value: Any, key: Any, timestamp: int, _headers: Any, state: State
    ) -> list[dict[str, Any]]:
        if not isinstance(value, Mapping) or value.get("type") != "fleet_state_update":
            return []
        fleet = _fleet(value)
        if not fleet:
            raise RejectedRecord("fleet_state_update without data.name (the fleet)")
        if key != fleet:
            raise RejectedRecord(f"record key {key!r} does not match the fleet name {fleet!r}")
        out: list[dict[str, Any]] = []
        for robot_id, robot in _robots(value):
            sub_key = STATE_ROBOT_PREFIX + robot_id
            memory = state.get(sub_key)
            new, record = robot_step(memory, fleet, robot_id, robot, self.config, timestamp)
            if new is not memory and new is not None:
                state.set(sub_key, new)
            if record is not None:
                out.append(record)
        return out


def build_rmf_ingest(sdf: StreamingDataFrame, *, config: RmfIngestConfig) -> StreamingDataFrame:
    """Wire the topology on ``rmf.fleet_states`` (decoded ``fleet_state_update`` dicts, key fleet name).

    :returns: a dataframe of RobotStatus dicts; produce it to :data:`OUTPUT_TOPIC` with key
        ``record[OUTPUT_KEY_FIELD]``.
    """
    keyed = sdf.filter(lambda _value, key, _ts, _headers: key is not None, metadata=True)
    return keyed.apply(RmfIngestStep(config), stateful=True, metadata=True, expand=True)
