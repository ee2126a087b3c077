"""A deterministic warehouse-fleet simulator and its Kafka producer loop.

Pure parts (no clock, no I/O): `demo_site` (the SiteMap), `FleetSim` (robots on the map's shared
`schemas.sitegraph.SiteGraph`, stepped with an injected time), `FaultInjector` (drop-outs, duplicates, reordering,
malformed payloads) and `GroundTruth` (node occupancy and collisions). `run_simulation` wires them to
Kafka, with `DecisionFeed` (follow scheduler.decisions) and `TaskFeeder` (create tasks) to close the
loop; `fleet simulate` is its command line.
"""

from .decisions import apply_decision
from .faults import FaultConfig, FaultInjector, FaultStats, MalformedKind, Outgoing, malformed_payload
from .fleet import FleetConfig, FleetSim, RobotView
from .follow import DecisionFeed, FollowStats, TaskFeeder
from .groundtruth import Collision, GroundTruth, Occupancy
from .ids import SeededUuid7
from .runner import SimConfig, SimStats, TickHook, run_simulation
from .warehouse import DEMO_EPOCH_MS, demo_site

__all__ = [
    "DEMO_EPOCH_MS",
    "Collision",
    "DecisionFeed",
    "FaultConfig",
    "FaultInjector",
    "FaultStats",
    "FleetConfig",
    "FleetSim",
    "FollowStats",
    "GroundTruth",
    "MalformedKind",
    "Occupancy",
    "Outgoing",
    "RobotView",
    "SeededUuid7",
    "SimConfig",
    "SimStats",
    "TaskFeeder",
    "TickHook",
    "apply_decision",
    "demo_site",
    "malformed_payload",
    "run_simulation",
]
