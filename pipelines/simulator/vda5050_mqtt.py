"""``fleet simulate --protocol vda5050``: the simulated fleet as VDA 5050 vehicles on an MQTT broker.

The robots of a :class:`FleetSim` become :class:`~pipelines.simulator.vda5050.VdaFleet` vehicles of one
manufacturer (serial number = robot id) that publish ``connection`` (ONLINE, retained; OFFLINE when the run
ends), ``factsheet`` (retained) and a ``state`` per robot per tick (spread over the tick in ``phases``
slices, not in one burst), and carry out the orders and instant
actions fleetstream's bridge (``fleet run vda5050``) sends them. The site map goes to ``site.maps`` (the
bridge builds orders on it) and, with ``tasks_per_minute``, delivery tasks to ``task.commands``; nothing
else is written to Kafka: the bridge registers the vehicles from their factsheets and turns their states
into telemetry.

All vehicles share one MQTT connection (the broker account ``fleetstream-sim`` may speak for the
manufacturer ``fleetstream-sim`` only, see deploy/local/mosquitto/acl), so the broker keeps no last will
per vehicle; a robot switched off publishes CONNECTIONBROKEN itself, as the broker would.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Producer

from pipelines.settings import PRODUCER_DEFAULTS
from pipelines.vda5050.mqtt import MqttClient, MqttError
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.ids import now_ms as wall_now_ms
from schemas.registry import RegistryClient

from .fleet import FleetConfig, FleetSim
from .follow import TASK_COMMANDS_TOPIC, TaskFeeder
from .vda5050 import Outgoing, VdaFleet
from .warehouse import demo_site

__all__ = ["VdaSimConfig", "VdaSimStats", "run_vda5050"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VdaSimConfig:
    """One run of simulated VDA 5050 vehicles."""

    site_id: str = "demo"
    tenant_id: str = "acme"
    robots: int = 10
    rate_hz: float = 2.0  # state messages per vehicle per second
    #: A tick's states go out in this many slices spread over the tick, as vehicles with clocks of their own
    #: send them (1: every vehicle's state in one burst at the start of the tick).
    phases: int = 10
    duration_s: float | None = None
    seed: int = 0
    version: str = "2.1.0"
    manufacturer: str = "fleetstream-sim"
    interface: str = "uagv"
    skip: int = 0  # robots placed (on the first parking spots) by another simulator of the same seed
    speed_scale: float = 1.0
    site_map: Mapping[str, Any] | None = None  # None: the demo warehouse (layouts.py makes others)
    action_ms: int = 3000
    tasks_per_minute: float = 0.0
    task_limit: int | None = None
    publish_site: bool = True
    progress_interval_s: float = 5.0
    mqtt: Mapping[str, Any] = field(default_factory=dict)  # MqttClient arguments (host, port, credentials)
    client_id: str = "fleetstream-sim"
    kafka_config: Mapping[str, Any] = field(default_factory=dict)
    registry_config: Mapping[str, Any] = field(default_factory=dict)
    topic_prefix: str = ""


@dataclass
class VdaSimStats:
    ticks: int = 0
    states: int = 0
    received: int = 0
    tasks_created: int = 0
    elapsed_s: float = 0.0


def _sim(config: VdaSimConfig, start_ms: int) -> tuple[dict[str, Any], FleetSim]:
    if config.site_map is None:
        site_map = demo_site(config.site_id, config.tenant_id, config.seed, occurred_at=start_ms)
    else:
        site_map = {**config.site_map, "site_id": config.site_id, "tenant_id": config.tenant_id}
    fleet_config = FleetConfig(
        tenant_id=config.tenant_id,
        robots=config.skip + config.robots,
        seed=config.seed,
        autonomous=False,
        self_charge=False,
        work_ms=0,
        start_dwell_ms=0,
        speed_scale=config.speed_scale,
        robot_prefix=f"{config.site_id}-vda",
        model="SimAGV-VDA",
    )
    return site_map, FleetSim(site_map, fleet_config, start_ms)


def run_vda5050(config: VdaSimConfig, stop_event: threading.Event | None = None) -> VdaSimStats:
    """Run until ``stop_event`` is set or ``duration_s`` passed."""
    stop = stop_event or threading.Event()
    stats = VdaSimStats()
    start = wall_now_ms()
    site_map, sim = _sim(config, start)
    fleet = VdaFleet(sim, manufacturer=config.manufacturer, version=config.version, interface=config.interface,
                     action_ms=config.action_ms, skip=config.skip)  # fmt: skip
    inbox: queue.SimpleQueue[tuple[str, bytes, int]] = queue.SimpleQueue()
    mqtt = MqttClient(**dict(config.mqtt), client_id=config.client_id, subscriptions=fleet.subscriptions(),
                      on_message=lambda t, p, at: inbox.put((t, p, at)), qos=0)  # fmt: skip
    producer = Producer({**dict(config.kafka_config), **PRODUCER_DEFAULTS, "linger.ms": 5})
    registry = RegistryClient(**dict(config.registry_config))
    feeder = (
        TaskFeeder(sim, per_minute=config.tasks_per_minute, limit=config.task_limit, seed=config.seed)
        if config.tasks_per_minute > 0
        else None
    )
    codecs = {
        name: AvroCodec.for_topic(registry, name, config.topic_prefix)
        for name in (catalog.SITE_MAPS, TASK_COMMANDS_TOPIC)
    }

    def produce(name: str, key: str, record: dict[str, Any]) -> None:
        producer.produce(f"{config.topic_prefix}{name}", key=key.encode(), value=codecs[name].encode(record))

    def publish(messages: list[Outgoing]) -> None:
        for topic, message, qos, retain in messages:
            payload = orjson.dumps(message)
            while True:
                try:
                    mqtt.publish(topic, payload, qos=qos, retain=retain)
                    break
                except MqttError:
                    if stop.is_set():
                        return
                    mqtt.wait_connected(1.0)

    mqtt.connect()
    if config.publish_site:
        produce(catalog.SITE_MAPS, config.site_id, site_map)
        producer.flush(10)
    publish(fleet.start(start))
    logger.info(
        "%d VDA 5050 %s vehicles of %s on site %s at %.3g Hz (%s)",
        config.robots, config.version, config.manufacturer, config.site_id, config.rate_hz,
        ", ".join(v.prefix for v in list(fleet.vehicles.values())[:2]) + (", ..." if config.robots > 2 else ""),
    )  # fmt: skip
    wall_start = time.monotonic()
    tick_ms = 1000.0 / config.rate_hz
    last_progress = wall_start
    try:
        while not stop.is_set():
            if config.duration_s is not None and time.monotonic() - wall_start >= config.duration_s:
                break
            delay = wall_start + stats.ticks * tick_ms / 1000.0 - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            now = start + round(stats.ticks * tick_ms)
            while True:
                try:
                    topic, payload, _at = inbox.get_nowait()
                except queue.Empty:
                    break
                stats.received += 1
                try:
                    publish(fleet.receive(topic, orjson.loads(payload), now))
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    logger.warning("ignoring a message on %s the vehicle cannot read: %s", topic, exc)
            if feeder is not None:
                for key, command in feeder.due(now):
                    produce(TASK_COMMANDS_TOPIC, key, command)
                    stats.tasks_created += 1
                producer.poll(0)
            states = fleet.step(now)
            phases = max(1, min(config.phases, len(states)))
            for k in range(phases):
                if k:  # slice k goes out k/phases of a tick later
                    due = wall_start + (stats.ticks + k / phases) * tick_ms / 1000.0
                    if (wait := due - time.monotonic()) > 0 and stop.wait(wait):
                        break
                publish(states[k * len(states) // phases : (k + 1) * len(states) // phases])
            stats.states += len(states)
            stats.ticks += 1
            if config.progress_interval_s and time.monotonic() - last_progress >= config.progress_interval_s:
                last_progress = time.monotonic()
                logger.info("vda5050 simulator: ticks=%d states=%d orders and actions received=%d tasks=%d",
                            stats.ticks, stats.states, stats.received, stats.tasks_created)  # fmt: skip
    finally:
        publish(fleet.stop(start + round(stats.ticks * tick_ms)))
        time.sleep(0.2)
        mqtt.close()
        producer.flush(10)
        registry.close()
        stats.elapsed_s = time.monotonic() - wall_start
        logger.info("vda5050 simulator done: %s", stats)
    return stats
