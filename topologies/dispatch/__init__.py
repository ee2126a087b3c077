"""The dispatch topology (per site): assigns ready tasks to free robots and sends robots to chargers.

Pure parts: the shared site graph (``schemas.sitegraph``: shortest paths), :mod:`policy` (cost, greedy and optimal
assignment), :mod:`machine` (``step``), :mod:`decisions` (Decision builders). :mod:`builder` adapts them
to Quix Streams through the kernel.
"""

from schemas.sitegraph import SiteGraph, graph_for
from topologies.dispatch.builder import OUTPUT_TOPICS, DispatchStep, build_dispatch, decision_key
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.machine import (
    KINDS,
    MAP,
    REGISTRATION,
    STATUS,
    TASK,
    Assigner,
    greedy_assigner,
    step,
)
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
    "KINDS",
    "MAP",
    "OUTPUT_TOPICS",
    "REGISTRATION",
    "STATUS",
    "TASK",
    "Assigner",
    "Assignment",
    "CostModel",
    "CostTable",
    "DispatchConfig",
    "DispatchStep",
    "RobotView",
    "SiteGraph",
    "SiteState",
    "TaskView",
    "build_dispatch",
    "decision_key",
    "graph_for",
    "greedy",
    "greedy_assigner",
    "optimal",
    "step",
]
