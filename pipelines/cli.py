"""``fleet``: the command line of fleetstream.

Subcommands live one per module in ``pipelines/commands/``; each module defines
``add_parser(subparsers)`` and sets ``func(args) -> int``. Run ``fleet --help`` for the list.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import warnings

import pipelines.commands
from pipelines.settings import ConfigError

__all__ = ["build_parser", "main"]

DESCRIPTION = """\
fleetstream: a Kafka-native backend for fleets of warehouse robots.

Typical use:
  fleet stack up                 start Kafka, the registry, Postgres, Redis, InfluxDB, Mosquitto locally
  fleet topics apply             create or update every topic of the catalog
  fleet schemas register         register every schema in the registry
  fleet run telemetry            run one processor (see `fleet run --help` for the list)
  fleet up                       all of the above plus every processor, the gateway and a simulated fleet
  fleet simulate --robots 50     drive a simulated fleet on the demo warehouse

Configuration comes from FLEET_* environment variables (see README, "Configuration").
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod in sorted(pkgutil.iter_modules(pipelines.commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"pipelines.commands.{mod.name}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", module="authlib.*")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        sys.stderr.write(f"fleet: {exc}\n")
        return 2
    except KeyboardInterrupt:
        logging.getLogger("fleet").info("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
