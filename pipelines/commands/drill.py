"""``fleet drill [short|rebalance|full]``: prove "nothing lost, nothing duplicated" under faults.

Runs the pipeline on the local three-node Kafka cluster (``stack.sh up cluster``, started when it is not
running; replication 3, ``min.insync.replicas`` 2) with several instances of each processor, drives two
simulated sites, injects the plan's faults one after the other, drains, and verifies every topic and
store. Prints one line per fault and per check; exit 0 only when every check passes. docs/reliability.md
says what each drill proves.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["add_parser", "stack_clients"]

logger = logging.getLogger("fleet.drill")


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


#: The drill's client settings and how each is made from the local stack's port (deploy/local/stack.sh).
_CLIENTS = {
    "FLEET_SCHEMA_REGISTRY_URL": ("schema_registry_url", "registry", "http://127.0.0.1:{}/apis/ccompat/v7"),
    "FLEET_POSTGRES_DSN": ("postgres_dsn", "postgres", "postgresql://fleet@127.0.0.1:{}/fleetstream"),
    "FLEET_REDIS_URL": ("redis_url", "redis", "redis://127.0.0.1:{}/0"),
    "FLEET_INFLUX_URL": ("influx_url", "influxdb", "http://127.0.0.1:{}"),
}


def stack_clients(env: Mapping[str, str]) -> dict[str, str]:
    """The drill's registry and store URLs on this checkout's stack (its FLEET_*_PORT), for each that
    ``env`` does not set: the drill takes those services down through stack.sh, so the processors must
    write to the same ones (as the Makefile derives them)."""
    from pipelines.commands.up import service_ports

    ports = service_ports(env)
    return {
        field: template.format(ports[service])
        for var, (field, service, template) in _CLIENTS.items()
        if not env.get(var)
    }


def _drill(args: argparse.Namespace) -> int:
    from pipelines.drill import DrillRunner, DrillSettings, plan
    from pipelines.logsetup import setup_logging
    from pipelines.settings import load_settings

    setup_logging("INFO", "text", processor="drill")
    chosen = plan(args.plan)
    if args.list:
        for line in chosen.describe():
            _out(line)
        return 0
    settings = load_settings(DrillSettings, **stack_clients(os.environ))
    runner = DrillRunner(
        chosen,
        settings,
        run_dir=Path(args.run_dir) if args.run_dir else None,
        keep=args.keep,
        kafka_tools=None if args.kafka_tools is None else args.kafka_tools == "on",
    )
    for line in chosen.describe():
        _out(line)
    report = runner.run()
    for line in report.lines():
        _out(line)
    _out(f"report: {runner.run_dir / 'report.json'}; logs: {runner.run_dir / 'logs'}")
    return 0 if report.ok else 1


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drill",
        help="run a fault drill on the local three-node cluster and verify nothing was lost or duplicated",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "plan",
        nargs="?",
        default="short",
        choices=["short", "rebalance", "full"],
        help="short: ~5 min (a processor kill, a leader broker kill, Postgres down 15 s); rebalance: ~5 min "
        "(instances added and removed under load); full: ~30 min (every fault, docs/reliability.md)",
    )
    p.add_argument("--list", action="store_true", help="print the plan's processors and faults, run nothing")
    p.add_argument("--keep", action="store_true", help="keep the run's topics, schema, database and keys")
    p.add_argument("--run-dir", help="state, logs and report.json here (default: .local/drills/<run id>)")
    p.add_argument(
        "--kafka-tools",
        choices=["on", "off"],
        default=None,
        help="the independent cluster check with Kafka's VerifiableProducer and TransactionalMessageCopier "
        "(default: on for full, off for the short drills)",
    )
    p.set_defaults(func=_drill)
