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
    "BYTES",
    "CATALOG",
    "DLQ_PROCESSORS",
    "JSON",
    "CatalogError",
    "TopicSpec",
    "dlq_topic",
    "subject_name",
    "topic",
    "topics",
]

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
    )


CATALOG: tuple[TopicSpec, ...] = (
    _t("robot.telemetry", "robot_id", "RobotTelemetry", "delete", 7, "robot", "raw robot telemetry"),
    _t(
        "robot.telemetry.accepted",
        "robot_id",
        "RobotTelemetry",
        "delete",
        7,
        "robot",
        "telemetry the telemetry topology accepted (validated, not a duplicate)",
    ),
    _t("robot.registry", "robot_id", "RobotRegistration", "compact", None, "robot", "known robots"),
    _t("robot.status", "robot_id", "RobotStatus", "compact,delete", 7, "robot", "derived robot status"),
    _t("robot.telemetry.1m", "robot_id", "TelemetryAggregate", "delete", 90, "robot", "1-minute aggregates"),
    _t("site.maps", "site_id", "SiteMap", "compact", None, "site", "versioned site graphs"),
    _t("task.commands", "task_id", "TaskCommand", "delete", 30, "task", "commands to the tasks topology"),
    _t("task.schedules", "schedule_id", "TaskSchedule", "compact", None, None, "cron schedules"),
    _t("task.events", "task_id", "TaskEvent", "delete", 30, "task", "task transitions"),
    _t(
        "scheduler.decisions",
        "task_id or robot_id",
        "Decision",
        "delete",
        30,
        "task",
        "dispatch and traffic decisions",
    ),
    _t("traffic.conflicts", "site_id", "Conflict", "delete", 30, "site", "traffic conflicts"),
    _t("alerts", "subject id", "Alert", "delete", 30, None, "alerts of every topology"),
    _t("audit.log", "tenant_id", "AuditEvent", "delete", 365, None, "audit of mutating gateway calls"),
    _t("rmf.fleet_states", "fleet name", JSON, "delete", 7, None, "RMF fleet_state_update messages"),
    _t("rmf.task_states", "task id", JSON, "delete", 7, "task", "RMF task_state_update messages"),
    _t("rmf.logs", "fleet name or task id", JSON, "delete", 7, None, "RMF task/fleet log updates"),
    _t("timers", "timer_id", "Timer", "compact", None, None, "pending timers (tombstone cancels)", 6),
    _t("timers.due.telemetry", "robot_id", "Timer", "delete", 1, "robot", "due timers of telemetry"),
    _t("timers.due.tasks", "task_id", "Timer", "delete", 1, "task", "due timers of tasks"),
    _t(
        "timers.due.rmf-ingest",
        "fleet name",
        "Timer",
        "delete",
        1,
        None,
        "due timers of rmf-ingest (as many partitions as rmf.fleet_states)",
        OTHER_PARTITIONS,
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
