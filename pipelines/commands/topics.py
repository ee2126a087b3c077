"""``fleet topics apply|list``: create or update the topics of the catalog (schemas.catalog)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from schemas.catalog import CatalogError, TopicSpec, topics

__all__ = ["TopicChange", "add_parser", "apply_topics", "parse_partition_overrides", "plan_topics"]

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


@dataclass
class TopicChange:
    """What ``apply`` does to one topic: ``create``, ``alter`` (configs/partitions), ``keep`` or ``refuse``."""

    spec: TopicSpec
    action: str
    partitions_from: int | None = None
    config_changes: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    reason: str = ""

    def describe(self) -> str:
        name = self.spec.name
        if self.action == "create":
            cfg = " ".join(f"{k}={v}" for k, v in self.spec.config().items())
            rf = self.spec.replication_factor or "broker default"
            return f"created    {name}: partitions={self.spec.partitions} replication={rf} {cfg}"
        if self.action == "keep":
            return f"unchanged  {name}"
        if self.action == "refuse":
            return f"REFUSED    {name}: {self.reason}"
        parts = []
        if self.partitions_from is not None:
            parts.append(f"partitions {self.partitions_from} -> {self.spec.partitions}")
        parts += [
            f"{k} {old if old is not None else '(unset)'} -> {new}"
            for k, (old, new) in self.config_changes.items()
        ]
        return f"changed    {name}: {', '.join(parts)}"


def parse_partition_overrides(values: list[str]) -> dict[str, int]:
    """``["robot=12", "alerts=3"]`` (or one comma-separated string) -> ``{"robot": 12, "alerts": 3}``."""
    out: dict[str, int] = {}
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            name, sep, count = item.partition("=")
            if not sep or not count.strip().isdigit():
                raise CatalogError(f"bad partition override {item!r}: expected NAME=COUNT (topic or group)")
            out[name.strip()] = int(count)
    return out


def _admin_config(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    try:
        from pipelines.settings import CommonSettings, load_settings
    except ImportError:
        bootstrap = args.bootstrap_servers or os.environ.get(
            "FLEET_KAFKA_BOOTSTRAP_SERVERS", DEFAULT_BOOTSTRAP
        )
        prefix = args.prefix if args.prefix is not None else os.environ.get("FLEET_TOPIC_PREFIX", "")
        return {"bootstrap.servers": bootstrap}, prefix
    settings = load_settings(CommonSettings)
    config = settings.kafka_client_config()
    if args.bootstrap_servers:
        config["bootstrap.servers"] = args.bootstrap_servers
    prefix = args.prefix if args.prefix is not None else settings.topic_prefix
    return config, prefix


def plan_topics(
    admin: Any, specs: list[TopicSpec], *, increase_partitions: bool, timeout: float
) -> list[TopicChange]:
    """Compare the catalog with the cluster; nothing is changed here."""
    from confluent_kafka.admin import ConfigResource, ResourceType

    metadata = admin.list_topics(timeout=timeout)
    existing = {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}
    replicas = {
        name: {len(p.replicas) for p in t.partitions.values()}
        for name, t in metadata.topics.items()
        if t.error is None
    }
    present = [s for s in specs if s.name in existing]
    configs: dict[str, dict[str, str | None]] = {}
    if present:
        futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, s.name) for s in present])
        for resource, future in futures.items():
            entries = future.result(timeout=timeout)
            configs[resource.name] = {k: e.value for k, e in entries.items()}

    plan = []
    for spec in specs:
        if spec.name not in existing:
            plan.append(TopicChange(spec, "create"))
            continue
        actual = existing[spec.name]
        change = TopicChange(spec, "keep")
        have = replicas.get(spec.name, set())
        if spec.replication_factor is not None and have and have != {spec.replication_factor}:
            change.action = "refuse"
            change.reason = (
                f"has replication factor {'/'.join(map(str, sorted(have)))}, the catalog asks for "
                f"{spec.replication_factor}: apply does not move replicas; reassign its partitions with "
                "Kafka's kafka-reassign-partitions, or leave the replication factor unset for it"
            )
            plan.append(change)
            continue
        if spec.partitions < actual:
            change.action = "refuse"
            change.reason = (
                f"has {actual} partitions, the catalog asks for {spec.partitions}: Kafka cannot shrink a "
                "topic (it would re-key every record); keep the count or migrate to a new topic"
            )
            plan.append(change)
            continue
        if spec.partitions > actual:
            if not increase_partitions:
                change.action = "refuse"
                change.reason = (
                    f"has {actual} partitions, the catalog asks for {spec.partitions}: adding partitions "
                    "moves keys to other partitions (per-key order and state); pass --increase-partitions "
                    "to do it anyway, together with every co-partitioned topic"
                )
                plan.append(change)
                continue
            change.partitions_from = actual
        current = configs.get(spec.name, {})
        for key, value in spec.config().items():
            if current.get(key) != value:
                change.config_changes[key] = (current.get(key), value)
        if change.partitions_from is not None or change.config_changes:
            change.action = "alter"
        plan.append(change)
    return plan


def apply_topics(admin: Any, plan: list[TopicChange], *, timeout: float) -> None:
    """Carry out a plan (no refusals in it)."""
    from confluent_kafka.admin import (
        AlterConfigOpType,
        ConfigEntry,
        ConfigResource,
        NewPartitions,
        NewTopic,
        ResourceType,
    )

    creates = [
        NewTopic(
            c.spec.name,
            num_partitions=c.spec.partitions,
            replication_factor=c.spec.replication_factor or -1,
            config=c.spec.config(),
        )
        for c in plan
        if c.action == "create"
    ]
    if creates:
        for future in admin.create_topics(creates, request_timeout=timeout).values():
            future.result(timeout=timeout)
        _wait_until_visible(admin, {t.topic for t in creates}, timeout)
    grow = [NewPartitions(c.spec.name, c.spec.partitions) for c in plan if c.partitions_from is not None]
    if grow:
        for future in admin.create_partitions(grow, request_timeout=timeout).values():
            future.result(timeout=timeout)
    alters = [
        ConfigResource(
            ResourceType.TOPIC,
            c.spec.name,
            incremental_configs=[
                ConfigEntry(k, new, incremental_operation=AlterConfigOpType.SET)
                for k, (_, new) in c.config_changes.items()
            ],
        )
        for c in plan
        if c.config_changes
    ]
    if alters:
        for future in admin.incremental_alter_configs(alters).values():
            future.result(timeout=timeout)


def _wait_until_visible(admin: Any, names: set[str], timeout: float) -> None:
    """Created topics reach the brokers' metadata asynchronously (KRaft): wait, so that whatever runs
    after ``fleet topics apply`` finds them."""
    deadline = time.monotonic() + timeout
    missing = set(names)
    while missing:
        metadata = admin.list_topics(timeout=timeout)
        missing = {n for n in missing if n not in metadata.topics or metadata.topics[n].error is not None}
        if not missing:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"topics created but not visible in metadata after {timeout}s: {sorted(missing)}"
            )
        time.sleep(0.2)


def _apply(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

    config, prefix = _admin_config(args)
    overrides = parse_partition_overrides([os.environ.get("FLEET_TOPIC_PARTITIONS", ""), *args.partitions])
    replication = _count_setting(args.replication_factor, "FLEET_TOPIC_REPLICATION_FACTOR")
    min_isr = _count_setting(args.min_insync_replicas, "FLEET_TOPIC_MIN_INSYNC_REPLICAS")
    specs = topics(prefix, overrides, replication, names=args.topics or None, min_insync_replicas=min_isr)
    admin = AdminClient(config)
    plan = plan_topics(admin, specs, increase_partitions=args.increase_partitions, timeout=args.timeout)
    refused = [c for c in plan if c.action == "refuse"]
    if refused:
        for change in refused:
            _err(change.describe())
        _err(f"topics apply: refused {len(refused)} topic(s); nothing was changed")
        return 1
    if args.dry_run:
        for change in plan:
            _out("(dry run) " + change.describe())
        return 0
    apply_topics(admin, plan, timeout=args.timeout)
    for change in plan:
        _out(change.describe())
    counts = {a: sum(1 for c in plan if c.action == a) for a in ("create", "alter", "keep")}
    _out(f"topics apply: {counts['create']} created, {counts['alter']} changed, {counts['keep']} unchanged")
    return 0


def _count_setting(value: int | None, env: str) -> int | None:
    """A replication setting: the option, else the environment variable, else None (the brokers' default)."""
    if value is not None:
        return value
    text = os.environ.get(env, "").strip()
    if not text:
        return None
    if not text.isdigit():
        raise CatalogError(f"{env}={text!r}: expected a whole number")
    return int(text)


def _list(args: argparse.Namespace) -> int:
    prefix = args.prefix if args.prefix is not None else os.environ.get("FLEET_TOPIC_PREFIX", "")
    overrides = parse_partition_overrides([os.environ.get("FLEET_TOPIC_PARTITIONS", ""), *args.partitions])
    replication = _count_setting(None, "FLEET_TOPIC_REPLICATION_FACTOR")
    min_isr = _count_setting(None, "FLEET_TOPIC_MIN_INSYNC_REPLICAS")
    if replication is not None or min_isr is not None:
        _out(
            f"# every topic: replication {replication or 'broker default'}, "
            f"min.insync.replicas {min_isr or 'broker default'}"
        )
    _out(f"{'topic':<32} {'key':<22} {'value':<20} {'parts':>5} {'group':<6} {'cleanup':<15} retention")
    for spec in topics(prefix, overrides, replication, min_insync_replicas=min_isr):
        days = f"{spec.retention_ms // 86_400_000} d" if spec.retention_ms else "-"
        _out(
            f"{spec.name:<32} {spec.key:<22} {spec.value:<20} {spec.partitions:>5} "
            f"{spec.copartition or '-':<6} {spec.cleanup_policy:<15} {days}"
        )
    return 0


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except CatalogError as exc:
            _err(f"topics: {exc}")
            return 2

    return run


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "topics",
        help="create or update the Kafka topics of the catalog; list the catalog",
        description="The topic catalog (schemas/catalog.py) as Kafka topics. Partition counts can be "
        'overridden per environment with FLEET_TOPIC_PARTITIONS="robot=12,alerts=3" or --partitions, by '
        "topic name or co-partition group (robot, task, site, vda5050); co-partitioned topics must stay equal.",
    )
    actions = p.add_subparsers(dest="topics_action", metavar="ACTION", required=True)

    a = actions.add_parser(
        "apply",
        help="create missing topics, align configs, grow partitions when asked (idempotent)",
        description="Creates missing topics and sets cleanup.policy/retention.ms (and min.insync.replicas when "
        "given) of existing ones. Refuses (exit 1, nothing changed) to shrink a topic, to grow one unless "
        "--increase-partitions is given, and to change a topic's replication factor. Reads "
        "FLEET_KAFKA_BOOTSTRAP_SERVERS (+ security settings), FLEET_TOPIC_PREFIX, FLEET_TOPIC_PARTITIONS, "
        "FLEET_TOPIC_REPLICATION_FACTOR and FLEET_TOPIC_MIN_INSYNC_REPLICAS.",
    )
    a.add_argument("topics", nargs="*", metavar="TOPIC", help="only these catalog topics (default: all)")
    a.add_argument("--bootstrap-servers", help="override FLEET_KAFKA_BOOTSTRAP_SERVERS")
    a.add_argument("--prefix", help="override FLEET_TOPIC_PREFIX")
    a.add_argument(
        "--partitions",
        action="append",
        default=[],
        metavar="NAME=COUNT",
        help="partition override for a topic or group (repeatable)",
    )
    a.add_argument(
        "--replication-factor",
        type=int,
        default=None,
        help="replication factor of every topic (default: FLEET_TOPIC_REPLICATION_FACTOR, else the brokers' "
        "default.replication.factor); an existing topic with another factor is refused, not moved",
    )
    a.add_argument(
        "--min-insync-replicas",
        type=int,
        default=None,
        help="min.insync.replicas of every topic, set on existing topics too (default: "
        "FLEET_TOPIC_MIN_INSYNC_REPLICAS, else the brokers' default); on a cluster: replication 3 and 2",
    )
    a.add_argument(
        "--increase-partitions",
        action="store_true",
        help="allow adding partitions to existing topics (re-keys future records)",
    )
    a.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    a.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the cluster")
    a.set_defaults(func=_guarded(_apply))

    lst = actions.add_parser("list", help="print the catalog as resolved for this environment (offline)")
    lst.add_argument("--prefix", help="override FLEET_TOPIC_PREFIX")
    lst.add_argument(
        "--partitions",
        action="append",
        default=[],
        metavar="NAME=COUNT",
        help="partition override for a topic or group (repeatable)",
    )
    lst.set_defaults(func=_guarded(_list))
