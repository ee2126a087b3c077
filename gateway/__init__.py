"""fleetstream gateway: REST and SSE over Kafka, with auth, tenancy, audit and a live dashboard."""

from gateway.main import create_app
from gateway.settings import GatewaySettings

__all__ = ["GatewaySettings", "create_app"]
