"""VDA 5050 bridge: drives AGVs and AMRs over MQTT (vehicle states in, orders out), exactly once through Kafka.

A master control for VDA 5050 2.0/2.1 (``{interfaceName}/v2/...``) and 3.0 (``vda5050/v3/...``) vehicles:
the ingress writes every message vehicles publish to ``vda5050.inbound`` as received; the topology
(``topologies.vda5050``, key robot_id, exactly once) validates each against the official schema of its
version and turns states into ``robot.telemetry``, factsheets into ``robot.registry``, a lost connection
(last will) into OFFLINE on ``robot.status``, and ``scheduler.decisions`` (ASSIGN, GRANT, CHARGE, UNASSIGN,
HOLD, RESUME, REROUTE; re-keyed by robot to ``vda5050.decisions`` by the forwarder) into orders, order
updates and instant actions on ``vda5050.outbound``; the egress publishes those to the vehicles. Rejected messages and decisions go to
``dlq.vda5050`` with the reason. Settings: ``FLEET_MQTT_*`` and ``FLEET_VDA_*``; see docs/vda5050.md.
"""

from __future__ import annotations

from pipelines.vda5050.bridge import build, run
from pipelines.vda5050.settings import Settings

__all__ = ["Settings", "build", "run"]
