"""The VDA 5050 bridge's I/O: MQTT client, ingress (MQTT -> Kafka), egress (Kafka -> MQTT), site models,
settings and the wiring of the ``topologies.vda5050`` topology (``fleet run vda5050``)."""

from pipelines.vda5050.egress import Egress
from pipelines.vda5050.ingress import Ingress
from pipelines.vda5050.maps import SiteModelIndex
from pipelines.vda5050.mqtt import MqttClient, MqttError
from pipelines.vda5050.settings import MqttSettings, Settings, VehicleSetting

__all__ = [
    "Egress",
    "Ingress",
    "MqttClient",
    "MqttError",
    "MqttSettings",
    "Settings",
    "SiteModelIndex",
    "VehicleSetting",
]
