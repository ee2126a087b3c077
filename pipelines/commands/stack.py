"""``fleet stack up|down|kill|status|env``: the local stack (deploy/local/stack.sh)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

__all__ = ["STACK_SCRIPT", "add_parser"]

STACK_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stack.sh"
SERVICES = ("kafka", "registry", "postgres", "redis", "influxdb", "mosquitto", "influxdb2")
OPTIONAL = ("influxdb2", "cluster")  # started only when named
NODES = tuple(f"kafka-{n}" for n in range(1, 10))  # the nodes of a Kafka run with --brokers N


def _run(args: argparse.Namespace) -> int:
    brokers = ["--brokers", str(args.brokers)] if args.brokers else []
    if brokers and args.action != "up":
        raise SystemExit("fleet stack: --brokers is an option of `up`")
    return subprocess.call([str(STACK_SCRIPT), args.action, *brokers, *args.services])


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stack",
        help="install, start, stop and report the local services",
        description="Runs Kafka (KRaft), Apicurio Registry, PostgreSQL, Redis, InfluxDB and Mosquitto as local "
        "processes on 127.0.0.1, data and logs under .local/. Installs once, then starts in seconds. "
        "`up --brokers 3` runs Kafka as three KRaft nodes kafka-1..3 (replication 3, min.insync.replicas 2); "
        "`up cluster` starts a separate three-node cluster beside a single-node Kafka (drills, benchmarks); "
        "`kill kafka-2` SIGKILLs one node.",
    )
    p.add_argument("action", choices=["up", "down", "kill", "status", "env"], help="what to do")
    p.add_argument(
        "services",
        nargs="*",
        choices=[[], *SERVICES, "cluster", *NODES],
        metavar="SERVICE",
        help=f"only these services (default: all but {' and '.join(OPTIONAL)}, which `up` starts only when "
        f"named): {', '.join((*SERVICES, 'cluster'))}, or kafka-N, one node of a Kafka run as a cluster",
    )
    p.add_argument(
        "--brokers",
        type=int,
        choices=range(1, 10),
        metavar="N",
        help="up: run Kafka as N KRaft nodes (default: as it runs now, else 1)",
    )
    p.set_defaults(func=_run)
