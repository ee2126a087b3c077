"""``fleet replay PROCESSOR``: re-process a processor's recorded input topics from empty state, in
event-time order (pipelines/replay.py)."""

from __future__ import annotations

import argparse
import sys

from pipelines.logsetup import setup_logging
from pipelines.processors import PROCESSORS, processor
from pipelines.replay import ReplayError, replay
from pipelines.settings import load_settings

__all__ = ["add_parser"]


def _run(args: argparse.Namespace) -> int:
    proc = processor(args.processor)
    settings = load_settings(proc.settings)
    setup_logging(settings.log_level, settings.log_format, processor=proc.name)
    try:
        report = replay(proc.name, settings, idle_timeout_s=args.idle_timeout, progress=_say)
    except ReplayError as exc:
        sys.stderr.write(f"fleet replay: {exc}\n")
        return 1
    _say(report.line())
    return 0


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


def _say(line: str) -> None:
    print(f"[replay] {line}", flush=True)  # noqa: T201 - the command's progress output


def add_parser(sub: argparse._SubParsersAction) -> None:
    names = [p.name for p in PROCESSORS.values() if p.replay]
    p = sub.add_parser(
        "replay",
        help="re-process a processor's recorded input topics from empty state, in event-time order",
        description="Reads every input topic of PROCESSOR under FLEET_TOPIC_PREFIX to its end, writes its "
        "inbox in event-time order (timestamp, then input, then key; each key's records in log order), "
        "then runs the processor over that inbox from empty state until it has read it to the end, and "
        "exits. The same recorded topics, with any partition counts, give the same output records. The "
        "inbox must be empty and no earlier run may have left the processor's state (changelog topics, "
        "local state directory): copy the recorded topics under a new FLEET_TOPIC_PREFIX first. Live, the "
        "processor feeds its inbox in the order it happens to read its inputs (docs/records.md, Inboxes).",
    )
    p.add_argument("processor", metavar="PROCESSOR", choices=names, help="one of: " + ", ".join(names))
    p.add_argument(
        "--idle-timeout",
        type=_positive,
        default=5.0,
        metavar="S",
        help="stop once nothing new has been read from the inbox for this long (default 5 s)",
    )
    p.set_defaults(func=_run)
