"""Fault drills: the pipeline on a three-node Kafka cluster under kills, outages and rebalances, then a
verifier that finds every record exactly once in every topic and store (``fleet drill``)."""

from pipelines.drill.cluster import KafkaCluster, StackServices
from pipelines.drill.faults import DrillContext, Fault, FaultRecord
from pipelines.drill.plan import PLANS, DrillPlan, plan
from pipelines.drill.runner import DrillReport, DrillRunner, DrillSettings
from pipelines.drill.verify import Check

__all__ = [
    "PLANS",
    "Check",
    "DrillContext",
    "DrillPlan",
    "DrillReport",
    "DrillRunner",
    "DrillSettings",
    "Fault",
    "FaultRecord",
    "KafkaCluster",
    "StackServices",
    "plan",
]
