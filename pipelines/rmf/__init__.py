"""Open-RMF simulators: an RMF API server with its dispatcher, and a fleet-adapter websocket client.

The mapping of RMF fleet states onto our RobotStatus records is the ``topologies.rmf`` topology."""

from pipelines.rmf.adapter import FleetAdapterSim, fleet_state, robot_state
from pipelines.rmf.server import RmfServerConfig, RmfServerSim, ThreadedServer, create_rmf_server_app

__all__ = [
    "FleetAdapterSim",
    "RmfServerConfig",
    "RmfServerSim",
    "ThreadedServer",
    "create_rmf_server_app",
    "fleet_state",
    "robot_state",
]
