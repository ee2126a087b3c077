"""Open-RMF simulators (an RMF API server with its dispatcher, a fleet-adapter client) and the mapping of
RMF fleet states onto our RobotStatus records."""

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
