"""``fleet dlq replay``: re-process dead-lettered records once their cause is fixed."""

from __future__ import annotations

import argparse

from pipelines.dlq import dlq_topic_name, replay
from pipelines.logsetup import setup_logging
from pipelines.settings import CommonSettings, load_settings

__all__ = ["add_parser"]


def _replay(args: argparse.Namespace) -> int:
    setup_logging("INFO", "text", processor="dlq")
    settings = load_settings(CommonSettings)
    dlq_topic = dlq_topic_name(args.processor, settings.topic_prefix)
    stats = replay(
        settings.kafka_client_config(),
        dlq_topic=dlq_topic,
        group_id=f"{settings.topic_prefix}fleet-dlq-replay-{args.processor}",
        target_topic=settings.topic(args.to) if args.to else None,
        max_records=args.max,
        idle_timeout_s=args.idle_timeout,
        dry_run=args.dry_run,
    )
    verb = "would replay" if args.dry_run else "replayed"
    print(  # noqa: T201 - the command's report
        f"{dlq_topic}: read {stats['read']}, {verb} {stats['replayed']}, skipped {stats['skipped']}"
    )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dlq",
        help="dead-letter topics: replay records after their cause is fixed",
        description="Dead letters keep their original key, value and headers, plus fleet-dlq-* headers naming the "
        "error and the topic/partition/offset they came from.\n\n"
        "  fleet dlq replay telemetry            re-produce dlq.telemetry's records to their original topics\n"
        "  fleet dlq replay sink-postgres --dry-run\n\n"
        "The replay's consumer group (fleet-dlq-replay-<processor>) commits after every acknowledged batch, so "
        "a second replay re-sends nothing; replayed records carry a fleet-replayed-from header.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    r = actions.add_parser("replay", help="re-produce dead letters of one processor to their original topics")
    r.add_argument(
        "processor", help="the processor whose dlq.<processor> to replay (e.g. telemetry, sink-postgres)"
    )
    r.add_argument(
        "--to", metavar="TOPIC", help="produce to this catalog topic instead of each record's origin"
    )
    r.add_argument("--max", type=int, help="replay at most this many records")
    r.add_argument(
        "--idle-timeout", type=float, default=5.0, help="stop after this many seconds without records"
    )
    r.add_argument(
        "--dry-run", action="store_true", help="count what would be replayed; produce and commit nothing"
    )
    r.set_defaults(func=_replay)
