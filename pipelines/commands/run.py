"""``fleet run <processor>``: run one deployable processor in the foreground."""

from __future__ import annotations

import argparse
from typing import Any

from pipelines.logsetup import setup_logging
from pipelines.metrics import start_metrics_server
from pipelines.processors import PROCESSORS, processor
from pipelines.settings import ConfigError, load_settings

__all__ = ["add_parser"]


def _print_settings(settings_class: Any) -> None:
    """Each FLEET_* variable of a processor, its default and what it means."""
    for name, field in settings_class.model_fields.items():
        default = "(required)" if field.is_required() else repr(field.get_default())
        print(f"FLEET_{name.upper():<36} {default:<12} {field.description or ''}")  # noqa: T201 - the output


def _run(args: argparse.Namespace) -> int:
    proc = processor(args.processor)
    if args.settings:
        _print_settings(proc.settings)
        return 0
    overrides: dict[str, int] = {}
    if args.workers is not None:
        if "http_workers" not in proc.settings.model_fields:
            raise ConfigError(f"--workers is for the gateway; {proc.name} scales by replicas")
        overrides["http_workers"] = args.workers
    settings = load_settings(proc.settings, **overrides)
    setup_logging(settings.log_level, settings.log_format, processor=proc.name)
    start_metrics_server(settings.metrics_port)
    proc.run(settings)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    listing = "\n".join(f"  {p.name:<16} {p.summary}" for p in PROCESSORS.values())
    p = sub.add_parser(
        "run",
        help="run one processor (a topology, a sink, the timer service, the gateway, the planner)",
        description=f"Runs one deployable in the foreground until SIGTERM/Ctrl-C.\n\nProcessors:\n{listing}\n\n"
        "Each reads its settings from FLEET_* environment variables; a bad value stops it at start-up "
        "with the variable and the reason (`fleet run PROCESSOR --settings` lists them). The old underscore "
        "names (sink_postgres) still work, with a warning.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("processor", metavar="PROCESSOR", help="one of: " + ", ".join(PROCESSORS))
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="gateway only: uvicorn worker processes (overrides FLEET_HTTP_WORKERS; see docs/operations.md)",
    )
    p.add_argument(
        "--settings",
        action="store_true",
        help="list the processor's FLEET_* settings with their defaults and meanings, and exit",
    )
    p.set_defaults(func=_run)
