"""Wiring of the VDA 5050 bridge: the topology (Quix, exactly once), the MQTT ingress and egress, the
decision forwarder, the site-map feed; ``run`` keeps them together and stops them together."""

from __future__ import annotations

import logging
import threading

from quixstreams.models.serializers import BytesDeserializer

from pipelines.app import ProcessorApp, create_processor_app
from pipelines.dlq import DeadLetterQueue, dlq_topic_name
from pipelines.vda5050.decisions import DecisionForwarder
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

__all__ = ["DECISIONS_TOPIC", "INBOUND_TOPIC", "INPUTS", "build", "run"]

logger = logging.getLogger(__name__)

#: The topology's two direct inputs (their names are its state store's: never rename them). The topology
#: tags their records with its kinds ``topologies.vda5050.INBOUND`` and ``DECISION``.
INBOUND_TOPIC = catalog.VDA5050_INBOUND
DECISIONS_TOPIC = catalog.VDA5050_DECISIONS
INPUTS = (INBOUND_TOPIC, DECISIONS_TOPIC)


def build(
    settings: Settings, maps: SiteModelIndex | None = None, egress: Egress | None = None
) -> ProcessorApp:
    """The bridge topology's ProcessorApp, fully wired (not running); ``maps``: the site models (default:
    none yet), ``egress`` publishes its orders and instant actions as they are produced."""
    papp = create_processor_app(
        settings,
        OWNER,
        exactly_once=True,
        commit_interval=settings.commit_interval_s,
        producer_extra_config={"linger.ms": 1},
        # a forwarded decision is fetched at once rather than after the broker's default 500 ms fetch wait
        consumer_extra_config={"fetch.wait.max.ms": 10, "fetch.queue.backoff.ms": 10},
    )

    # Both keyed by robot and co-partitioned: a vehicle's messages and its decisions meet in one partition.
    inbound = papp.topic(INBOUND_TOPIC, value_deserializer=BytesDeserializer())
    decisions = papp.topic(
        DECISIONS_TOPIC,
        value_deserializer=AvroDeserializer(papp.codec(catalog.SCHEDULER_DECISIONS)),
        partitions=inbound.broker_config.num_partitions,
    )
    app = papp.app
    outputs = build_vda5050(
        app.dataframe(inbound),
        app.dataframe(decisions),
        config=settings.vda_config(),
        maps=(maps if maps is not None else SiteModelIndex()).lookup,
    )

    if egress is not None:
        outputs = outputs.update(egress)

    papp.produce(outputs, OUTPUT_TOPICS)
    return papp


def _watch(papp: ProcessorApp, parts: dict[str, Ingress | DecisionForwarder], stop: threading.Event) -> None:
    """Stop the application when the ingress or the decision forwarder failed (a broker error: the process
    exits and is restarted from its last checkpoint)."""
    while not stop.wait(0.5):
        for name, part in parts.items():
            if part.error is not None:
                logger.error("stopping: the %s failed: %s", name, part.error)
                papp.app.stop(fail=True)
                return


def run(settings: Settings) -> None:
    maps = SiteModelIndex()
    registry = RegistryClient(**settings.registry_client_config())
    maps_codec = AvroCodec.for_topic(registry, catalog.SITE_MAPS, settings.topic_prefix)
    feed = SiteMapFeed(
        settings.kafka_client_config(),
        settings.topic(catalog.SITE_MAPS),
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
    forwarder = DecisionForwarder(
        settings.kafka_client_config(),
        source=settings.topic(catalog.SCHEDULER_DECISIONS),
        target=settings.topic(DECISIONS_TOPIC),
        tenant_id=settings.vda_tenant_id,
        decode=papp.codec(catalog.SCHEDULER_DECISIONS).decode,
        group_id=f"{settings.topic_prefix}fleet-{OWNER}-decisions",
        processor=OWNER,
        dlq=DeadLetterQueue(
            settings.kafka_client_config(), OWNER, dlq_topic_name(OWNER, settings.topic_prefix)
        ),
    ).start()
    ingress = Ingress(
        settings.kafka_client_config(), settings.topic(INBOUND_TOPIC), settings.vda_config(), OWNER
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
    parts: dict[str, Ingress | DecisionForwarder] = {
        "ingress (writing vehicle messages to Kafka)": ingress,
        "decision forwarder": forwarder,
    }
    watchdog = threading.Thread(target=_watch, args=(papp, parts, stop), name="vda5050-watch", daemon=True)
    watchdog.start()
    logger.info(
        "VDA 5050 bridge of tenant %s: vehicles on %s (%s) -> %s; %s -> %s -> %s",
        settings.vda_tenant_id,
        settings.mqtt_url,
        ", ".join(settings.subscriptions()),
        settings.topic(INBOUND_TOPIC),
        settings.topic(catalog.SCHEDULER_DECISIONS),
        settings.topic(DECISIONS_TOPIC),
        settings.topic(OUTBOUND),
    )
    try:
        papp.run()
    finally:
        stop.set()
        mqtt.close()
        forwarder.close()
        undelivered = ingress.close()
        feed.stop()
        registry.close()
        if undelivered:
            logger.error("%d vehicle messages were not written to Kafka at shutdown", undelivered)
        logger.info(
            "ingress: %d messages received (%d states), %d written to Kafka, %d skipped; decisions: %d forwarded "
            "(%d of other tenants); egress: %d published, %d not sent (broker away)",
            ingress.received, ingress.states, ingress.delivered, ingress.skipped, forwarder.forwarded,
            forwarder.skipped, egress.published, egress.unsent,
        )  # fmt: skip
    for name, part in parts.items():
        if part.error is not None:
            raise RuntimeError(f"VDA 5050 bridge failed: the {name} failed: {part.error}")
