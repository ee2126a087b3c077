"""The bridge on the topology kernel: each input tagged by its topic, the MQTT topic read from the inbound
record's header, the vehicle's state on Quix's stores (written only when changed, nothing when a step
raises), and the state store's name as before the kernel."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import copy_context
from typing import Any

import orjson
import pytest
from quixstreams import Application
from quixstreams.context import set_message_context
from quixstreams.models import MessageContext
from quixstreams.models.serializers import BytesDeserializer
from quixstreams.models.topics import Topic, TopicConfig

from schemas import catalog
from schemas.errors import RejectedRecord
from topologies.kernel import Output, StepAdapter
from topologies.kernel.testing import StepHarness
from topologies.vda5050 import (
    DECISION,
    HEADER_TOPIC,
    INBOUND,
    STATE_ORDERS,
    STATE_VEHICLE,
    InboundMessage,
    VdaStep,
    build_vda5050,
    inbound_message,
)

from .support import T0, Harness, Vehicle, config, decision, maps

ROBOT = "acme-agv-1"
KINDS = {catalog.VDA5050_INBOUND: INBOUND, catalog.VDA5050_DECISIONS: DECISION}


def _adapter() -> StepAdapter:
    """The adapter :func:`build_vda5050` wires (kinds by topic, the inbound event built with headers)."""
    return StepAdapter(VdaStep(config(), maps), kinds=KINDS, header_decoders={INBOUND: inbound_message})


def _record(
    adapter: StepAdapter, h: StepHarness, topic: str, value: Any, at: int, headers: Any = None
) -> Any:
    def run() -> Any:
        set_message_context(MessageContext(topic=topic, partition=0, offset=0, size=0))
        return adapter(value, ROBOT, at, headers, h.state(ROBOT))

    return copy_context().run(run)


def _inbound(adapter: StepAdapter, h: StepHarness, v: Vehicle, name: str, message: dict[str, Any],
             at: int) -> list[Output]:  # fmt: skip
    headers = [(HEADER_TOPIC, v.topic(name).encode()), ("vda5050-received-at", str(at).encode())]
    out: list[Output] = _record(adapter, h, catalog.VDA5050_INBOUND, orjson.dumps(message), at, headers)
    return out


def _script(v: Vehicle) -> list[tuple[str, Any, int]]:
    """A vehicle's life: factsheet, online, states, an order and its progress, a lost connection."""
    route = ["a0", "a1", "a2", "b2"]
    assign = decision("ASSIGN", route, at=T0 + 10, task_id="t1", pickup_node="a1", dropoff_node="b2")
    return [
        ("factsheet", v.factsheet(T0), T0),
        ("connection", v.connection("ONLINE", T0), T0),
        ("state", v.state(T0 + 1, "a0"), T0 + 1),
        (DECISION, assign, T0 + 10),
        ("state", v.state(T0 + 20, "a0", order_id=f"assign-{T0 + 10}", nodes=[("a1", 2, True)]), T0 + 20),
        ("state", v.state(T0 + 30, "a1", last_seq=2, order_id=f"assign-{T0 + 10}", driving=True), T0 + 30),
        ("connection", v.connection("CONNECTIONBROKEN", T0 + 40), T0 + 5000),
        ("state", v.state(T0 + 6000, "a1", last_seq=2, order_id=f"assign-{T0 + 10}"), T0 + 6000),
    ]


def test_the_kernel_step_emits_what_the_vehicle_machine_emits(harness: Callable[[Any], StepHarness]) -> None:
    adapter, plain = _adapter(), Harness(config())
    h = harness(adapter.step)
    v_kernel, v_plain = Vehicle(), Vehicle()
    topics: set[str] = set()
    for (name, message, at), (_, plain_message, _) in zip(_script(v_kernel), _script(v_plain), strict=True):
        if name == DECISION:
            got = _record(adapter, h, catalog.VDA5050_DECISIONS, message, at)
            want = plain.decide(plain_message, at)
        else:
            got = _inbound(adapter, h, v_kernel, name, message, at)
            want = plain.inbound(v_plain.topic(name), plain_message, at)
        assert got == want, name
        topics |= {o.topic for o in got}
    assert topics == {
        catalog.ROBOT_REGISTRY,
        catalog.ROBOT_TELEMETRY,
        catalog.ROBOT_STATUS,
        catalog.VDA5050_OUTBOUND,
    }
    h.checkpoint()
    assert h.stored(ROBOT, STATE_VEHICLE) == orjson.loads(orjson.dumps(plain.vehicle))
    assert h.stored(ROBOT, STATE_ORDERS) == orjson.loads(orjson.dumps(plain.orders))


