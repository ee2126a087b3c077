"""Accepted samples go to ``robot.telemetry.accepted`` at least once, beside the telemetry processor's
transaction (pipelines/sideoutput.py), and nothing is committed past one that was not written.

Against the real broker: the side producer on its own (key, bytes, headers, partition, metric, a
delivery failure raised at the flush), then the processor whose accepted topic refuses its records (a
broker-side ``max.message.bytes`` below a sample's size): it must stop without committing the sample,
and after the topic is fixed and the processor restarted, the sample is written and its status follows.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from pipelines.metrics import RECORDS_OUT
from pipelines.settings import CommonSettings
from pipelines.sideoutput import SideOutputs
from schemas.ids import now_ms
from topologies.kernel import Output
from topologies.kernel.inbox import HomePartition

from .conftest import Stack
from .test_telemetry_processor import SITE, registration, sample, site_map


def _set_max_message_bytes(admin: AdminClient, topic: str, value: str | None) -> None:
    op = AlterConfigOpType.SET if value is not None else AlterConfigOpType.DELETE
    entry = ConfigEntry("max.message.bytes", value or "", incremental_operation=op)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


def test_side_outputs_produce_and_fail_loudly(
    prefixed_settings: CommonSettings, create_topics, kafka_admin: AdminClient
):
    prefix = prefixed_settings.topic_prefix
    (good,) = create_topics([f"{prefix}side-{uuid.uuid4().hex[:6]}"], partitions=3)
    (tight,) = create_topics([f"{prefix}tight-{uuid.uuid4().hex[:6]}"], config={"max.message.bytes": "200"})
    side = SideOutputs("test", {"a": good, "b": tight}, prefixed_settings.kafka_producer_config())
    counted = RECORDS_OUT.labels("test", good).value
    headers = [("traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")]
    keys = [f"robot-{i}" for i in range(12)]
    for i, key in enumerate(keys):
        assert side.divert(Output("a", key, f"sample {i}".encode()), key, 0, headers) is False
    assert side.divert(Output("robot.status", "r1", {"x": 1}), "r1", 0, headers) is True  # not a side topic
    side.flush()
    assert RECORDS_OUT.labels("test", good).value == counted + 12

    reader = Consumer({**prefixed_settings.kafka_client_config(), "group.id": uuid.uuid4().hex,
                       "auto.offset.reset": "earliest", "isolation.level": "read_committed"})  # fmt: skip
    reader.subscribe([good])
    got = []
    deadline = time.monotonic() + 20
    while len(got) < 12 and time.monotonic() < deadline:
        msg = reader.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append(msg)
    reader.close()
    home = HomePartition(3)  # murmur2, as every producer of ours and Java's
    assert sorted((m.key().decode(), m.value().decode(), m.partition()) for m in got) == sorted(
        (key, f"sample {i}", home(key)) for i, key in enumerate(keys)
    )
    assert all(m.headers() == headers for m in got)

    # The broker refuses a record above the topic's limit: the flush (the checkpoint) raises.
    side.divert(Output("b", "r1", b"x" * 2_000), "r1", 0, None)
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):
        side.flush()
    side.close()


def test_processor_stops_rather_than_commit_past_an_unwritten_sample(stack: Stack, kafka_admin: AdminClient):
    accepted = stack.settings.topic("robot.telemetry.accepted")
    _set_max_message_bytes(kafka_admin, accepted, "64")  # every sample is bigger
    stack.produce("site.maps", SITE, site_map())
    stack.produce("robot.registry", "r1", registration("r1"))
    stack.produce("robot.telemetry", "r1", sample("r1", 1, now_ms()))
    stack.flush()
    proc = stack.start("telemetry")
    try:
        proc.wait(90)
    except Exception:
        pytest.fail(f"the processor kept running past an unwritten sample:\n{stack.log('telemetry')[-3000:]}")
    assert proc.returncode != 0
    assert "MSG_SIZE_TOO_LARGE" in stack.log("telemetry")

    # Its group committed nothing on robot.telemetry: the sample is read again after a restart.
    group = f"{stack.settings.topic_prefix}fleet-telemetry"
    probe = Consumer({**stack.settings.kafka_client_config(), "group.id": group})
    source = stack.settings.topic("robot.telemetry")
    committed = probe.committed([TopicPartition(source, p) for p in range(2)], timeout=10)
    probe.close()
    assert all(tp.offset < 1 for tp in committed), committed  # -1001 (none) or 0: before the sample

    _set_max_message_bytes(kafka_admin, accepted, None)
    stack.procs.pop("telemetry", None)
    stack.start("telemetry")
    samples = stack.read("robot.telemetry.accepted", until=lambda a: len(a) >= 1, timeout=60)
    assert [(s["robot_id"], s["seq"]) for s in samples] == [("r1", 1)]
    statuses = stack.read("robot.status", until=lambda s: len(s) >= 1, timeout=30)
    assert [(s["robot_id"], s["seq"]) for s in statuses] == [("r1", 1)]
