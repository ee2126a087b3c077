"""``build_vda5050``: the per-vehicle step (``machine``) on the topology kernel.

Inputs, both keyed by robot_id and co-partitioned (the same key lands in the same partition of each),
each tagged with its kind at wiring (:func:`build_vda5050`):

- ``vda5050.inbound`` (kind :data:`INBOUND`): the raw messages vehicles sent, as the ingress took them from
  MQTT (value: the payload bytes; header ``vda5050-topic``: the MQTT topic). The step gets both as an
  :class:`InboundMessage` (:func:`inbound_message`, the kernel's decoder with headers);
- ``vda5050.decisions`` (kind :data:`DECISION`): the tenant's ``scheduler.decisions``, re-keyed by robot
  outside any transaction (``pipelines.vda5050.decisions``); an ASSIGN carries its task's pickup, drop-off
  and labels.

The two are read aligned by timestamp (Quix ``concat``). State, per robot id (the store of the dataframe
of these two direct topics; its changelog name derives from the two topic names, keep them and add no
direct input): sub-key :data:`STATE_VEHICLE` (identity, dedupe, last report, telemetry) and
:data:`STATE_ORDERS` (the current and pending orders), each written only when it changed; a step that
raises writes nothing (:class:`~topologies.kernel.KeyState`).

Every output leaves through one dataframe of the kernel's :class:`~topologies.kernel.Output` values
(topic, key, record).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from quixstreams.dataframe import StreamingDataFrame

from schemas.errors import RejectedRecord
from topologies.kernel import KeyState, Output, build_step
from topologies.vda5050 import machine
from topologies.vda5050.config import VdaConfig
from topologies.vda5050.messages import HEADER_TOPIC
from topologies.vda5050.sitemodel import MapLookup

__all__ = [
    "DECISION",
    "INBOUND",
    "STATE_ORDERS",
    "STATE_VEHICLE",
    "InboundMessage",
    "VdaStep",
    "build_vda5050",
    "header_value",
    "inbound_message",
]

#: State sub-keys (renaming one orphans the stored state).
STATE_VEHICLE = "vehicle"
STATE_ORDERS = "orders"

#: Kinds of the inputs.
INBOUND, DECISION = "inbound", "decision"


class InboundMessage(NamedTuple):
    """A message a vehicle sent: the MQTT topic it came on (None when the record has no such header) and
    its payload (None for a tombstone)."""

    topic: str | None
    payload: bytes | None


def header_value(headers: Any, name: str) -> str | None:
    """A Kafka header's value as text (Quix hands headers over as a list of pairs or None)."""
    for key, value in headers or ():
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def inbound_message(value: Any, headers: Any) -> InboundMessage:
    """The event of a ``vda5050.inbound`` record: its MQTT topic (header ``vda5050-topic``) and payload."""
    return InboundMessage(header_value(headers, HEADER_TOPIC), bytes(value) if value is not None else None)


class VdaStep:
    """The kernel step: one vehicle's message (kind :data:`INBOUND`) or one decision about it (kind
    :data:`DECISION`) applied to its state; ``now_ms`` (the record's Kafka timestamp) is the time of the
    input."""

    def __init__(self, config: VdaConfig, maps: MapLookup) -> None:
        self.config = config
        self.maps = maps

    def __call__(self, state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]:
        vehicle = state.get(STATE_VEHICLE)
        orders = state.get(STATE_ORDERS)
        if kind == INBOUND:
            new_vehicle, new_orders, out = machine.on_inbound(
                vehicle, orders, event.payload, event.topic, now_ms, self.maps, self.config
            )
        elif kind == DECISION:
            if event is None:
                raise RejectedRecord("decision record without a value (a tombstone)")
            new_vehicle, new_orders, out = machine.on_decision(
                vehicle, orders, event, now_ms, self.maps, self.config
            )
        else:
            raise RejectedRecord(f"vda5050: no input of kind {kind!r}")
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
    """The bridge topology; returns the dataframe of outputs (produce it with ``to_topic`` per output).

    :param inbound_sdf: ``vda5050.inbound`` (values: bytes).
    :param decisions_sdf: ``vda5050.decisions`` (values: decoded Decision records).
    """
    return build_step(
        VdaStep(config, maps),
        direct={INBOUND: inbound_sdf, DECISION: decisions_sdf},
        header_decoders={INBOUND: inbound_message},
    )
