"""The timer service against real Kafka: fires within 1 s, honours cancels and re-arms, survives restarts."""

from __future__ import annotations

import threading
import time
import uuid

from confluent_kafka import Consumer, Producer

from pipelines.processors.timers import Settings, build_service
from pipelines.timers import TimerService
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient


def _due_consumer(settings, topic: str) -> Consumer:
    consumer = Consumer(
        {
            **settings.kafka_client_config(),
            "group.id": f"probe-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    return consumer


def _timer(timer_id: str, due_at: int, *, owner: str = "tasks") -> dict:
    """A Timer record of ``owner`` due at ``due_at``, for the task ``task-<timer_id>``."""
    return {
        "timer_id": timer_id,
        "owner": owner,
        "target_key": f"task-{timer_id}",
        "due_at": due_at,
        "payload_json": None,
        "event_id": str(uuid.uuid4()),
        "tenant_id": "acme",
        "site_id": None,
        "occurred_at": int(time.time() * 1000),
    }


def test_timers_fire_on_time_and_cancelled_ones_do_not(prefixed_settings, create_topics):
    settings = Settings(**prefixed_settings.model_dump())
    p = settings.topic_prefix
    create_topics([f"{p}timers"], partitions=2, config={"cleanup.policy": "compact"})
    create_topics([f"{p}timers.due.tasks"], partitions=2)
    registry = RegistryClient(**settings.registry_client_config())
    codec = AvroCodec.for_topic(registry, "timers", p)
    due_codec = AvroCodec.for_topic(registry, "timers.due.tasks", p)
    producer = Producer(settings.kafka_producer_config())

    def arm(timer_id: str, due_at: int) -> None:
        producer.produce(f"{p}timers", key=timer_id.encode(), value=codec.encode(_timer(timer_id, due_at)))

    before = int(time.time() * 1000)
    arm("armed-before-start", before + 500)
    producer.flush(10)

    stop = threading.Event()
    service = build_service(settings)
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    assert service.ready.wait(30), "the timer service never finished rebuilding its partitions"
    now = int(time.time() * 1000)
    arm("soon", now + 1500)
    arm("cancelled", now + 1500)
    producer.produce(f"{p}timers", key=b"cancelled", value=None)
    arm("rearmed", now + 1000)
    arm("rearmed", now + 2500)
    producer.flush(10)
    consumer = _due_consumer(settings, f"{p}timers.due.tasks")
    fired: list[tuple[str, int, float]] = []
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline and len(fired) < 3:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            timer = due_codec.decode(msg.value())
            fired.append((timer["timer_id"], timer["due_at"], time.time() * 1000 - timer["due_at"]))
            assert msg.key().decode() == timer["target_key"]
        time.sleep(1.0)  # anything else would have fired by now
        while (msg := consumer.poll(0.5)) is not None:
            if not msg.error():
                late = due_codec.decode(msg.value())
                fired.append((late["timer_id"], late["due_at"], -1))
    finally:
        stop.set()
        thread.join(15)
        consumer.close()
    by_id = {t: (d, late) for t, d, late in fired}
    assert sorted(t for t, _, _ in fired) == ["armed-before-start", "rearmed", "soon"], (
        "each fires exactly once"
    )
    assert by_id["armed-before-start"][0] == before + 500, (
        "a timer armed while the service was down still fires"
    )
    assert (by_id["soon"][0] - now, by_id["rearmed"][0] - now) == (1500, 2500), (
        "a re-arm replaces the due time"
    )
    for timer_id in ("soon", "rearmed"):
        late_ms = by_id[timer_id][1]
        assert 0 <= late_ms < 1000, f"{timer_id} fired {late_ms:.0f} ms after its due time"


def test_a_timer_whose_fire_is_not_delivered_fires_again(prefixed_settings, create_topics):
    """A produce that fails (here: the owner's due topic does not exist yet, and the producer gives up
    after 1.5 s) puts the timer back; it fires again until it lands, and lands once."""
    settings = Settings(**prefixed_settings.model_dump())
    p = settings.topic_prefix
    create_topics([f"{p}timers"], partitions=1, config={"cleanup.policy": "compact"})
    registry = RegistryClient(**settings.registry_client_config())
    codec = AvroCodec.for_topic(registry, "timers", p)
    due_codec = AvroCodec.for_topic(registry, "timers.due.tasks", p)
    service = TimerService(
        {**settings.kafka_client_config(), "message.timeout.ms": 1500},
        timers_topic=f"{p}timers",
        due_topic_for=lambda owner: f"{p}timers.due.{owner}",
        decode=lambda data, _topic: codec.decode(data) or {},
        encode=lambda timer, _topic: due_codec.encode(timer) or b"",
        group_id=f"{p}fleet-timers",
    )
    stop = threading.Event()
    thread = threading.Thread(target=service.run, args=(stop,), daemon=True)
    thread.start()
    assert service.ready.wait(30), "the timer service never finished rebuilding its partition"
    due_at = int(time.time() * 1000) + 300
    producer = Producer(settings.kafka_producer_config())
    value = _timer("t-late-topic", due_at, owner="ghost")
    producer.produce(f"{p}timers", key=b"t-late-topic", value=codec.encode(value))
    producer.flush(10)
    try:
        deadline = time.monotonic() + 30
        while service.undelivered < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert service.undelivered >= 2, "the fire to a missing topic never failed twice"
        create_topics([f"{p}timers.due.ghost"], partitions=1)
        consumer = _due_consumer(settings, f"{p}timers.due.ghost")
        landed: list[dict] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not landed:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                landed.append(due_codec.decode(msg.value()))
        time.sleep(3.0)  # two more producer timeouts: a second copy would be here by now
        while (msg := consumer.poll(0.5)) is not None:
            if not msg.error():
                landed.append(due_codec.decode(msg.value()))
        consumer.close()
    finally:
        stop.set()
        thread.join(15)
    assert [(t["timer_id"], t["due_at"]) for t in landed] == [("t-late-topic", due_at)]
