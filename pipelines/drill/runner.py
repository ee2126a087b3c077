"""One drill from start to verdict: set up, run the pipeline under load, inject the faults, drain, verify.

Everything a run creates is its own: a topic prefix ``drill<id>.``, tenant ``drill-<id>``, Postgres
schema and InfluxDB database ``drill_<id>``, state directories and logs under ``.local/drills/<id>``.
The processors run as ``fleet run <name>`` child processes against the three-node cluster (replication
3, ``min.insync.replicas`` 2); the runner knows them only by that command line, their consumer groups,
their topics and their stores.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from pipelines.app import group_of
from pipelines.drill.cluster import STACK_SCRIPT, KafkaCluster, StackServices
from pipelines.drill.faults import DrillContext, FaultRecord, NotInjected
from pipelines.drill.ktools import KafkaToolsLane
from pipelines.drill.load import Load, LoadConfig
from pipelines.drill.plan import DrillPlan
from pipelines.drill.processes import Supervisor
from pipelines.drill.progress import GroupProgress
from pipelines.drill.stores import StoreConfig, store_checks
from pipelines.drill.verify import Check, load_evidence, topology_checks
from pipelines.processors import PROCESSORS
from pipelines.settings import PRODUCER_DEFAULTS, CommonSettings

__all__ = ["DrillReport", "DrillRunner", "DrillSettings"]

logger = logging.getLogger(__name__)

ROOT = STACK_SCRIPT.parents[2]


class DrillSettings(CommonSettings):
    """Where the stack's stores are (the processors under drill get the same, with the run's own schema
    and database); the Kafka settings of CommonSettings are replaced by the cluster's."""

    postgres_dsn: str = "postgresql://fleet@127.0.0.1:15432/fleetstream"
    redis_url: str = "redis://127.0.0.1:16379/0"
    influx_url: str = "http://127.0.0.1:18086"


@dataclass
class DrillReport:
    plan: str
    run_id: str
    started: float
    finished: float = 0.0
    cluster: dict[str, Any] = field(default_factory=dict)
    faults: list[FaultRecord] = field(default_factory=list)
    topics: dict[str, int] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)
    crashes: dict[str, int] = field(default_factory=dict)
    drain_s: float | None = None
    skipped: list[str] = field(default_factory=list)  # faults not injected (target down, or no recovery)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not any(c.failed for c in self.checks)

    def recovery_stats(self) -> dict[str, dict[str, float | int | None]]:
        by_kind: dict[str, list[float | None]] = {}
        for f in self.faults:
            by_kind.setdefault(f.kind, []).append(f.recovery_s)
        out = {}
        for kind, values in by_kind.items():
            done = sorted(v for v in values if v is not None)
            out[kind] = {
                "count": len(values),
                "not_recovered": len(values) - len(done),
                "p50_s": round(statistics.median(done), 1) if done else None,
                "max_s": round(max(done), 1) if done else None,
            }
        return out

    def lines(self) -> list[str]:
        out = [
            f"drill {self.plan} ({self.run_id}): {len(self.faults)} faults in {self.finished - self.started:.0f}s"
        ]
        if self.cluster:
            out.append(f"cluster: {self.cluster}")
        for f in self.faults:
            rec = f"{f.recovery_s:.1f}s" if f.recovery_s is not None else "NOT RECOVERED"
            if f.crash_loops:
                rec += f" (crash loop: {f.crash_loops})"
            elif f.stuck:
                forced = f"{f.forced_recovery_s:.1f}s" if f.forced_recovery_s is not None else "never"
                rec += f" (stuck: {', '.join(f.stuck)}; caught up {forced} after the drill killed them)"
            rep = f", replicas in sync after {f.replicated_s:.1f}s" if f.replicated_s is not None else ""
            out.append(
                f"fault  {f.kind:<32} {f.target:<28} outage {f.outage_s:5.1f}s  recovered in {rec}{rep}"
            )
        if self.skipped:
            out.append(f"faults NOT injected: {self.skipped}")
        for kind, s in self.recovery_stats().items():
            out.append(f"recovery {kind}: n={s['count']} p50={s['p50_s']}s max={s['max_s']}s")
        out.append("records per topic: " + ", ".join(f"{k}={v}" for k, v in self.topics.items()))
        if self.restarts:
            out.append("process starts: " + ", ".join(f"{k}={v}" for k, v in sorted(self.restarts.items())))
        out += [c.line() for c in self.checks]
        verdict = "ALL CHECKS PASSED" if self.ok else f"{sum(c.failed for c in self.checks)} CHECK(S) FAILED"
        out.append(f"{verdict}: 0 lost, 0 duplicated" if self.ok else verdict)
        return out

    def as_json(self) -> bytes:
        data = asdict(self)
        data["recovery"] = self.recovery_stats()
        data["ok"] = self.ok
        return orjson.dumps(data, option=orjson.OPT_INDENT_2)


