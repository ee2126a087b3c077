"""Conversions between the dispatch policy's views and the planner's protobuf messages."""

from __future__ import annotations

from schemas.proto import planner_pb2 as pb
from topologies.dispatch.policy import Assignment, RobotView, TaskView

__all__ = ["assignment_from_pb", "robot_from_pb", "robot_to_pb", "task_from_pb", "task_to_pb"]


def robot_to_pb(r: RobotView) -> pb.Robot:
    msg = pb.Robot(robot_id=r.robot_id, node=r.node, battery=r.battery, capabilities=sorted(r.capabilities))
    if r.fleet_id is not None:
        msg.fleet_id = r.fleet_id
    return msg


def robot_from_pb(m: pb.Robot) -> RobotView:
    return RobotView(
        robot_id=m.robot_id,
        node=m.node,
        battery=m.battery,
        capabilities=frozenset(m.capabilities),
        fleet_id=m.fleet_id if m.HasField("fleet_id") else None,
    )


def task_to_pb(t: TaskView) -> pb.Task:
    msg = pb.Task(
        task_id=t.task_id,
        priority=t.priority,
        required_capabilities=sorted(t.required),
        created_at_ms=t.created_at,
        queued_at_ms=t.queued_at,
    )
    for name, value in (
        ("pickup", t.pickup),
        ("dropoff", t.dropoff),
        ("deadline_ms", t.deadline),
        ("fleet_id", t.fleet_id),
        ("robot_id", t.robot_id),
    ):
        if value is not None:
            setattr(msg, name, value)
    return msg


def task_from_pb(m: pb.Task) -> TaskView:
    def opt(name: str) -> str | None:
        return getattr(m, name) if m.HasField(name) else None

    return TaskView(
        task_id=m.task_id,
        priority=m.priority,
        pickup=opt("pickup"),
        dropoff=opt("dropoff"),
        required=frozenset(m.required_capabilities),
        deadline=m.deadline_ms if m.HasField("deadline_ms") else None,
        created_at=m.created_at_ms,
        queued_at=m.queued_at_ms,
        fleet_id=opt("fleet_id"),
        robot_id=opt("robot_id"),
    )


def assignment_from_pb(m: pb.Pair) -> Assignment:
    return Assignment(robot_id=m.robot_id, task_id=m.task_id, cost=m.cost, travel_s=m.travel_s)
