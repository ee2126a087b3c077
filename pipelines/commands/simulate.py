"""``fleet simulate``: drive a simulated robot fleet on the demo warehouse (see pipelines/simulator)."""

from __future__ import annotations

import argparse
import os

from pipelines.logsetup import setup_logging
from pipelines.settings import CommonSettings, load_settings
from pipelines.simulator.cli import DESCRIPTION, EPILOG, add_arguments, run_from_args

__all__ = ["add_parser"]


def _simulate(args: argparse.Namespace) -> int:
    if args.protocol == "vda5050":
        from pipelines.vda5050.settings import MqttSettings

        mqtt = load_settings(MqttSettings)
        setup_logging(mqtt.log_level, mqtt.log_format, processor="simulator")
        return run_from_args(
            args,
            kafka_config=mqtt.kafka_client_config(),
            registry_config=mqtt.registry_client_config(),
            topic_prefix=mqtt.topic_prefix,
            mqtt=mqtt.mqtt_options(),
            client_id=f"fleetstream-sim-{args.site}-{os.getpid()}",
        )
    settings = load_settings(CommonSettings)
    setup_logging(settings.log_level, settings.log_format, processor="simulator")
    return run_from_args(
        args,
        kafka_config=settings.kafka_client_config(),
        registry_config=settings.registry_client_config(),
        topic_prefix=settings.topic_prefix,
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="drive a simulated robot fleet: site map, registrations, telemetry (with optional faults)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=_simulate)
