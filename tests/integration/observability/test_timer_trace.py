"""The timer service fires a timer with the trace of the record that armed it (a span of its own)."""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Consumer, Producer

from pipelines.processors.timers import Settings, build_service
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from schemas.tracing import TraceContext, parse_traceparent


def test_a_fired_timer_carries_the_trace_that_armed_it(prefixed_settings, create_topics) -> None:
    settings = Settings(**prefixed_settings.model_dump())
    p = settings.topic_prefix
    create_topics([f"{p}timers"], partitions=1, config={"cleanup.policy": "compact"})
    create_topics([f"{p}timers.due.tasks"], partitions=1)
    registry = RegistryClient(**settings.registry_client_config())
    codec = AvroCodec.for_topic(registry, "timers", p)
    producer = Producer(settings.kafka_producer_config())
    armed_by = TraceContext.new()
    now = int(time.time() * 1000)
    for timer_id, headers in (
        ("traced", [("traceparent", armed_by.traceparent.encode())]),
        ("untraced", None),
    ):
        value = {
            "timer_id": timer_id,
            "owner": "tasks",
            "target_key": f"task-{timer_id}",
            "due_at": now + 300,
            "payload_json": None,
            "event_id": str(uuid.uuid4()),
            "tenant_id": "acme",
            "site_id": None,
            "occurred_at": now,
        }
        producer.produce(f"{p}timers", key=timer_id.encode(), value=codec.encode(value), headers=headers)
    assert producer.flush(10) == 0

    stop = threading.Event()
    service = build_service(settings)
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"probe-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([f"{p}timers.due.tasks"])
    fired: dict[bytes, TraceContext | None] = {}
    try:
        deadline = time.monotonic() + 30
        while len(fired) < 2 and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                fired[msg.key()] = parse_traceparent(dict(msg.headers() or []).get("traceparent"))
    finally:
        consumer.close()
        stop.set()
        thread.join(30)
        registry.close()
    assert set(fired) == {b"task-traced", b"task-untraced"}
    traced, untraced = fired[b"task-traced"], fired[b"task-untraced"]
    assert traced is not None and traced.trace_id == armed_by.trace_id and traced.span_id != armed_by.span_id
    assert untraced is not None and untraced.trace_id != armed_by.trace_id  # a new trace starts here
