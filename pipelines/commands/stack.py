"""``fleet stack up|down|status|env``: the local stack (deploy/local/stack.sh)."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

__all__ = ["STACK_SCRIPT", "add_parser"]

STACK_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stack.sh"
SERVICES = ("kafka", "registry", "postgres", "redis", "influxdb", "mosquitto", "influxdb2")


def _run(args: argparse.Namespace) -> int:
    return subprocess.call([str(STACK_SCRIPT), args.action, *args.services])


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stack",
        help="install, start, stop and report the local services",
        description="Runs Kafka (KRaft), Apicurio Registry, PostgreSQL, Redis, InfluxDB and Mosquitto as local "
        "processes on 127.0.0.1, data and logs under .local/. Installs once, then starts in seconds.",
    )
    p.add_argument("action", choices=["up", "down", "status", "env"], help="what to do")
    p.add_argument(
        "services",
        nargs="*",
        choices=[[], *SERVICES],
        metavar="SERVICE",
        help=f"only these services (default: all but influxdb2, the InfluxDB 1.12 of the /api/v2/write "
        f"tests, which `up` starts only when named): {', '.join(SERVICES)}",
    )
    p.set_defaults(func=_run)
