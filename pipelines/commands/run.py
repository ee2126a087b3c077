"""``fleet run <processor>``: run one deployable processor in the foreground."""

from __future__ import annotations

import argparse
import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType

import pipelines.processors
from pipelines.logsetup import setup_logging
from pipelines.metrics import start_metrics_server
from pipelines.settings import ConfigError, load_settings

__all__ = ["add_parser", "processor_module", "processor_names"]


def processor_names() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(pipelines.processors.__path__) if not m.name.startswith("_")
    )


def processor_module(name: str) -> ModuleType:
    """The module of processor ``name``: it defines ``Settings`` (a CommonSettings) and ``run(settings)``."""
    return importlib.import_module(f"pipelines.processors.{name}")


def _summary(name: str) -> str:
    """First docstring line, read from the source: listing processors imports none of them."""
    source = Path(pipelines.processors.__path__[0]) / f"{name}.py"
    doc = ast.get_docstring(ast.parse(source.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _run(args: argparse.Namespace) -> int:
    module = processor_module(args.processor)
    overrides: dict[str, int] = {}
    if args.workers is not None:
        if "http_workers" not in module.Settings.model_fields:
            raise ConfigError(f"--workers is for the gateway; {args.processor} scales by replicas")
        overrides["http_workers"] = args.workers
    settings = load_settings(module.Settings, **overrides)
    setup_logging(settings.log_level, settings.log_format, processor=args.processor)
    start_metrics_server(settings.metrics_port)
    module.run(settings)
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    names = processor_names()
    listing = "\n".join(f"  {n:<16} {_summary(n)}" for n in names)
    p = sub.add_parser(
        "run",
        help="run one processor (a topology, a sink, the timer service, the gateway, the planner)",
        description=f"Runs one deployable in the foreground until SIGTERM/Ctrl-C.\n\nProcessors:\n{listing}\n\n"
        "Each reads its settings from FLEET_* environment variables; a bad value stops it at start-up "
        "with the variable and the reason.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("processor", choices=names, metavar="PROCESSOR", help="one of: " + ", ".join(names))
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="gateway only: uvicorn worker processes (overrides FLEET_HTTP_WORKERS; see docs/operations.md)",
    )
    p.set_defaults(func=_run)
