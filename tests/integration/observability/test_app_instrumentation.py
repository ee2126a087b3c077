"""``create_processor_app``'s per-record hooks in a real Quix Streams application against real Kafka:
the record's trace is current while it is processed (log lines), outputs carry ``traceparent`` with a
span of this processor, dead letters keep the original header, and the record metrics move. Only bad
records are dead-lettered: an unexpected exception stops the processor, and so does a dead-letter rate
past the limit."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import REGISTRY

from pipelines.app import create_processor_app
from pipelines.logsetup import JsonFormatter, TraceContextFilter
from pipelines.metrics import PROCESSING_LATENCY, RECORDS_IN, RECORDS_OUT
from schemas.errors import RejectedRecord
from schemas.tracing import TraceContext, parse_traceparent

log = logging.getLogger("tests.observability.step")


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[dict[str, Any]] = []
        self.addFilter(TraceContextFilter())
        self.setFormatter(JsonFormatter("probe"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


def _read_all(settings, topic: str) -> list[Any]:
    consumer = Consumer({**settings.kafka_client_config(), "group.id": f"probe-{uuid.uuid4().hex[:8]}"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out, deadline = [], time.monotonic() + 10
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None:
                if out:
                    break
                continue
            if not msg.error():
                out.append(msg)
    finally:
        consumer.close()
    return out


def _traceparent(msg: Any) -> TraceContext | None:
    return parse_traceparent(dict(msg.headers() or []).get("traceparent"))


def test_records_are_traced_counted_and_dead_lettered_with_their_trace(
    prefixed_settings, create_topics, tmp_path
) -> None:
    name = f"probe{uuid.uuid4().hex[:6]}"
    s = prefixed_settings
    p = s.topic_prefix
    create_topics([f"{p}in", f"{p}out", f"{p}dlq.{name}"], partitions=1)
    producer = Producer(s.kafka_producer_config())
    known, failing, garbled = TraceContext.new(), TraceContext.new(), TraceContext.new()
    now = int(time.time() * 1000)
    inputs = [
        ({"n": 1, "fail": True, "tenant_id": "acme", "occurred_at": now}, failing),
        ({"n": 2, "tenant_id": "acme", "task_id": "t2", "occurred_at": now}, known),
        ({"n": 3, "tenant_id": "acme", "occurred_at": now}, None),
    ]
    for value, trace in inputs:
        headers = [("traceparent", trace.traceparent.encode())] if trace else None
        producer.produce(f"{p}in", key=b"k", value=orjson.dumps(value), headers=headers)
    undecodable = [("traceparent", garbled.traceparent.encode())]
    producer.produce(f"{p}in", key=b"k", value=b"{not json", headers=undecodable)
    assert producer.flush(10) == 0

    papp = create_processor_app(s, name, exactly_once=False, commit_interval=0.2)
    out = papp.topic("out", value_serializer="json")
    sdf = papp.dataframe(papp.topic("in", value_deserializer="json"))

    def step(value: dict[str, Any]) -> dict[str, Any]:
        if value.get("fail"):
            raise RejectedRecord("this record cannot be processed")
        log.info("handled record %d", value["n"])
        return {**value, "done": True}

    sdf.apply(step).to_topic(out)
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        papp.app.run(timeout=3.0)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        papp.dlq.close()

    outputs = {orjson.loads(m.value())["n"]: _traceparent(m) for m in _read_all(s, f"{p}out")}
    assert set(outputs) == {2, 3}
    assert outputs[2] is not None and outputs[2].trace_id == known.trace_id
    assert outputs[2].span_id != known.span_id  # this processor's span
    assert outputs[3] is not None and outputs[3].trace_id not in {known.trace_id, failing.trace_id}
    dead = _read_all(s, f"{p}dlq.{name}")
    assert [_traceparent(m) for m in dead] == [failing, garbled]  # the original headers, unchanged

    handled = {line["msg"]: line for line in handler.lines if line["msg"].startswith("handled")}
    assert handled["handled record 2"]["trace_id"] == known.trace_id
    assert (
        handled["handled record 2"]["task_id"] == "t2" and handled["handled record 2"]["tenant_id"] == "acme"
    )
    assert handled["handled record 2"]["at"] == f"{p}in[0]@1"
    assert handled["handled record 3"]["trace_id"] == outputs[3].trace_id  # the trace this processor started
    dead_lines = [line for line in handler.lines if line["msg"].startswith("dead-lettered record")]
    assert [(line["trace_id"], line["offset"]) for line in dead_lines] == [
        (failing.trace_id, 0),
        (garbled.trace_id, 3),
    ]

    assert RECORDS_IN.labels(name, f"{p}in").value == 4  # the undecodable one too
    assert RECORDS_OUT.labels(name, f"{p}out").value == 2
    latency = PROCESSING_LATENCY.labels(name)
    assert (
        sum(latency.counts) == 3 and 0 <= latency.sum < 3 * 60
    )  # three decoded records, each within a minute
    assert (
        REGISTRY.get_sample_value(
            "fleet_dlq_records_total", {"processor": name, "error_type": "RejectedRecord"}
        )
        == 1
    )


def _run_until_stopped(papp: Any, seconds: float = 20.0) -> BaseException | None:
    try:
        papp.app.run(timeout=seconds)
    except BaseException as exc:
        return exc
    finally:
        papp.dlq.close()
    return None


def test_an_unexpected_exception_stops_the_processor_and_nothing_is_dead_lettered(
    prefixed_settings, create_topics
) -> None:
    name = f"probe{uuid.uuid4().hex[:6]}"
    s = prefixed_settings
    p = s.topic_prefix
    create_topics([f"{p}in", f"{p}dlq.{name}"], partitions=1)
    producer = Producer(s.kafka_producer_config())
    for n in range(3):
        producer.produce(f"{p}in", key=b"k", value=orjson.dumps({"n": n}))
    assert producer.flush(10) == 0
    papp = create_processor_app(s, name, exactly_once=False, commit_interval=0.2)
    sdf = papp.dataframe(papp.topic("in", value_deserializer="json"))

    def step(value: dict[str, Any]) -> dict[str, Any]:
        if value["n"] == 1:
            raise KeyError("a bug")
        return value

    sdf.apply(step)
    stopped = _run_until_stopped(papp)
    assert isinstance(stopped, KeyError)
    assert _read_all(s, f"{p}dlq.{name}") == []


def test_a_dead_letter_rate_past_the_limit_stops_the_processor(
    prefixed_settings, create_topics, caplog
) -> None:
    name = f"probe{uuid.uuid4().hex[:6]}"
    s = prefixed_settings.model_copy(update={"dead_letters_max_ratio": 0.5, "dead_letters_window": 20})
    p = s.topic_prefix
    create_topics([f"{p}in", f"{p}dlq.{name}"], partitions=1)
    producer = Producer(s.kafka_producer_config())
    for n in range(60):
        producer.produce(f"{p}in", key=b"k", value=orjson.dumps({"n": n, "bad": n >= 5}))
    assert producer.flush(10) == 0
    papp = create_processor_app(s, name, exactly_once=False, commit_interval=0.2)
    sdf = papp.dataframe(papp.topic("in", value_deserializer="json"))

    def step(value: dict[str, Any]) -> dict[str, Any]:
        if value["bad"]:
            raise RejectedRecord(f"record {value['n']} is impossible")
        return value

    sdf.apply(step)
    with caplog.at_level(logging.ERROR):
        stopped = _run_until_stopped(papp)
    assert isinstance(stopped, RejectedRecord)
    dead = _read_all(s, f"{p}dlq.{name}")
    assert 10 < len(dead) < 55  # stopped once more than half of the last 20 were bad, not at the end
    assert any(
        "went to" in r.getMessage() and "dead_letters_max_ratio" in r.getMessage() for r in caplog.records
    )
