"""The drill's load: two simulated sites whose robots follow the pipeline's decisions, plus cron schedules.

Each site is one ``fleet simulate --follow`` process (seeded, so the same plan gives the same fleet, the
same task stream and the same robot behaviour for the same decisions): it publishes its map and robots,
creates delivery tasks, and drives its robots by what dispatch and traffic decide, reporting their task
phases. The runner adds one TaskSchedule per site (a task every minute from cron) on ``task.schedules``,
so the tasks topology's schedule path, the timer service and the cron tasks are under load as well.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from confluent_kafka import Producer

from pipelines.settings import PRODUCER_DEFAULTS
from pipelines.simulator.warehouse import demo_site
from schemas.codec import AvroCodec
from schemas.ids import det_uuid7, now_ms
from schemas.registry import RegistryClient

__all__ = ["Load", "LoadConfig", "schedule_record"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadConfig:
    """What the drill puts on the pipeline. Rates are per site."""

    tenant_id: str
    sites: tuple[str, ...] = ("drill-a", "drill-b")
    robots: int = 8
    rate_hz: float = 2.0
    tasks_per_minute: float = 6.0
    speed_scale: float = 4.0
    work_time_s: float = 2.0
    seed: int = 19
    schedule_cron: str = "* * * * *"  # one cron task per site and minute


def schedule_record(
    tenant_id: str, site_id: str, cron: str, at_ms: int, pickup: str | None, dropoff: str | None
) -> dict[str, Any]:
    """The drill's TaskSchedule of ``site_id``: a delivery from ``pickup`` to ``dropoff``."""
    return {
        "event_id": det_uuid7(at_ms, "drill-schedule", tenant_id, site_id),
        "tenant_id": tenant_id,
        "site_id": site_id,
        "occurred_at": at_ms,
        "schedule_id": f"{site_id}-every-minute",
        "cron": cron,
        "timezone": "UTC",
        "template": {
            "category": "delivery",
            "priority": 5,
            "pickup_node": pickup,
            "dropoff_node": dropoff,
            "required_capabilities": ["tote"],
            "deadline": None,
            "timeout_ms": None,
            "max_attempts": 3,
            "depends_on": [],
            "on_dependency_failure": "FAIL",
            "fleet_id": None,
            "robot_id": None,
            "labels": {"source": "drill-schedule"},
            "payload_json": None,
        },
        "enabled": True,
        "misfire_policy": "FIRE_ONCE",
    }


@dataclass
class Load:
    """The simulators of a drill run, as child processes of the runner."""

    config: LoadConfig
    env: dict[str, str]
    log_dir: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self) -> None:
        cfg = self.config
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for n, site in enumerate(cfg.sites):
            argv = [
                sys.executable, "-m", "pipelines.cli", "simulate", "--quiet",
                "--site", site, "--tenant", cfg.tenant_id, "--fleet", f"{site}-fleet",
                "--robots", str(cfg.robots), "--rate", str(cfg.rate_hz), "--seed", str(cfg.seed + n),
                "--follow", "--tasks-per-minute", str(cfg.tasks_per_minute),
                "--speed-scale", str(cfg.speed_scale), "--work-time", str(cfg.work_time_s),
            ]  # fmt: skip
            log = (self.log_dir / f"simulator-{site}.log").open("ab")
            self._logs.append(log)
            self.procs[site] = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            logger.info("simulator of %s started (pid %d)", site, self.procs[site].pid)

    def publish_schedules(
        self, kafka_config: dict[str, Any], registry_config: dict[str, Any], prefix: str
    ) -> int:
        """One TaskSchedule per site; returns how many."""
        registry = RegistryClient(**registry_config)
        codec = AvroCodec.for_topic(registry, "task.schedules", prefix)
        producer = Producer({**kafka_config, **PRODUCER_DEFAULTS})
        at = now_ms()
        for n, site in enumerate(self.config.sites):
            pickup, dropoff = self.docks(n)
            record = schedule_record(
                self.config.tenant_id, site, self.config.schedule_cron, at, pickup, dropoff
            )
            producer.produce(
                f"{prefix}task.schedules", key=record["schedule_id"].encode(), value=codec.encode(record)
            )
        left = producer.flush(30)
        registry.close()
        if left:
            raise RuntimeError(f"{left} schedules not delivered within 30 s")
        return len(self.config.sites)

    def docks(self, n: int) -> tuple[str, str]:
        """The first pick-up and drop-off node of site ``n``'s map (the simulator's map, same seed)."""
        cfg = self.config
        site = demo_site(cfg.sites[n], cfg.tenant_id, cfg.seed + n)
        kinds: dict[str, list[str]] = {}
        for node in site["nodes"]:
            kinds.setdefault(node["kind"], []).append(node["id"])
        return sorted(kinds["PICKUP"])[0], sorted(kinds["DROPOFF"])[0]

    def exited(self) -> dict[str, int]:
        """Simulators that stopped on their own, with their exit codes."""
        return {site: p.returncode for site, p in self.procs.items() if p.poll() is not None}

    def stop(self, timeout: float = 60.0) -> dict[str, int | None]:
        """SIGTERM every simulator (they flush what they produced) and wait; their exit codes."""
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for site, proc in self.procs.items():
            try:
                codes[site] = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[site] = None
        for log in self._logs:
            log.close()
        return codes

    def log_tail(self, site: str, chars: int = 2000) -> str:
        path = self.log_dir / f"simulator-{site}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
