"""The topic catalog, as data: every topic of DESIGN.md section 3 with its key, value, partitions and
retention, plus the timer topics and one dead-letter topic per processor.

Names in the catalog carry no prefix; :func:`topics` and :func:`topic` return specs whose ``name`` has
the environment's ``topic_prefix`` prepended (tests isolate themselves with one). Partition counts can
be overridden per environment, by topic name or by co-partition group (``"robot"``, ``"task"``,
``"site"``); topics in one group are consumed or joined together by key and must keep equal partition
counts, which :func:`topics` enforces.

Replication is a setting of the environment, not of a topic: :func:`topics` gives every topic the same
replication factor and ``min.insync.replicas`` (``None``: the brokers' defaults). On a cluster that must
lose no acknowledged record when a broker dies, use replication 3 and ``min.insync.replicas`` 2 (with
``acks=all``, which every producer of ours and every transactional producer uses): a write then waits
for two copies, and one broker may be lost at any time without losing a write or stopping one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from schemas.errors import FleetError

__all__ = [
    "ALERTS",
    "AUDIT_LOG",
    "BYTES",
    "CATALOG",
    "DLQ_PROCESSORS",
    "JSON",
    "RMF_FLEET_STATES",
    "RMF_LOGS",
    "RMF_TASK_STATES",
    "ROBOT_REGISTRY",
    "ROBOT_STATUS",
    "ROBOT_TELEMETRY",
    "ROBOT_TELEMETRY_1M",
    "ROBOT_TELEMETRY_ACCEPTED",
    "SCHEDULER_DECISIONS",
    "SITE_MAPS",
    "TASK_COMMANDS",
    "TASK_EVENTS",
    "TASK_SCHEDULES",
    "TIMERS",
    "TRAFFIC_CONFLICTS",
    "VDA5050_DECISIONS",
    "VDA5050_INBOUND",
    "VDA5050_OUTBOUND",
    "CatalogError",
    "TopicSpec",
    "dlq_topic",
    "inbox",
    "subject_name",
    "timers_due",
    "topic",
    "topics",
]

# Catalog names of the topics: use these constants, never the spelled-out strings.
ROBOT_TELEMETRY = "robot.telemetry"
ROBOT_TELEMETRY_ACCEPTED = "robot.telemetry.accepted"
ROBOT_REGISTRY = "robot.registry"
ROBOT_STATUS = "robot.status"
ROBOT_TELEMETRY_1M = "robot.telemetry.1m"
SITE_MAPS = "site.maps"
TASK_COMMANDS = "task.commands"
TASK_SCHEDULES = "task.schedules"
TASK_EVENTS = "task.events"
SCHEDULER_DECISIONS = "scheduler.decisions"
TRAFFIC_CONFLICTS = "traffic.conflicts"
ALERTS = "alerts"
AUDIT_LOG = "audit.log"
RMF_FLEET_STATES = "rmf.fleet_states"
RMF_TASK_STATES = "rmf.task_states"
RMF_LOGS = "rmf.logs"
TIMERS = "timers"
VDA5050_INBOUND = "vda5050.inbound"
VDA5050_DECISIONS = "vda5050.decisions"
VDA5050_OUTBOUND = "vda5050.outbound"


def timers_due(owner: str) -> str:
    """The topic on which the timer service hands ``owner`` its due timers."""
    return f"timers.due.{owner}"


def inbox(owner: str) -> str:
    """The internal inbox of processor ``owner`` (see ``topologies.kernel.inbox``)."""
    return f"{owner}.inbox"


DAY_MS = 24 * 60 * 60 * 1000
JSON = "json"
BYTES = "bytes"
KEYED_PARTITIONS = 6
OTHER_PARTITIONS = 3
DLQ_PROCESSORS = (
    "telemetry",
    "tasks",
    "dispatch",
    "traffic",
    "sink-postgres",
    "sink-influx",
    "sink-redis",
    "sink-rmf",
    "rmf-ingest",
    "gateway",
    "vda5050",
)

CleanupPolicy = Literal["delete", "compact", "compact,delete"]


class CatalogError(FleetError):
    """The catalog or an override is inconsistent (unknown topic, unequal co-partitioned topics)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: what it holds and how Kafka should keep it.

    ``value`` is an Avro record name (``schemas/avro/<value>.avsc``), ``"json"`` (RMF messages) or
    ``"bytes"`` (dead letters). ``replication_factor=None`` and ``min_insync_replicas=None`` mean the
    brokers' defaults; :func:`topics` sets both alike for every topic.
    """

    name: str
    key: str
    value: str
    cleanup_policy: CleanupPolicy
    retention_ms: int | None
    partitions: int
    copartition: str | None = None
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    description: str = ""
    extra_config: Mapping[str, str] = field(default_factory=dict)
    base_name: str = ""

    @property
    def is_avro(self) -> bool:
        return self.value not in (JSON, BYTES)

    @property
    def subject(self) -> str:
        """Schema-registry subject (TopicNameStrategy) of the value."""
        return subject_name(self.name)

    def config(self) -> dict[str, str]:
        """Topic-level Kafka configuration."""
        cfg: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        if self.min_insync_replicas is not None:
            cfg["min.insync.replicas"] = str(self.min_insync_replicas)
        cfg.update(self.extra_config)
        return cfg


def _t(
    name: str,
    key: str,
    value: str,
    cleanup: CleanupPolicy,
    retention_days: int | None,
    group: str | None,
    description: str,
    partitions: int | None = None,
    extra_config: Mapping[str, str] | None = None,
) -> TopicSpec:
    count = partitions or (KEYED_PARTITIONS if group else OTHER_PARTITIONS)
    retention = retention_days * DAY_MS if retention_days is not None else None
    return TopicSpec(
        name=name,
        key=key,
        value=value,
        cleanup_policy=cleanup,
        retention_ms=retention,
        partitions=count,
        copartition=group,
        description=description,
        base_name=name,
        extra_config=dict(extra_config or {}),
    )


CATALOG: tuple[TopicSpec, ...] = (
    # The broker stamps each sample when it receives it (LogAppendTime): the telemetry topology checks
    # occurred_at against that, whatever the robot's own clock says, and a replay gets the same answer.
    _t(
        ROBOT_TELEMETRY,
        "robot_id",
        "RobotTelemetry",
        "delete",
        7,
        "robot",
        "raw robot telemetry",
        extra_config={"message.timestamp.type": "LogAppendTime"},
    ),
    _t(
        ROBOT_TELEMETRY_ACCEPTED,
        "robot_id",
        "RobotTelemetry",
        "delete",
        7,
        "robot",
        "telemetry the telemetry topology accepted (validated, not a duplicate)",
    ),
    _t(ROBOT_REGISTRY, "robot_id", "RobotRegistration", "compact", None, "robot", "known robots"),
    _t(ROBOT_STATUS, "robot_id", "RobotStatus", "compact,delete", 7, "robot", "derived robot status"),
    _t(ROBOT_TELEMETRY_1M, "robot_id", "TelemetryAggregate", "delete", 90, "robot", "1-minute aggregates"),
    _t(SITE_MAPS, "site_id", "SiteMap", "compact", None, "site", "versioned site graphs"),
    _t(TASK_COMMANDS, "task_id", "TaskCommand", "delete", 30, "task", "commands to the tasks topology"),
    _t(TASK_SCHEDULES, "schedule_id", "TaskSchedule", "compact", None, None, "cron schedules"),
    _t(TASK_EVENTS, "task_id", "TaskEvent", "delete", 30, "task", "task transitions"),
    _t(
        SCHEDULER_DECISIONS,
        "task_id or robot_id",
        "Decision",
        "delete",
        30,
        "task",
        "dispatch and traffic decisions",
    ),
    _t(TRAFFIC_CONFLICTS, "site_id", "Conflict", "delete", 30, "site", "traffic conflicts"),
    _t(ALERTS, "subject id", "Alert", "delete", 30, None, "alerts of every topology"),
    _t(AUDIT_LOG, "tenant_id", "AuditEvent", "delete", 365, None, "audit of mutating gateway calls"),
    _t(RMF_FLEET_STATES, "fleet name", JSON, "delete", 7, None, "RMF fleet_state_update messages"),
    _t(RMF_TASK_STATES, "task id", JSON, "delete", 7, "task", "RMF task_state_update messages"),
    _t(RMF_LOGS, "fleet name or task id", JSON, "delete", 7, None, "RMF task/fleet log updates"),
    _t(TIMERS, "timer_id", "Timer", "compact", None, None, "pending timers (tombstone cancels)", 6),
    _t(timers_due("telemetry"), "robot_id", "Timer", "delete", 1, "robot", "due timers of telemetry"),
    _t(timers_due("tasks"), "task_id", "Timer", "delete", 1, "task", "due timers of tasks"),
    _t(
        timers_due("traffic"),
        "site_id",
        "Timer",
        "delete",
        1,
        "site",
        "due timers of traffic (planning ticks)",
    ),
    _t(
        timers_due("rmf-ingest"),
        "fleet name",
        "Timer",
        "delete",
        1,
        None,
        "due timers of rmf-ingest (as many partitions as rmf.fleet_states)",
        OTHER_PARTITIONS,
    ),
    # Inboxes: each processor's internal input topic (produced by the processor itself; key: the owner
    # of the state; value: the kind of input and its record, see topologies/kernel/inbox.py).
    _t(inbox("telemetry"), "robot_id or site", BYTES, "delete", 7, "robot", "inbox of telemetry"),
    _t(inbox("tasks"), "task_id or schedule_id", BYTES, "delete", 7, "task", "inbox of tasks"),
    _t(inbox("dispatch"), "site_id", BYTES, "delete", 7, "site", "inbox of dispatch"),
    _t(inbox("traffic"), "site_id", BYTES, "delete", 7, "site", "inbox of traffic"),
    # The VDA 5050 bridge's two inputs: the same robot's key must land in the same partition of each.
    _t(
        "vda5050.inbound",
        "robot_id",
        BYTES,
        "delete",
        7,
        "vda5050",
        "raw VDA 5050 messages from vehicles (MQTT payload as received; header vda5050-topic)",
    ),
    _t(
        "vda5050.decisions",
        "robot_id",
        "Decision",
        "delete",
        7,
        "vda5050",
        "the VDA 5050 bridge's tenant's scheduler.decisions re-keyed by robot (bytes unchanged)",
    ),
    _t(
        "vda5050.outbound",
        "robot_id",
        JSON,
        "delete",
        7,
        None,
        "VDA 5050 orders and instant actions to publish",
    ),
    *(
        _t(f"dlq.{p}", "original key", BYTES, "delete", 30, None, f"dead letters of {p}")
        for p in DLQ_PROCESSORS
    ),
)

_BY_NAME = {t.name: t for t in CATALOG}
_GROUPS = {t.copartition for t in CATALOG if t.copartition}


def subject_name(topic_name: str) -> str:
    """The value subject of a (prefixed) topic under TopicNameStrategy."""
    return f"{topic_name}-value"


def dlq_topic(processor: str, topic_prefix: str = "") -> str:
    """The (prefixed) dead-letter topic of ``processor``."""
    if processor not in DLQ_PROCESSORS:
        raise CatalogError(f"no dead-letter topic for processor {processor!r}; known: {DLQ_PROCESSORS}")
    return f"{topic_prefix}dlq.{processor}"


def topics(
    topic_prefix: str = "",
    partitions: Mapping[str, int] | None = None,
    replication_factor: int | None = None,
    names: Iterable[str] | None = None,
    min_insync_replicas: int | None = None,
) -> list[TopicSpec]:
    """The catalog resolved for one environment.

    :param topic_prefix: prepended to every name.
    :param partitions: overrides by catalog topic name or co-partition group name; a topic override
        beats its group's.
    :param replication_factor: for every topic (None: the brokers' ``default.replication.factor``).
    :param names: only these catalog names (default: all).
    :param min_insync_replicas: ``min.insync.replicas`` of every topic (None: the brokers' default).
    :raises CatalogError: unknown name in an override, a non-positive count, co-partitioned topics
        that end up with different partition counts, or more in-sync replicas than replicas.
    """
    overrides = dict(partitions or {})
    for key, count in overrides.items():
        if key not in _BY_NAME and key not in _GROUPS:
            raise CatalogError(f"partition override for unknown topic or group {key!r}")
        if int(count) < 1:
            raise CatalogError(f"partition override {key}={count}: must be at least 1")
    if replication_factor is not None and replication_factor < 1:
        raise CatalogError(f"replication factor {replication_factor}: must be at least 1")
    if min_insync_replicas is not None:
        if min_insync_replicas < 1:
            raise CatalogError(f"min.insync.replicas {min_insync_replicas}: must be at least 1")
        if replication_factor is not None and min_insync_replicas > replication_factor:
            raise CatalogError(
                f"min.insync.replicas {min_insync_replicas} exceeds the replication factor "
                f"{replication_factor}: no write could ever be acknowledged"
            )

    resolved: list[TopicSpec] = []
    for spec in CATALOG:
        count = overrides.get(spec.name, overrides.get(spec.copartition or "", spec.partitions))
        resolved.append(
            replace(
                spec,
                name=f"{topic_prefix}{spec.name}",
                partitions=int(count),
                replication_factor=replication_factor,
                min_insync_replicas=min_insync_replicas,
            )
        )
    _check_copartitioning(resolved)
    if names is not None:
        wanted = set(names)
        unknown = wanted - _BY_NAME.keys()
        if unknown:
            raise CatalogError(f"unknown topics {sorted(unknown)}")
        resolved = [t for t in resolved if t.base_name in wanted]
    return resolved


def topic(name: str, topic_prefix: str = "", partitions: Mapping[str, int] | None = None) -> TopicSpec:
    """One catalog topic (by unprefixed name) resolved with ``topic_prefix``."""
    if name not in _BY_NAME:
        raise CatalogError(f"unknown topic {name!r}; known: {', '.join(_BY_NAME)}")
    return topics(topic_prefix, partitions, names=[name])[0]


def _check_copartitioning(specs: list[TopicSpec]) -> None:
    by_group: dict[str, dict[str, int]] = {}
    for spec in specs:
        if spec.copartition:
            by_group.setdefault(spec.copartition, {})[spec.base_name] = spec.partitions
    for group, counts in by_group.items():
        if len(set(counts.values())) > 1:
            detail = ", ".join(f"{n}={c}" for n, c in sorted(counts.items()))
            raise CatalogError(
                f"co-partitioned topics of group {group!r} must have equal partition counts "
                f"(they are joined or consumed together by key): {detail}"
            )
