"""Wiring of the VDA 5050 bridge: the topology (Quix, exactly once), the MQTT ingress and egress, the
site-map feed; ``run`` keeps them together and stops them together."""

from __future__ import annotations

import logging
import threading

from quixstreams.models.serializers import BytesDeserializer, JSONDeserializer

from pipelines.app import CapturingDeserializer, ProcessorApp, create_processor_app
from pipelines.vda5050.egress import Egress
from pipelines.vda5050.ingress import Ingress
from pipelines.vda5050.maps import SiteMapFeed, SiteModelIndex
from pipelines.vda5050.mqtt import MqttClient
from pipelines.vda5050.settings import Settings
from schemas import catalog
from schemas.codec import AvroCodec
from schemas.quix import AvroDeserializer
from schemas.registry import RegistryClient
from topologies.vda5050 import OUTBOUND, OUTPUT_TOPICS, OWNER, build_vda5050

__all__ = ["INBOUND", "INPUTS", "build", "run"]

logger = logging.getLogger(__name__)

INBOUND = "vda5050.inbound"
INPUTS = (INBOUND, "scheduler.decisions", "task.events")


def _partitions(settings: Settings, name: str) -> int:
    return settings.partitions or catalog.topic(name).partitions


def build(settings: Settings, maps: SiteModelIndex, egress: Egress | None = None) -> ProcessorApp:
    """The bridge topology's ProcessorApp, fully wired (not running); ``egress`` publishes its orders and
    instant actions as they are produced."""
    registry = RegistryClient(**settings.registry_client_config())
    papp = create_processor_app(
        settings,
        OWNER,
        exactly_once=True,
        commit_interval=settings.commit_interval_s,
        producer_extra_config={"linger.ms": 1},
        # A decision waits for the checkpoint of its re-keying: fetch what a commit made readable at once
        # rather than after the broker's default 500 ms fetch wait.
        consumer_extra_config={"fetch.wait.max.ms": 10, "fetch.queue.backoff.ms": 10},
    )

    def codec(name: str) -> AvroCodec:
        return AvroCodec.for_topic(registry, name, settings.topic_prefix)

    decisions = papp.topic(
        "scheduler.decisions",
        value_deserializer=AvroDeserializer(codec("scheduler.decisions")),
        partitions=_partitions(settings, "scheduler.decisions"),
    )
    events = papp.topic(
        "task.events",
        value_deserializer=AvroDeserializer(codec("task.events")),
        partitions=_partitions(settings, "task.events"),
    )
    # As many partitions as the decisions: they are re-keyed by robot (keeping their partition count) and
    # meet the inbound messages of the same vehicle in the same partition.
    inbound = papp.topic(
        INBOUND, value_deserializer=BytesDeserializer(), partitions=decisions.broker_config.num_partitions
    )
    app = papp.app
    outputs = build_vda5050(
        app.dataframe(inbound),
        app.dataframe(decisions),
        app.dataframe(events),
        config=settings.vda_config(),
        maps=maps.lookup,
        repartition_deserializer=CapturingDeserializer(JSONDeserializer()),
    )

    if egress is not None:
        outputs = outputs.update(egress)

    papp.produce(outputs, OUTPUT_TOPICS)
    return papp


def _watch(papp: ProcessorApp, ingress: Ingress, stop: threading.Event) -> None:
    """Stop the application when the ingress failed to write to Kafka (a broker error: the process exits
    and is restarted from its last checkpoint)."""
    while not stop.wait(0.5):
        if ingress.error is not None:
            logger.error("stopping: the ingress could not write to Kafka: %s", ingress.error)
            papp.app.stop(fail=True)
            return


def run(settings: Settings) -> None:
    maps = SiteModelIndex()
    registry = RegistryClient(**settings.registry_client_config())
    maps_codec = AvroCodec.for_topic(registry, "site.maps", settings.topic_prefix)
    feed = SiteMapFeed(
        settings.kafka_client_config(),
        settings.topic("site.maps"),
        maps_codec.decode,
        maps,
        group_id=f"{settings.topic_prefix}fleet-{OWNER}-site-maps",
    ).start()
    if not feed.wait_caught_up(settings.vda_site_maps_wait_s):
        logger.warning(
            "site.maps not read to its end after %.0f s; starting anyway", settings.vda_site_maps_wait_s
        )
    egress = Egress(OWNER)
    papp = build(settings, maps, egress)
    ingress = Ingress(
        settings.kafka_client_config(), settings.topic(INBOUND), settings.vda_config(), OWNER
    ).start()
    mqtt = MqttClient(
        **settings.mqtt_options(),
        client_id=settings.mqtt_client_id,
        subscriptions=settings.subscriptions(),
        on_message=ingress,
        qos=1,
        clean_session=False,
    ).connect()
    egress.mqtt = mqtt
    stop = threading.Event()
    watchdog = threading.Thread(target=_watch, args=(papp, ingress, stop), name="vda5050-watch", daemon=True)
    watchdog.start()
    logger.info(
        "VDA 5050 bridge of tenant %s: vehicles on %s (%s) -> %s; decisions -> %s",
        settings.vda_tenant_id,
        settings.mqtt_url,
        ", ".join(settings.subscriptions()),
        settings.topic(INBOUND),
        settings.topic(OUTBOUND),
    )
    try:
        papp.run()
    finally:
        stop.set()
        mqtt.close()
        undelivered = ingress.close()
        feed.stop()
        registry.close()
        if undelivered:
            logger.error("%d vehicle messages were not written to Kafka at shutdown", undelivered)
        logger.info(
            "ingress: %d messages received (%d states), %d written to Kafka, %d skipped; egress: %d published, "
            "%d not sent (broker away)",
            ingress.received, ingress.states, ingress.delivered, ingress.skipped, egress.published, egress.unsent,
        )  # fmt: skip
    if ingress.error is not None:
        raise RuntimeError(f"VDA 5050 bridge failed: the ingress could not write to Kafka: {ingress.error}")
