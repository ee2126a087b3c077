"""``fleet bench``: run the benchmarks and print figures with ratios against raw baselines."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import pkgutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pipelines.bench
from pipelines.logsetup import setup_logging

__all__ = ["add_parser", "format_rows"]

logger = logging.getLogger("fleet.bench")


def _names() -> list[str]:
    return sorted(
        m.name for m in pkgutil.iter_modules(pipelines.bench.__path__) if not m.name.startswith("_")
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return str(value)


def format_rows(rows: list[dict[str, Any]]) -> str:
    header = f"{'benchmark':<44} {'value':>14} {'unit':<12} {'baseline':>14} {'ratio':>7}  goal"
    out = [header, "-" * len(header)]
    for r in rows:
        ratio = r.get("ratio")
        out.append(
            f"{r['name']:<44} {_fmt(r.get('value')):>14} {r.get('unit', ''):<12} {_fmt(r.get('baseline')):>14} "
            f"{(f'{ratio:.0%}' if isinstance(ratio, float) else '-'):>7}  {r.get('goal', '')}"
        )
    return "\n".join(out)


def _run(args: argparse.Namespace) -> int:
    setup_logging("INFO", "text", processor="bench")
    names = args.only or _names()
    unknown = sorted(set(names) - set(_names()))
    if unknown:
        sys.stderr.write(
            f"fleet bench: unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(_names())}\n"
        )
        return 2
    rows: list[dict[str, Any]] = []
    failed = []
    for name in names:
        logger.info("benchmark %s ...", name)
        t0 = time.monotonic()
        try:
            got = importlib.import_module(f"pipelines.bench.{name}").run()
        except Exception:
            failed.append(name)
            logger.error("benchmark %s failed:\n%s", name, traceback.format_exc())
            continue
        rows.extend(got)
        logger.info("benchmark %s done in %.0fs", name, time.monotonic() - t0)
    print(format_rows(rows))  # noqa: T201 - the report is the command's output
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"at": time.time(), "rows": rows, "failed": failed}, indent=2))
    print(f"\nresults written to {out}")  # noqa: T201
    if failed:
        print(f"failed: {', '.join(failed)}")  # noqa: T201
    return 1 if failed else 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="run the benchmarks (figures and ratios against raw baselines measured in the same run)",
        description="Runs every module in pipelines/bench (or --only NAME ...) against the local stack and prints "
        "a table: value, unit, the raw baseline measured in the same run, the ratio and the goal.",
    )
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    p.add_argument("--output", default=".local/bench/results.json", help="where to write the JSON results")
    p.set_defaults(func=_run)
