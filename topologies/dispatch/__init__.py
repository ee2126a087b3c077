"""The dispatch topology (per site): assigns ready tasks to free robots and sends robots to chargers.

Pure parts: :mod:`graph` (site graph, shortest paths), :mod:`policy` (cost, greedy and optimal
assignment), :mod:`machine` (``step``), :mod:`decisions` (Decision builders). :mod:`builder` adapts them
to Quix Streams.
"""

from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.graph import SiteGraph, graph_for
from topologies.dispatch.machine import Assigner, event_kind, greedy_assigner, step
from topologies.dispatch.policy import (
    Assignment,
    CostModel,
    CostTable,
    RobotView,
    TaskView,
    greedy,
    optimal,
)
from topologies.dispatch.state import SiteState

__all__ = [
    "Assigner",
    "Assignment",
    "CostModel",
    "CostTable",
    "DispatchConfig",
    "RobotView",
    "SiteGraph",
    "SiteState",
    "TaskView",
    "event_kind",
    "graph_for",
    "greedy",
    "greedy_assigner",
    "optimal",
    "step",
]
