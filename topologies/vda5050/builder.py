"""``build_vda5050``: the thin Quix adapter around the per-vehicle step (``machine``).

Inputs:

- ``vda5050.inbound`` (key robot_id): the raw messages vehicles sent, as the ingress took them from MQTT
  (value: the payload bytes; header ``vda5050-topic``: the MQTT topic);
- ``scheduler.decisions`` (key task_id or robot_id) and ``task.events`` (key task_id), concatenated: a
  stateful step keeps each task's spec from its CREATED event and attaches it to the task's decisions
  (an ASSIGN carries no pickup or drop-off of its own), then one ``group_by`` re-keys the decisions by
  robot_id, so that they meet the inbound messages of the same vehicle in the same partition and state.

State, per robot id (the merged stream's store; its changelog name derives from the topic names, keep
them): sub-key :data:`STATE_VEHICLE` (identity, dedupe, last report, telemetry) and :data:`STATE_ORDERS`
(the current and pending orders), each stored only when it changed. The enrich step keeps ``spec`` per
task until the task ends.

Every output leaves through one dataframe of :class:`~topologies.vda5050.records.Output` values (topic +
record); :func:`~topologies.vda5050.records.output_key` is the key.
"""

from __future__ import annotations

from typing import Any

from quixstreams import State
from quixstreams.dataframe import StreamingDataFrame

from topologies.vda5050 import machine
from topologies.vda5050.config import VdaConfig
from topologies.vda5050.messages import HEADER_TOPIC
from topologies.vda5050.records import Output
from topologies.vda5050.sitemodel import MapLookup

__all__ = ["STATE_ORDERS", "STATE_SPEC", "STATE_VEHICLE", "build_vda5050", "enrich", "header_value"]

#: State sub-keys (renaming one orphans the stored state).
STATE_VEHICLE = "vehicle"
STATE_ORDERS = "orders"
STATE_SPEC = "spec"

_TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"})


def header_value(headers: Any, name: str) -> str | None:
    """A Kafka header's value as text (Quix hands headers over as a list of pairs or None)."""
    for key, value in headers or ():
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def enrich(record: dict[str, Any] | None, state: State) -> dict[str, Any] | None:
    """Task events keep the task's spec in state; decisions pass on, with the spec of their task."""
    if not record:
        return None
    if "decision_id" in record:
        task_id = record.get("task_id")
        spec = state.get(STATE_SPEC) if task_id else None
        return {**record, "spec": spec} if spec else record
    status = record.get("state")
    if status == "CREATED" and record.get("spec"):
        state.set(STATE_SPEC, record["spec"])
    elif status in _TERMINAL and state.exists(STATE_SPEC):
        state.delete(STATE_SPEC)
    return None


def _robot_of(decision: dict[str, Any]) -> str:
    return str(decision["robot_id"])


class _Step:
    """Loads a vehicle's state, applies one input, stores what changed, returns the outputs."""

    def __init__(self, config: VdaConfig, maps: MapLookup) -> None:
        self.config = config
        self.maps = maps

    def __call__(self, value: Any, _key: Any, timestamp: int, headers: Any, state: State) -> list[Output]:
        vehicle = state.get(STATE_VEHICLE)
        orders = state.get(STATE_ORDERS)
        if isinstance(value, (bytes, bytearray)) or value is None:
            topic = header_value(headers, HEADER_TOPIC)
            raw = bytes(value) if value is not None else None
            new_vehicle, new_orders, out = machine.on_inbound(
                vehicle, orders, raw, topic, timestamp, self.maps, self.config
            )
        else:
            new_vehicle, new_orders, out = machine.on_decision(
                vehicle, orders, value, timestamp, self.maps, self.config
            )
        if new_vehicle is not None and new_vehicle != vehicle:
            state.set(STATE_VEHICLE, new_vehicle)
        if new_orders is not None and new_orders != orders:
            state.set(STATE_ORDERS, new_orders)
        return out


def build_vda5050(
    inbound_sdf: StreamingDataFrame,
    decisions_sdf: StreamingDataFrame,
    task_events_sdf: StreamingDataFrame,
    *,
    config: VdaConfig,
    maps: MapLookup,
    repartition_deserializer: Any = "json",
) -> StreamingDataFrame:
    """The bridge topology; returns the dataframe of outputs (produce it with ``to_topic`` per output)."""
    tasks = task_events_sdf.concat(decisions_sdf)
    decisions = tasks.apply(enrich, stateful=True).filter(lambda d: d is not None)
    # Keys as plain strings, as the ingress writes them: the same key must land in the same partition.
    by_robot = decisions.group_by(
        _robot_of,
        name="robot",
        value_deserializer=repartition_deserializer,
        key_serializer="str",
        key_deserializer="str",
    )
    merged = inbound_sdf.concat(by_robot)
    return merged.apply(_Step(config, maps), stateful=True, metadata=True, expand=True)
