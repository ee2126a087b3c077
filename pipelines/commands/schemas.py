"""``fleet schemas check|register``: the schema-evolution gate and deploy-time registration."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "check", "register"]

DEFAULT_REGISTRY_URL = "http://127.0.0.1:18081/apis/ccompat/v7"


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


# -------------------------------------------------------------------------------------------- check


def check(args: argparse.Namespace) -> int:
    """Offline gate: .avsc files parse, match the models, and are FULL_TRANSITIVE compatible with history."""
    from fastavro import parse_schema

    from schemas.avrogen import drift
    from schemas.avsc import AVRO_DIR, history, load_schema, record_names
    from schemas.compat import check_record

    directory = Path(args.avro_dir) if args.avro_dir else AVRO_DIR
    records = args.records or record_names(directory)
    failures = 0

    if not args.skip_models:
        for line in drift(directory):
            _err(f"DRIFT  {line}")
            failures += 1
        if failures:
            _err(
                "       models (schemas/models.py) and .avsc files differ: fix the model, then run "
                "`python -m schemas.avrogen` (keep the previous .avsc under schemas/avro/history/)"
            )

    for record in records:
        try:
            current = load_schema(record, directory)
            earlier = history(record, directory)
            parse_schema(current)
            for version, old in earlier:
                try:
                    parse_schema(old)
                except Exception as exc:
                    raise ValueError(f"history v{version}: {exc}") from exc
        except Exception as exc:
            _err(f"FAIL   {record}: not a valid Avro schema: {exc}")
            failures += 1
            continue
        problems = check_record(record, current, earlier)
        versions = ", ".join(f"v{v}" for v, _ in earlier) or "no earlier versions"
        if problems:
            failures += len(problems)
            for problem in problems:
                _err(f"FAIL   {problem}")
        else:
            _out(f"ok     {record} (FULL_TRANSITIVE against {versions})")
    if failures:
        _err(f"schemas check: {failures} problem(s); incompatible changes must not reach a registry")
        return 1
    _out(f"schemas check: {len(records)} record(s) compatible")
    return 0


# ----------------------------------------------------------------------------------------- register


def _registry_and_prefix(args: argparse.Namespace) -> tuple[Any, str]:
    from schemas.registry import RegistryClient

    try:
        from pipelines.settings import CommonSettings, load_settings
    except ImportError:  # settings not available: plain environment
        url = args.registry_url or os.environ.get("FLEET_SCHEMA_REGISTRY_URL", DEFAULT_REGISTRY_URL)
        prefix = args.prefix if args.prefix is not None else os.environ.get("FLEET_TOPIC_PREFIX", "")
        return RegistryClient(url), prefix
    settings = load_settings(CommonSettings)
    config = settings.registry_client_config()
    if args.registry_url:
        config["url"] = args.registry_url
    prefix = args.prefix if args.prefix is not None else settings.topic_prefix
    return RegistryClient(**config), prefix


def register(args: argparse.Namespace) -> int:
    """Register every value subject of the catalog and set its compatibility, idempotently."""
    from schemas.avsc import load_schema
    from schemas.catalog import topics
    from schemas.errors import RegistryError

    registry, prefix = _registry_and_prefix(args)
    level = args.compatibility
    failures = 0
    with registry:
        for spec in topics(prefix, names=args.topics or None):
            if not spec.is_avro:
                continue
            subject = spec.subject
            schema = load_schema(spec.value)
            try:
                current_level = registry.get_compatibility(subject)
                if current_level != level:
                    if args.dry_run:
                        _out(f"would set   {subject}: compatibility {current_level or '(unset)'} -> {level}")
                    else:
                        registry.set_compatibility(level, subject)
                        _out(f"changed     {subject}: compatibility {current_level or '(unset)'} -> {level}")
                existing = registry.lookup(subject, schema)
                if existing is not None:
                    _out(f"unchanged   {subject}: {spec.value} already registered (id {existing})")
                    continue
                if args.dry_run:
                    ok, messages = registry.check_compatibility(subject, schema)
                    verdict = "compatible" if ok else "INCOMPATIBLE " + "; ".join(messages)
                    _out(f"would add   {subject}: {spec.value} ({verdict})")
                    failures += 0 if ok else 1
                    continue
                schema_id = registry.register(subject, schema)
                versions = registry.versions(subject)
                _out(
                    f"registered  {subject}: {spec.value} as version {max(versions or [1])} (id {schema_id})"
                )
            except RegistryError as exc:
                _err(f"refused     {subject}: {exc}")
                failures += 1
    if failures:
        _err(f"schemas register: {failures} subject(s) refused")
        return 1
    return 0


# ------------------------------------------------------------------------------------------- parser


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schemas",
        help="check schema evolution offline (CI gate) and register schemas in the registry",
        description="The Avro contracts in schemas/avro/: `check` is the offline CI gate (no registry "
        "needed), `register` applies them to a Confluent-compatible registry at deploy time.",
    )
    actions = p.add_subparsers(dest="schemas_action", metavar="ACTION", required=True)

    c = actions.add_parser(
        "check",
        help="refuse incompatible schema changes (offline)",
        description="For every record: the .avsc parses, matches its pydantic model (schemas/models.py), "
        "and is FULL_TRANSITIVE compatible with every earlier version in schemas/avro/history/<Record>/ "
        "(new reads old and old reads new). Exits 1 naming the record, field and rule broken.",
    )
    c.add_argument("records", nargs="*", metavar="RECORD", help="only these records (default: all)")
    c.add_argument("--avro-dir", help="directory with <Record>.avsc and history/ (default: the package's)")
    c.add_argument(
        "--skip-models", action="store_true", help="do not compare the .avsc files with the models"
    )
    c.set_defaults(func=check)

    r = actions.add_parser(
        "register",
        help="register every value subject and set its compatibility (idempotent)",
        description="For every Avro topic of the catalog: sets the subject's compatibility (default "
        "FULL_TRANSITIVE) and registers the current schema under <prefix><topic>-value "
        "(TopicNameStrategy). Prints what changed; exits 1 if the registry refuses a schema. Reads "
        "FLEET_SCHEMA_REGISTRY_URL (+ _USERNAME, _PASSWORD, _CA_LOCATION) and FLEET_TOPIC_PREFIX.",
    )
    r.add_argument("topics", nargs="*", metavar="TOPIC", help="only these catalog topics (default: all)")
    r.add_argument("--registry-url", help="override FLEET_SCHEMA_REGISTRY_URL")
    r.add_argument("--prefix", help="override FLEET_TOPIC_PREFIX")
    r.add_argument(
        "--compatibility",
        default="FULL_TRANSITIVE",
        choices=[
            "BACKWARD",
            "BACKWARD_TRANSITIVE",
            "FORWARD",
            "FORWARD_TRANSITIVE",
            "FULL",
            "FULL_TRANSITIVE",
        ],
        help="compatibility level per subject (default: FULL_TRANSITIVE)",
    )
    r.add_argument("--dry-run", action="store_true", help="report what would change; change nothing")
    r.set_defaults(func=register)