def test_state_is_written_only_when_it_changed_and_not_at_all_when_a_step_raises(
    harness: Callable[[Any], StepHarness],
) -> None:
    adapter, v = _adapter(), Vehicle()
    h = harness(adapter.step)
    _inbound(adapter, h, v, "factsheet", v.factsheet(T0), T0)
    h.checkpoint()
    before = h.stored(ROBOT, STATE_VEHICLE)
    assert before is not None and h.stored(ROBOT, STATE_ORDERS) is None  # a factsheet leaves the orders

    written: list[dict[str, Any]] = []
    step = adapter.step

    def spy(state: Any, kind: str, event: Any, now_ms: int) -> list[Output]:
        out = step(state, kind, event, now_ms)
        written.append(state.pending)
        return out

    adapter.step = spy
    _inbound(adapter, h, v, "factsheet", {**v.factsheet(T0), "headerId": 0}, T0 + 1)  # a duplicate
    assert written == [{}]
    other_tenant = {**decision("HOLD", at=T0 + 2), "tenant_id": "other-tenant"}
    assert _record(adapter, h, catalog.VDA5050_DECISIONS, other_tenant, T0 + 2) == []
    assert written == [{}, {}]

    with pytest.raises(RejectedRecord, match="without its MQTT topic"):
        _record(adapter, h, catalog.VDA5050_INBOUND, orjson.dumps(v.state(T0 + 3, "a0")), T0 + 3, None)
    with pytest.raises(RejectedRecord, match="does not validate"):
        _inbound(adapter, h, v, "state", {**v.state(T0 + 4, "a0"), "driving": "yes"}, T0 + 4)
    with pytest.raises(RejectedRecord, match="tombstone"):
        _record(adapter, h, catalog.VDA5050_DECISIONS, None, T0 + 5)
    h.checkpoint()
    assert h.stored(ROBOT, STATE_VEHICLE) == before


@pytest.mark.parametrize(
    ("value", "headers", "event"),
    [
        (
            b"{}",
            [("vda5050-topic", b"uagv/v2/acme/agv-1/state")],
            InboundMessage("uagv/v2/acme/agv-1/state", b"{}"),
        ),
        (bytearray(b"{}"), [("other", b"x"), ("vda5050-topic", "t")], InboundMessage("t", b"{}")),
        (None, None, InboundMessage(None, None)),
    ],
)
def test_an_inbound_record_is_its_mqtt_topic_and_payload(
    value: Any, headers: Any, event: InboundMessage
) -> None:
    assert inbound_message(value, headers) == event


def _app() -> tuple[Application, Any, Any]:
    """An application with the bridge's two inputs, without a broker (topic configs set by hand)."""
    app = Application(broker_address="127.0.0.1:1", consumer_group="g", use_changelog_topics=False)
    cfg = TopicConfig(num_partitions=2, replication_factor=1, extra_config={"retention.ms": "604800000"})
    inbound = Topic(catalog.VDA5050_INBOUND, create_config=cfg, value_deserializer=BytesDeserializer())
    decisions = Topic(catalog.VDA5050_DECISIONS, create_config=cfg, value_deserializer="json")
    inbound.broker_config = decisions.broker_config = cfg
    return app, app.dataframe(inbound), app.dataframe(decisions)


def test_the_state_store_keeps_its_name() -> None:
    """Quix names the store (and its changelog) after the stream of the two direct topics: the kernel's
    wiring must give the one the hand-written ``concat`` gave."""
    app, inbound, decisions = _app()
    outputs = build_vda5050(inbound, decisions, config=config(), maps=maps)
    assert outputs.stream_id == "vda5050.decisions--vda5050.inbound"
    assert {sid: sorted(stores) for sid, stores in app._state_manager.stores.items()} == {
        "vda5050.decisions--vda5050.inbound": ["default"]
    }

    app, inbound, decisions = _app()
    assert inbound.concat(decisions).stream_id == outputs.stream_id  # the wiring before the kernel
