"""`python -m pipelines.simulator ...`: the same as `fleet simulate ...`."""

from __future__ import annotations

import argparse
import sys

from pipelines.logsetup import setup_logging
from pipelines.settings import CommonSettings, load_settings

from .cli import DESCRIPTION, EPILOG, add_arguments, run_from_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.simulator",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    settings = load_settings(CommonSettings)
    setup_logging(settings.log_level, settings.log_format, processor="simulator")
    return run_from_args(
        args,
        kafka_config=settings.kafka_client_config(),
        registry_config=settings.registry_client_config(),
        topic_prefix=settings.topic_prefix,
    )


if __name__ == "__main__":
    sys.exit(main())
