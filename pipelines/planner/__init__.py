"""The optional external planner of dispatch: gRPC server (``fleet run planner``) and client."""

from pipelines.planner.breaker import BreakerState, CircuitBreaker
from pipelines.planner.client import PlannerAssigner, PlannerClient, PlannerUnavailable
from pipelines.planner.server import PlannerService, serve

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "PlannerAssigner",
    "PlannerClient",
    "PlannerService",
    "PlannerUnavailable",
    "serve",
]
