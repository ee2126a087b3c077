"""The drills: which processors run how many times, the load, and the faults in the order injected.

- ``short`` (about 5 minutes, in ``make test``): one processor kill, one kill of a partition leader
  broker, Postgres down 15 s.
- ``rebalance`` (about 5 minutes, in ``make test``): instances added and removed under load, one
  processor after the other; the verifier shows the outputs unchanged by it.
- ``full`` (about 30 minutes): every instance of every processor killed -9 one at a time, both instances
  of each topology at once, the partition leader and the active controller killed, a broker bounced
  cleanly, Postgres, Redis and InfluxDB down 30 s each, instances stalled with SIGSTOP past their
  session timeout and continued, and instances added and removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipelines.drill.faults import (
    BrokerBounce,
    BrokerKill,
    Fault,
    ProcessorKill,
    ProcessorStall,
    ScaleIn,
    ScaleOut,
    ServiceOutage,
)

__all__ = ["PLANS", "SINKS", "TOPOLOGIES", "DrillPlan", "plan"]

TOPOLOGIES = ("telemetry", "tasks", "dispatch", "traffic")
SINKS = ("sink-postgres", "sink-influx", "sink-redis")
TIMERS = "timers"


@dataclass(frozen=True)
class DrillPlan:
    """One drill: processors and their instances (hyphenated names), the load, the faults in order."""

    name: str
    instances: dict[str, int]
    faults: tuple[Fault, ...]
    warmup_s: float = 45.0  # load before the first fault
    gap_s: float = 10.0  # load between a recovery and the next fault
    tail_s: float = 30.0  # load after the last recovery
    robots: int = 8  # per site
    rate_hz: float = 2.0
    tasks_per_minute: float = 6.0  # per site, besides one cron task per site and minute
    broker_down_s: float = 15.0
    recovery_timeout_s: float = 240.0
    kafka_tools: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    def describe(self) -> list[str]:
        procs = ", ".join(f"{p} x{n}" for p, n in self.instances.items())
        return [
            f"drill {self.name}: {procs}",
            *(f"  {i + 1:>2}. {f.describe()}" for i, f in enumerate(self.faults)),
        ]


def _instances(topologies: int, others: int) -> dict[str, int]:
    return {**dict.fromkeys(TOPOLOGIES, topologies), TIMERS: others, **dict.fromkeys(SINKS, others)}


def _short() -> DrillPlan:
    return DrillPlan(
        name="short",
        instances=_instances(2, 1),
        faults=(
            ProcessorKill("telemetry"),
            BrokerKill("leader", "robot.telemetry"),
            ServiceOutage("postgres", 15.0),
        ),
        warmup_s=40.0,
        gap_s=5.0,
        tail_s=15.0,
        robots=6,
        broker_down_s=10.0,
        recovery_timeout_s=90.0,
        kafka_tools=False,
    )


def _rebalance() -> DrillPlan:
    faults: list[Fault] = []
    for processor in ("telemetry", "tasks", "dispatch", "traffic"):
        faults += [ScaleOut(processor), ScaleIn(processor)]
    return DrillPlan(
        name="rebalance",
        instances=_instances(2, 1),
        faults=tuple(faults),
        warmup_s=30.0,
        gap_s=5.0,
        tail_s=15.0,
        robots=6,
        recovery_timeout_s=120.0,
        kafka_tools=False,
    )


def _full() -> DrillPlan:
    everyone = (*TOPOLOGIES, TIMERS, *SINKS)
    kills: list[Fault] = [ProcessorKill(p, 1, index=i) for i in (1, 2) for p in everyone]
    faults: list[Fault] = [
        *kills[:4],
        BrokerKill("leader", "robot.telemetry"),
        *kills[4:8],
        ServiceOutage("postgres", 30.0),
        ProcessorKill("telemetry", 2),
        ProcessorKill("tasks", 2),
        BrokerKill("controller"),
        *kills[8:12],
        ServiceOutage("redis", 30.0),
        ProcessorStall("telemetry", 20.0),
        ProcessorKill("dispatch", 2),
        ProcessorKill("traffic", 2),
        BrokerBounce(),
        *kills[12:16],
        ServiceOutage("influxdb", 30.0),
        ProcessorStall("tasks", 20.0),
        BrokerKill("leader", "task.events"),
        ScaleOut("telemetry"),
        ScaleOut("tasks"),
        ScaleIn("telemetry"),
        ScaleIn("tasks"),
    ]
    return DrillPlan(
        name="full",
        instances=_instances(2, 2),
        faults=tuple(faults),
        warmup_s=60.0,
        gap_s=10.0,
        tail_s=60.0,
    )


PLANS = {"short": _short, "rebalance": _rebalance, "full": _full}


def plan(name: str) -> DrillPlan:
    if name not in PLANS:
        raise ValueError(f"no drill {name!r}; known: {', '.join(PLANS)}")
    return PLANS[name]()
