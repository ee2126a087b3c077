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
  re-sends on reconnect, and Kafka's at-least-once re-deliveries), nor for a state stamped before the
  OFFLINE record the robot got (so a robot's records move forward in event time);
- at once when status, task or map changed (or for the first state of a robot);
- for a pose or battery change, at most once every ``min_interval_ms`` (event time);
- otherwise as a heartbeat when nothing was emitted for ``heartbeat_ms``.

Offline detection (``robot_timer``, pure): a robot from which no state arrives for ``offline_timeout_ms``
becomes OFFLINE, even when the whole RMF side is silent, through the timer service. A robot's first
accepted state arms one offline timer (a Timer on ``timers``, owner :data:`OWNER`, target key the fleet
name, so it comes back on ``timers.due.rmf-ingest`` to the fleet key's partition and state); later states
only note when they arrived (``seen``: the record's Kafka timestamp, i.e. when the gateway received it, so
RMF's own clock does not matter). When the timer fires, a robot seen since is re-armed for the remainder;
otherwise it gets one RobotStatus OFFLINE (``previous_status`` its last status, ``reason = OFFLINE`` as the
telemetry topology's, ``occurred_at`` = its last state's time + the timeout, ``seq`` and ``last_seen_at``
its last state's time) and the timer is disarmed. Its next state is emitted at once (the status changed)
and arms a timer again. A robot that RMF itself reports offline is not reported again.

State: per fleet key, one sub-key ``robot:<robot_id>`` per robot (:data:`STATE_ROBOT_PREFIX`; renaming it
orphans the stored state) holding the last state seen, the last record emitted and the armed timer.
Outputs are :class:`~topologies.kernel.Output` values: RobotStatus records for :data:`OUTPUT_TOPIC` (key
robot_id) and Timers for :data:`TIMERS_TOPIC` (key timer_id).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import orjson
from quixstreams.dataframe import StreamingDataFrame

from schemas import catalog
from schemas.errors import RejectedRecord
from schemas.ids import det_uuid7
from schemas.records import Pose, RobotStatus, Timer
from topologies import timers
from topologies.kernel import Decode, KeyState, Output, build_step
from topologies.status import robot_status

__all__ = [
    "FLEET_STATE",
    "OUTPUT_TOPIC",
    "OUTPUT_TOPICS",
    "OWNER",
    "RMF_ROBOT_STATUS",
    "STATE_ROBOT_PREFIX",
    "TIMER",
    "TIMERS_TOPIC",
    "Output",
    "RmfIngestConfig",
    "RmfIngestStep",
    "RobotMemory",
    "build_rmf_ingest",
    "fleet_outputs",
    "fleet_statuses",
    "offline_timer_id",
    "robot_step",
    "robot_timer",
    "timer_outputs",
]

logger = logging.getLogger(__name__)

#: The processor that runs this topology (consumer group, state directory, ``dlq.rmf-ingest``).
OWNER = "rmf-ingest"
#: Catalog name of the output.
OUTPUT_TOPIC = catalog.ROBOT_STATUS
#: Catalog name of the timer requests (the timer service hands them back on ``timers.due.rmf-ingest``).
TIMERS_TOPIC = catalog.TIMERS
OUTPUT_TOPICS = (OUTPUT_TOPIC, TIMERS_TOPIC)
#: Kinds of the inputs: ``rmf.fleet_states`` and ``timers.due.rmf-ingest``.
FLEET_STATE, TIMER = "fleet_state", timers.TIMER
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


class RobotMemory(TypedDict):
    """What a robot's state sub-key holds."""

    at: int  # the last unix_millis_time seen
    pose: Pose  # last seen
    battery: float  # last seen
    seen: int  # Kafka timestamp of the last state accepted
    timer_due: NotRequired[int | None]  # due_at of the armed offline timer, None when none is armed
    emitted: NotRequired[list[Any]]  # fingerprint of the last record emitted
    status: NotRequired[str]  # its status
    emitted_at: NotRequired[int]
    offline_at: NotRequired[int]  # occurred_at of the OFFLINE record, until a later state is emitted


@dataclass(frozen=True, slots=True)
class RmfIngestConfig:
    """Where RMF robots belong and how often they are reported.

    :param tenant_id: tenant of every record (one tenant per deployment of the processor).
    :param site_id: site of fleets not in ``fleet_sites``.
    :param fleet_sites: RMF fleet name -> site id.
    :param heartbeat_ms: a record is emitted when none was for this long, even if nothing changed.
    :param min_interval_ms: pose or battery changes alone are emitted at most this often per robot.
    :param offline_timeout_ms: a robot from which no state arrived for this long (wall clock: the Kafka
        timestamps of its states, against the timer service's clock) becomes OFFLINE.
    """

    tenant_id: str
    site_id: str
    fleet_sites: Mapping[str, str] = field(default_factory=dict)
    heartbeat_ms: int = 30_000
    min_interval_ms: int = 1_000
    offline_timeout_ms: int = 10_000

    def __post_init__(self) -> None:
        if not self.tenant_id or not self.site_id:
            raise ValueError("tenant_id and site_id must not be empty")
        if self.heartbeat_ms <= 0 or self.min_interval_ms < 0:
            raise ValueError("heartbeat_ms must be positive and min_interval_ms not negative")
        if self.offline_timeout_ms <= 0:
            raise ValueError("offline_timeout_ms must be positive")

    def site_of(self, fleet: str) -> str:
        return self.fleet_sites.get(fleet, self.site_id)


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def offline_timer_id(tenant_id: str, fleet: str, robot_id: str) -> str:
    """One offline timer per robot: re-arming overwrites it on the compacted ``timers`` topic."""
    return f"{OWNER}:offline:{tenant_id}:{fleet}:{robot_id}"


def _offline_timer(
    config: RmfIngestConfig, fleet: str, robot_id: str, *, due_at: int, occurred_at: int
) -> Output:
    """A Timer asking the timer service to hand ``due_at`` back to the fleet's key (where the robot's
    state lives) on ``timers.due.rmf-ingest``; the payload names the robot."""
    return timers.arm(
        owner=OWNER,
        timer_id=offline_timer_id(config.tenant_id, fleet, robot_id),
        target_key=fleet,
        due_at=due_at,
        at=occurred_at,
        tenant_id=config.tenant_id,
        site_id=config.site_of(fleet),
        payload={"kind": "offline", "robot_id": robot_id},
    )


def robot_step(
    memory: RobotMemory | None,
    fleet: str,
    robot_id: str,
    robot: Mapping[str, Any],
    config: RmfIngestConfig,
    received_ms: int,
) -> tuple[RobotMemory | None, list[Output]]:
    """One RMF ``robot_state`` of ``robot_id`` in ``fleet``, received (Kafka timestamp) at ``received_ms``
    -> (new memory, outputs: the RobotStatus and/or the offline Timer to arm, possibly none).

    Returns ``memory`` itself (the same object) when the state is a duplicate or older than the last one.
    """
    raw_at = robot.get("unix_millis_time")
    at = int(raw_at) if isinstance(raw_at, int) and not isinstance(raw_at, bool) else int(received_ms)
    if memory is not None and at <= memory["at"]:
        return memory, []
    last_pose: Pose = (memory.get("pose") if memory is not None else None) or {
        "x": 0.0, "y": 0.0, "yaw": 0.0, "node_id": None, "map_name": None,
    }  # fmt: skip
    location = robot.get("location")
    pose: Pose
    if isinstance(location, Mapping):
        pose = {
            "x": _number(location.get("x"), last_pose["x"]),
            "y": _number(location.get("y"), last_pose["y"]),
            "yaw": _number(location.get("yaw"), last_pose["yaw"]),
            "node_id": None,
            "map_name": str(location["map"]) if location.get("map") is not None else last_pose["map_name"],
        }
    else:
        pose = last_pose.copy()
    last_battery = memory.get("battery", 0.0) if memory is not None else 0.0
    battery = min(1.0, max(0.0, _number(robot.get("battery"), last_battery)))
    status = RMF_ROBOT_STATUS.get(str(robot.get("status")), "UNKNOWN")
    task_id = robot.get("task_id") or None
    speed = 0.0
    if memory is not None and memory["pose"].get("map_name") == pose["map_name"]:
        distance = math.hypot(pose["x"] - memory["pose"]["x"], pose["y"] - memory["pose"]["y"])
        speed = round(distance / ((at - memory["at"]) / 1000.0), 3)
    fingerprint = [status, task_id, pose["map_name"], round(pose["x"], 3), round(pose["y"], 3),
                   round(pose["yaw"], 3), round(battery, 4)]  # fmt: skip
    seen = max(int(received_ms), memory.get("seen", 0) if memory is not None else 0)
    latest: RobotMemory = {"at": at, "pose": pose, "battery": battery, "seen": seen}
    new: RobotMemory = {**memory, **latest} if memory is not None else latest
    out: list[Output] = []
    if new.get("timer_due") is None:  # arm once; a fired timer re-arms itself while states keep coming
        due = seen + config.offline_timeout_ms
        new["timer_due"] = due
        out.append(_offline_timer(config, fleet, robot_id, due_at=due, occurred_at=seen))
    last = memory.get("emitted") if memory is not None else None
    since = at - (memory.get("emitted_at", at) if memory is not None else at)
    offline_at = new.get("offline_at")
    if offline_at is not None and at <= offline_at:
        # Stamped before the OFFLINE record already emitted (an adapter's buffered state arriving late):
        # consumers that order by occurred_at would put it before the OFFLINE, so it is not emitted.
        emit = False
    elif last is None or last[:3] != fingerprint[:3]:
        emit = True  # first state, or status, task or map changed (back from OFFLINE too)
    elif offline_at is not None and at > offline_at:
        # The first state stamped after the OFFLINE record: consumers that order by occurred_at kept the
        # OFFLINE over the older states an adapter may have buffered and sent after it.
        emit = True
    elif last != fingerprint:
        emit = since >= config.min_interval_ms  # moved or (dis)charged
    else:
        emit = since >= config.heartbeat_ms
    if not emit:
        return new, out
    previous = memory.get("status") if memory is not None else None
    new.update({"emitted": fingerprint, "status": status, "emitted_at": at})
    if offline_at is not None and at > offline_at:
        del new["offline_at"]
    out.insert(
        0,
        robot_status(
            event_id=det_uuid7(at, config.tenant_id, fleet, robot_id, at),
            tenant_id=config.tenant_id,
            site_id=config.site_of(fleet),
            occurred_at=at,
            robot_id=robot_id,
            fleet_id=fleet,
            status=status,
            previous_status=previous,
            battery=battery,
            pose=pose,
            speed=speed,
            task_id=task_id,
            route=[],
            seq=at,
            last_seen_at=at,
            reason="RMF",
        ),
    )
    return new, out


def robot_timer(
    memory: RobotMemory | None, fleet: str, robot_id: str, timer: Timer, config: RmfIngestConfig
) -> tuple[RobotMemory | None, list[Output]]:
    """A due offline timer of ``robot_id`` in ``fleet`` (from ``timers.due.rmf-ingest``) -> (new memory,
    outputs).

    A timer that is not the one armed in the memory (re-armed since, or fired twice) changes nothing and
    returns ``memory`` itself. A robot seen since the timer was armed gets a timer for the remainder.
    Otherwise the timer is disarmed and, unless the robot is OFFLINE already, one RobotStatus OFFLINE is
    emitted (see the module docstring for its fields).
    """
    due_at = timer.get("due_at")
    if memory is None or due_at is None or not timers.is_armed(timer, memory.get("timer_due")):
        return memory, []
    new = memory.copy()
    expected = timers.remaining_due(memory.get("seen", 0), config.offline_timeout_ms, due_at)
    if expected is not None:
        new["timer_due"] = expected
        return new, [_offline_timer(config, fleet, robot_id, due_at=expected, occurred_at=due_at)]
    new["timer_due"] = None
    previous = memory.get("status")
    if previous == "OFFLINE":
        return new, []
    last_at = memory["at"]
    offline_at = last_at + config.offline_timeout_ms
    emitted = memory.get("emitted") or [None, None]
    task_id = emitted[1]
    new.update({"status": "OFFLINE", "emitted": ["OFFLINE", *emitted[1:]], "offline_at": offline_at})
    offline = robot_status(
        event_id=det_uuid7(offline_at, config.tenant_id, fleet, robot_id, "offline", last_at),
        tenant_id=config.tenant_id,
        site_id=config.site_of(fleet),
        occurred_at=offline_at,
        robot_id=robot_id,
        fleet_id=fleet,
        status="OFFLINE",
        previous_status=previous,
        battery=memory.get("battery", 0.0),
        pose=memory["pose"],
        speed=0.0,
        task_id=task_id,
        route=[],
        seq=last_at,
        last_seen_at=last_at,
        reason="OFFLINE",
    )
    return new, [offline]


def fleet_outputs(
    memories: dict[str, RobotMemory], message: Mapping[str, Any], config: RmfIngestConfig, received_ms: int
) -> list[Output]:
    """Every output a ``fleet_state_update`` means, updating ``memories`` (robot id -> memory) in place.

    The pure counterpart of :class:`RmfIngestStep` for tests and tools that keep memories in a dict.
    """
    out: list[Output] = []
    for robot_id, robot in _robots(message):
        memory, outputs = robot_step(
            memories.get(robot_id), _fleet(message), robot_id, robot, config, received_ms
        )
        if memory is not None:
            memories[robot_id] = memory
        out.extend(outputs)
    return out


def fleet_statuses(
    memories: dict[str, RobotMemory], message: Mapping[str, Any], config: RmfIngestConfig, received_ms: int
) -> list[RobotStatus]:
    """The RobotStatus records of :func:`fleet_outputs` (the timers it arms left out)."""
    return [o.value for o in fleet_outputs(memories, message, config, received_ms) if o.topic == OUTPUT_TOPIC]


def timer_outputs(
    memories: dict[str, RobotMemory], fleet: str, timer: Timer, config: RmfIngestConfig
) -> list[Output]:
    """What a due timer of ``fleet`` means, updating ``memories`` in place (see :func:`fleet_outputs`)."""
    robot_id = _timer_robot(timer)
    if robot_id is None:
        return []
    memory, out = robot_timer(memories.get(robot_id), fleet, robot_id, timer, config)
    if memory is not None:
        memories[robot_id] = memory
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


def _timer_robot(timer: Timer) -> str | None:
    """The robot of an offline timer of ours (None: not ours, or not an offline timer)."""
    if timer.get("owner") != OWNER:
        return None
    try:
        payload = orjson.loads(timer.get("payload_json") or "{}")
    except orjson.JSONDecodeError:
        return None
    robot_id = payload.get("robot_id") if isinstance(payload, dict) else None
    if payload.get("kind") != "offline" or not isinstance(robot_id, str) or not robot_id:
        return None
    return robot_id


class RmfIngestStep:
    """The kernel step: a ``fleet_state_update`` of the fleet ``state.key`` (kind ``fleet_state``), or a due
    offline timer of one of its robots (kind ``timer``, from ``timers.due.rmf-ingest`` keyed by the fleet)
    -> outputs. ``now_ms`` (the record's Kafka timestamp: when the gateway received it) is when a state
    arrived.

    Each robot's memory is its own state sub-key, so a message costs one read and at most one write per
    robot it reports, and a timer one read and at most one write.
    """

    def __init__(self, config: RmfIngestConfig) -> None:
        self.config = config

    def __call__(self, state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        if kind == TIMER:
            return self._timer(event, state) if event is not None else []
        if not isinstance(event, Mapping) or event.get("type") != "fleet_state_update":
            return []  # another RMF message type: not ours
        fleet = _fleet(event)
        if not fleet:
            raise RejectedRecord("fleet_state_update without data.name (the fleet)")
        if state.key != fleet:
            raise RejectedRecord(f"record key {state.key!r} does not match the fleet name {fleet!r}")
        out: list[Output] = []
        for robot_id, robot in _robots(event):
            sub_key = STATE_ROBOT_PREFIX + robot_id
            memory = state.get(sub_key)
            new, outputs = robot_step(memory, fleet, robot_id, robot, self.config, now_ms)
            if new is not memory and new is not None:
                state.set(sub_key, new)
            out.extend(outputs)
        return out

    def _timer(self, timer: Timer, state: KeyState) -> list[Output]:
        key = state.key
        robot_id = _timer_robot(timer)
        if robot_id is None or timer.get("tenant_id") != self.config.tenant_id:
            logger.debug("ignored timer %s on key %r", timer.get("timer_id"), key)
            return []
        sub_key = STATE_ROBOT_PREFIX + robot_id
        memory = state.get(sub_key)
        new, out = robot_timer(memory, key, robot_id, timer, self.config)
        if new is not memory and new is not None:
            state.set(sub_key, new)
        if out and out[0].topic == OUTPUT_TOPIC:
            logger.info(
                "RMF robot %s of fleet %s sent no state for %g s: OFFLINE",
                robot_id, key, self.config.offline_timeout_ms / 1000,
                extra={"robot_id": robot_id, "tenant_id": self.config.tenant_id},
            )  # fmt: skip
        return out


def build_rmf_ingest(
    fleet_states: StreamingDataFrame,
    *,
    config: RmfIngestConfig,
    decoders: Mapping[str, Decode],
    timers_due: StreamingDataFrame,
) -> StreamingDataFrame:
    """Wire the topology; returns a dataframe of :class:`Output` to produce to :data:`OUTPUT_TOPICS`.

    :param fleet_states: ``rmf.fleet_states`` (values: the JSON bytes, key fleet name).
    :param decoders: kind -> decoder (``fleet_state``: the validated RMF JSON codec; ``timer``: Avro).
    :param timers_due: ``timers.due.rmf-ingest`` (values: bytes, key fleet name; co-partitioned with
        ``fleet_states``: equal partition counts): robots that fall silent are marked OFFLINE.

    The state store belongs to the dataframe of both topics (Quix names it after them): it is the same
    whatever the settings, and a new input must come through an inbox, never as a third direct input.
    """
    direct = {FLEET_STATE: fleet_states, TIMER: timers_due}
    return build_step(RmfIngestStep(config), direct=direct, decoders=decoders)