class DrillRunner:
    def __init__(
        self,
        drill: DrillPlan,
        settings: DrillSettings,
        *,
        cluster: KafkaCluster | None = None,
        run_dir: Path | None = None,
        keep: bool = False,
        kafka_tools: bool | None = None,
    ) -> None:
        self.plan = drill
        self.settings = settings
        self.cluster = cluster or KafkaCluster.from_env()
        self.run_id = uuid.uuid4().hex[:8]
        self.prefix = f"drill{self.run_id}."
        self.tenant = f"drill-{self.run_id}"
        self.store_name = f"drill_{self.run_id}"
        self.run_dir = run_dir or ROOT / ".local" / "drills" / self.run_id
        self.keep = keep
        self.kafka_tools = drill.kafka_tools if kafka_tools is None else kafka_tools
        self.report = DrillReport(drill.name, self.run_id, time.time())
        self.kafka_config: dict[str, Any] = {"bootstrap.servers": self.cluster.bootstrap_servers}

    # -- setup ------------------------------------------------------------------------------------------
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_") or k.endswith("_PORT")}
        env.update(
            {
                "FLEET_KAFKA_BOOTSTRAP_SERVERS": self.cluster.bootstrap_servers,
                "FLEET_SCHEMA_REGISTRY_URL": self.settings.schema_registry_url,
                "FLEET_TOPIC_PREFIX": self.prefix,
                "FLEET_ENVIRONMENT": "test",
                "FLEET_LOG_FORMAT": "json",
                "FLEET_LOG_LEVEL": "INFO",
                "FLEET_METRICS_PORT": "0",
                "FLEET_POSTGRES_DSN": self.settings.postgres_dsn,
                "FLEET_POSTGRES_SCHEMA": self.store_name,
                "FLEET_REDIS_URL": self.settings.redis_url,
                "FLEET_INFLUX_URL": self.settings.influx_url,
                "FLEET_INFLUX_DATABASE": self.store_name,
                "FLEET_TOPIC_REPLICATION_FACTOR": "3",
                "FLEET_TOPIC_MIN_INSYNC_REPLICAS": "2",
            }
        )
        return env

    def _fleet(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", *args],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=ROOT,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"fleet {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
            )
        return result.stdout

    def setup(self, admin: AdminClient) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "logs").mkdir(exist_ok=True)
        self.cluster.ensure_up()
        self.report.cluster = self.cluster.describe()
        logger.info("drill %s on %s: prefix %s", self.plan.name, self.cluster.bootstrap_servers, self.prefix)
        self._fleet("topics", "apply")
        self._fleet("schemas", "register")

    # -- the run ----------------------------------------------------------------------------------------
    def run(self) -> DrillReport:
        admin = AdminClient(self.kafka_config)
        supervisor: Supervisor | None = None
        load: Load | None = None
        lane: KafkaToolsLane | None = None
        progress: GroupProgress | None = None
        try:
            self.setup(admin)
            missing = [p for p in self.plan.instances if p not in PROCESSORS]
            if missing:
                raise RuntimeError(f"`fleet run` has no processor {missing}; it has {sorted(PROCESSORS)}")
            supervisor = Supervisor(self.run_dir, self._env(), tag=self.tenant)
            for processor, count in self.plan.instances.items():
                for index in range(1, count + 1):
                    supervisor.add(processor, index)
            progress = GroupProgress(admin, self.kafka_config, f"{self.prefix}fleet-")
            ctx = DrillContext(
                supervisor, self.cluster, StackServices(), progress, self.prefix,
                recovery_timeout_s=self.plan.recovery_timeout_s, broker_down_s=self.plan.broker_down_s,
            )  # fmt: skip
            supervisor.start_all()
            self._wait_members(progress, supervisor, timeout=240)
            if self.kafka_tools:
                lane = KafkaToolsLane(self.cluster, self.prefix, self.run_dir)
                lane.create_topics(admin)
                lane.start_producer()
            load = Load(self._load_config(), self._env(), self.run_dir / "logs")
            load.publish_schedules(self.kafka_config, self.settings.registry_client_config(), self.prefix)
            load.start()
            self._sleep(self.plan.warmup_s, load)
            for n, fault in enumerate(self.plan.faults):
                logger.info("fault: %s", fault.describe())
                started = time.time()
                try:
                    record = fault.run(ctx)
                except NotInjected as exc:
                    logger.error("fault %s not injected: %s", fault.describe(), exc)
                    self.report.skipped.append(f"{fault.describe()} ({exc})")
                    continue
                except Exception as exc:  # the drill's own measuring failed: record it, go on, verify
                    logger.exception("fault %s: the drill could not measure its recovery", fault.describe())
                    record = FaultRecord(
                        fault.kind, fault.describe(), started, time.time(), None, f"drill error: {exc}"
                    )
                self.report.faults.append(record)
                if record.unrecoverable:
                    self.report.skipped += [
                        f"{f.describe()} (the pipeline had not recovered)" for f in self.plan.faults[n + 1 :]
                    ]
                    logger.error(
                        "the pipeline did not recover from %s %s: the %d remaining faults are skipped",
                        record.kind, record.target, len(self.report.skipped),
                    )  # fmt: skip
                    break
                self._sleep(self.plan.gap_s, load)
            self._sleep(self.plan.tail_s, load)
            if lane is not None:  # its producer is load too: the drain waits for every topic to stand still
                lane.stop_producer()
            self._drain(load, progress)
            self._verify(progress, supervisor, load, lane)
        finally:
            if load is not None:
                load.stop()
            if lane is not None:
                lane.stop_producer()
            if supervisor is not None:
                self.report.restarts = {i.name: i.starts for i in supervisor.instances.values()}
                self.report.crashes = supervisor.crashes()
                supervisor.stop_all()
            if progress is not None:
                progress.close()
            self.report.finished = time.time()
            (self.run_dir / "report.json").write_bytes(self.report.as_json())
            if self.keep or not self.report.ok:
                logger.info(
                    "kept the run's topics (prefix %s), schema and database %s", self.prefix, self.store_name
                )
            else:
                self._cleanup(admin)
        return self.report

    def _load_config(self) -> LoadConfig:
        p = self.plan
        return LoadConfig(
            tenant_id=self.tenant, robots=p.robots, rate_hz=p.rate_hz, tasks_per_minute=p.tasks_per_minute
        )

    def _sleep(self, seconds: float, load: Load) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            gone = load.exited()
            if gone:
                site = next(iter(gone))
                raise RuntimeError(f"the simulator of {site} exited ({gone[site]}):\n{load.log_tail(site)}")
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def _wait_members(self, progress: GroupProgress, supervisor: Supervisor, timeout: float) -> None:
        """Until every processor's group has as many members as it has instances running."""
        deadline = time.monotonic() + timeout
        short: dict[str, tuple[int, int]] = {}
        while time.monotonic() < deadline:
            short = {
                g: (have, want)
                for g, (have, want) in self._members(progress, supervisor).items()
                if have != want
            }
            if not short:
                return
            down = supervisor.down()
            if down and time.monotonic() > deadline - timeout / 2:
                inst = supervisor.instances[down[0]]
                raise RuntimeError(f"{down} do not stay up:\n{supervisor.log_tail(inst)}")
            time.sleep(1.0)
        raise RuntimeError(f"consumer groups without all their members after {timeout:.0f}s: {short}")

    def _members(self, progress: GroupProgress, supervisor: Supervisor) -> dict[str, tuple[int, int]]:
        """Per processor group, (members it has, instances running); a group being rebalanced or that
        cannot be described counts -1 members."""
        want: dict[str, int] = {}
        for inst in supervisor.instances.values():
            if not inst.held:
                group = group_of(self.prefix, inst.processor.replace("_", "-"))
                want[group] = want.get(group, 0) + 1
        # A new admin client each time: a long-lived one kept answering NOT_COORDINATOR for minutes for
        # the groups of a broker that had been restarted (librdkafka's coordinator cache).
        admin = AdminClient(self.kafka_config)
        described = admin.describe_consumer_groups(list(want))
        out = {}
        for group, future in described.items():
            try:
                result = future.result(10)
                stable = str(result.state).endswith("STABLE")
                members = len(result.members) if stable else -1
            except Exception as exc:
                logger.debug("cannot describe group %s: %s", group, exc)
                members = -1
            out[group] = (members, want[group])
        return out

    def _members_check(self, progress: GroupProgress, supervisor: Supervisor, timeout: float = 60.0) -> Check:
        """Every group stable with one member per running instance (a group rebalancing is waited for)."""
        deadline = time.monotonic() + timeout
        short: dict[str, tuple[int, int]] = {}
        members: dict[str, tuple[int, int]] = {}
        while True:
            members = self._members(progress, supervisor)
            short = {g: m for g, m in members.items() if m[0] != m[1]}
            if not short or time.monotonic() > deadline:
                break
            time.sleep(2.0)
        detail = f"{len(members)} groups stable" + (f"; (members, instances) off: {short}" if short else "")
        return Check("consumer groups: every instance a member", not short, detail)

    def _drain(
        self, load: Load, progress: GroupProgress, quiet_s: float = 20.0, timeout: float = 300.0
    ) -> None:
        """Stop the load and wait until nothing moves: no group lags and no topic grows for ``quiet_s``."""
        t0 = time.monotonic()
        self._delete_schedules()
        codes = load.stop()
        logger.info("load stopped (simulators exited %s); draining", codes)
        last: dict[tuple[str, int], int] = {}
        still_since = time.monotonic()
        while time.monotonic() - t0 < timeout:
            try:
                ends = progress.ends(self._all_partitions(progress.admin))
            except Exception as exc:  # leaders still moving: ask again
                logger.warning("end offsets unavailable while draining: %s", exc)
                time.sleep(2.0)
                continue
            if ends != last:
                last, still_since = ends, time.monotonic()
            elif time.monotonic() - still_since >= quiet_s and not set(progress.lag()) - progress.excluded:
                self.report.drain_s = time.monotonic() - t0
                logger.info("drained in %.0fs", self.report.drain_s)
                return
            time.sleep(2.0)
        logger.warning("the pipeline did not come to rest within %.0fs", timeout)

    def _all_partitions(self, admin: AdminClient) -> set[tuple[str, int]]:
        meta = admin.list_topics(timeout=10)
        return {(name, p) for name, t in meta.topics.items() if self.prefix in name for p in t.partitions}

    def _delete_schedules(self) -> None:
        producer = Producer({**self.kafka_config, **PRODUCER_DEFAULTS})
        for site in LoadConfig(self.tenant).sites:
            producer.produce(f"{self.prefix}task.schedules", key=f"{site}-every-minute".encode(), value=None)
        producer.flush(30)

    # -- verdict ----------------------------------------------------------------------------------------
    def _verify(
        self, progress: GroupProgress, supervisor: Supervisor, load: Load, lane: KafkaToolsLane | None
    ) -> None:
        checks: list[Check] = []
        down = supervisor.down()
        checks.append(
            Check(
                "processors: none left down", not down, f"{len(supervisor.instances)} instances, down: {down}"
            )
        )
        members = self._members(progress, supervisor)
        short = {g: m for g, m in members.items() if m[0] != m[1]}
        checks.append(
            Check(
                "consumer groups: every instance a member",
                not short,
                f"{len(members)} groups; short: {short}",
            )
        )
        crashes = supervisor.crashes()
        checks.append(
            Check(
                "processors: no exit the drill did not cause (each was restarted, as Kubernetes would)",
                not crashes,
                f"exits by themselves: {crashes or 'none'}{self._exit_reasons(supervisor)}",
                warn_only=True,
            )
        )
        loops = {
            k: v for f in self.report.faults for k, v in f.crash_loops.items()
        } | supervisor.crash_looping()
        checks.append(
            Check(
                "processors: none in a crash loop",
                not loops,
                f"crash loops (left out of the recovery waits): {loops}" if loops else "none",
            )
        )
        lag = progress.lag()
        checks.append(Check("consumer groups: no lag", not lag, f"records behind: {lag or 'none'}"))
        not_recovered = [
            f"{f.kind} {f.target} (stuck: {', '.join(f.stuck) or '?'})"
            for f in self.report.faults
            if f.recovered is None
        ]
        checks.append(
            Check(
                "every fault recovered from by itself",
                not not_recovered and not self.report.skipped,
                f"{len(self.report.faults)} faults; not recovered: {not_recovered or 'none'}"
                + (f"; {len(self.report.skipped)} not injected" if self.report.skipped else ""),
            )
        )
        evidence = load_evidence(self.kafka_config, self.settings.registry_client_config(), self.prefix)
        self.report.topics = evidence.counts()
        checks += topology_checks(evidence)
        stores = StoreConfig(
            tenant_id=self.tenant,
            postgres_dsn=self.settings.postgres_dsn,
            postgres_schema=self.store_name,
            redis_url=self.settings.redis_url,
            influx_url=self.settings.influx_url,
            influx_database=self.store_name,
        )
        checks += store_checks(evidence, stores)
        if lane is not None:
            checks += lane.checks(self.kafka_config)
        self.report.checks = checks

    @staticmethod
    def _exit_reasons(supervisor: Supervisor) -> str:
        """The last error line of each instance that exited by itself (from its log)."""
        reasons = [
            f"{inst.name}: {supervisor.last_error(inst)[:200]}"
            for inst in supervisor.instances.values()
            if inst.crashes
        ]
        return f"; last errors: {reasons}" if reasons else ""

    def _cleanup(self, admin: AdminClient) -> None:
        """Drop what the run created in the shared stores and on the cluster (its logs stay)."""
        with contextlib.suppress(Exception):
            topics = [t for t in admin.list_topics(timeout=10).topics if self.prefix in t]
            if topics:
                for future in admin.delete_topics(topics).values():
                    future.result(30)
        with contextlib.suppress(Exception):
            import psycopg

            with psycopg.connect(self.settings.postgres_dsn, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self.store_name}" CASCADE')
        with contextlib.suppress(Exception):
            import httpx

            httpx.post(
                f"{self.settings.influx_url}/query",
                params={"q": f'DROP DATABASE "{self.store_name}"'},
                timeout=30,
            )
        with contextlib.suppress(Exception):
            import redis

            client = redis.Redis.from_url(self.settings.redis_url)
            keys = list(client.scan_iter(f"fleet:{self.tenant}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
