"""``build_vda5050``: the thin Quix adapter around the per-vehicle step (``machine``).

Inputs, both keyed by robot_id and co-partitioned (the same key lands in the same partition of each):

- ``vda5050.inbound``: the raw messages vehicles sent, as the ingress took them from MQTT (value: the
  payload bytes; header ``vda5050-topic``: the MQTT topic);
- ``vda5050.decisions``: the tenant's ``scheduler.decisions``, re-keyed by robot outside any transaction
  (``pipelines.vda5050.decisions``); an ASSIGN carries its task's pickup, drop-off and labels.

The two are read aligned by timestamp (Quix ``concat``). State, per robot id (the merged stream's store;
its changelog name derives from the two topic names, keep them): sub-key :data:`STATE_VEHICLE`
(identity, dedupe, last report, telemetry) and :data:`STATE_ORDERS` (the current and pending orders),
each stored only when it changed.

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

__all__ = ["STATE_ORDERS", "STATE_VEHICLE", "build_vda5050", "header_value"]

#: State sub-keys (renaming one orphans the stored state).
STATE_VEHICLE = "vehicle"
STATE_ORDERS = "orders"


def header_value(headers: Any, name: str) -> str | None:
    """A Kafka header's value as text (Quix hands headers over as a list of pairs or None)."""
    for key, value in headers or ():
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


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
    *,
    config: VdaConfig,
    maps: MapLookup,
) -> StreamingDataFrame:
    """The bridge topology; returns the dataframe of outputs (produce it with ``to_topic`` per output)."""
    merged = inbound_sdf.concat(decisions_sdf)
    return merged.apply(_Step(config, maps), stateful=True, metadata=True, expand=True)
