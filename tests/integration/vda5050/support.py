"""The VDA 5050 bridge against the real stack: Kafka topics under a unique prefix, the bridge and other
processors as subprocesses, the local Mosquitto with its ACL, an MQTT observer that records every message
both ways (each is checked against the official schema of its version), and the demo warehouse map.

Accounts are the local stack's development ones (deploy/local/stack.sh, password ``fleetstream-dev``):
``fleetstream-bridge``, ``fleetstream-observer``, ``fleetstream-sim`` and the vehicles ``dev/agv-01`` ..
``dev/agv-08``. 2.x tests isolate their MQTT topics with an interface name of their own."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from confluent_kafka.admin import AdminClient, NewTopic
from paho.mqtt.enums import CallbackAPIVersion

from pipelines.settings import CommonSettings
from pipelines.simulator.vda5050_mqtt import VdaSimConfig
from pipelines.simulator.warehouse import demo_site
from schemas import vda
from schemas.catalog import topics as catalog_topics
from schemas.ids import now_ms, uuid7
from schemas.registry import RegistryClient
from tests.integration.conftest import service_port
from tests.integration.processes import ProcessStack, delete_topics_of

__all__ = [
    "PASSWORD",
    "TENANT",
    "Observer",
    "VdaStack",
    "create_delivery",
    "open_vda_stack",
    "sim_config",
    "site_map",
]

PASSWORD = "fleetstream-dev"
TENANT, SITE = "acme", "w1"
PARTITIONS = 2
TOPICS = (
    "vda5050.inbound",
    "vda5050.decisions",
    "vda5050.outbound",
    "dlq.vda5050",
    "scheduler.decisions",
    "task.events",
    "task.commands",
    "task.schedules",
    "robot.telemetry",
    "robot.registry",
    "robot.status",
    "robot.telemetry.1m",
    "site.maps",
    "alerts",
    "timers",
    "timers.due.tasks",
    "timers.due.telemetry",
    "traffic.conflicts",
    "dlq.telemetry",
    "dlq.tasks",
    "dlq.dispatch",
)


def mqtt_url() -> str:
    return f"mqtt://127.0.0.1:{service_port('mosquitto')}"


def site_map(at: int | None = None) -> dict[str, Any]:
    return demo_site(SITE, TENANT, 0, occurred_at=at or now_ms())


class Observer:
    """Subscribes (read-only account) to every VDA 5050 topic and records ``(topic, payload)`` in order."""

    def __init__(self, roots: Iterable[str]) -> None:
        self.messages: list[tuple[str, bytes, int]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._roots = list(roots)
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"observer-{uuid.uuid4().hex[:8]}")
        self._client.username_pw_set("fleetstream-observer", PASSWORD)
        self._client.on_connect = self._connected
        self._client.on_message = self._message

    def _connected(self, client: paho.Client, *_: Any) -> None:
        client.subscribe([(f"{root}/+/+/+", 1) for root in self._roots])
        self._ready.set()

    def _message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, bytes(msg.payload), now_ms()))

    def start(self) -> Observer:
        port = service_port("mosquitto")
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        assert self._ready.wait(10), "observer could not connect to Mosquitto"
        time.sleep(0.3)
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def of(self, suffix: str, vehicle: str | None = None) -> list[dict[str, Any]]:
        """Decoded messages whose topic ends with ``/suffix`` (of one ``manufacturer/serial``)."""
        with self._lock:
            found = list(self.messages)
        out = []
        for topic, payload, _at in found:
            if not topic.endswith("/" + suffix) or not payload:
                continue
            if vehicle is not None and "/".join(topic.split("/")[2:4]) != vehicle:
                continue
            out.append(orjson.loads(payload))
        return out

    def wait(self, suffix: str, until: Callable[[list[dict[str, Any]]], bool], vehicle: str | None = None,
             timeout: float = 60.0) -> list[dict[str, Any]]:  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.of(suffix, vehicle)
            if until(found):
                return found
            time.sleep(0.1)
        raise AssertionError(
            f"no {suffix} as expected within {timeout} s; last: {self.of(suffix, vehicle)[-3:]}"
        )

    def invalid(self) -> list[str]:
        """Every recorded message that does not validate against the official schema of its version."""
        problems = []
        with self._lock:
            found = list(self.messages)
        for topic, payload, _at in found:
            if not payload:
                continue  # a retained message cleared
            name = topic.rsplit("/", 1)[-1]
            message = orjson.loads(payload)
            release = vda.schema_release(message["version"])
            found_problems = vda.problems(name, message, release)
            if found_problems:
                problems.append(f"{topic}: {found_problems}")
        return problems


class VdaStack(ProcessStack):
    """Topics, codecs, processes and the MQTT side of one test."""

    interface: str = "uagv"

    def bridge_env(self, **extra: Any) -> dict[str, Any]:
        return {
            "vda_tenant_id": TENANT,
            "vda_site_id": SITE,
            "vda_interface_name": self.interface,
            "mqtt_url": mqtt_url(),
            "mqtt_username": "fleetstream-bridge",
            "mqtt_password": PASSWORD,
            "mqtt_client_id": f"bridge-{self.prefix}{uuid.uuid4().hex[:6]}",
            "partitions": PARTITIONS,
            "vda_majors": '["2"]',  # 2.x tests isolate themselves by interface name; 3.0's root is fixed
            # whole routes released: these tests run without the traffic processor unless they say so
            "vda_await_grants": "false",
            **extra,
        }

    def publish_map(self) -> dict[str, Any]:
        site = site_map()
        self.produce("site.maps", SITE, site)
        self.flush()
        return site

    def decision(self, kind: str, robot: str, route: list[str], **extra: Any) -> dict[str, Any]:
        at = now_ms()
        record = {
            "event_id": uuid7(),
            "tenant_id": TENANT,
            "site_id": SITE,
            "occurred_at": at,
            "decision_id": str(uuid.uuid4()),
            "kind": kind,
            "robot_id": robot,
            "task_id": None,
            "route": [{"node_id": n, "eta": at + 1000 * i} for i, n in enumerate(route)],
            "eta": None,
            "cost": None,
            "reason": "test",
            "conflict_id": None,
            "planner": "test",
            "granted": None,
            "plan_id": None,
            "plan_seq": None,
            "pickup_node": None,
            "dropoff_node": None,
            "labels": {},
            **extra,
        }
        self.produce("scheduler.decisions", record["task_id"] or robot, record)
        self.flush()
        return record

    def assign(self, robot: str, route: list[str], task_id: str, pickup: str | None,
               dropoff: str | None) -> dict[str, Any]:  # fmt: skip
        """An ASSIGN as dispatch writes it: with its task's pickup and drop-off (the order's stops)."""
        return self.decision(
            "ASSIGN", robot, route, task_id=task_id, pickup_node=pickup, dropoff_node=dropoff
        )

    def wait_for(self, name: str, until: Callable[[list[Any]], bool], timeout: float = 60.0) -> list[Any]:
        records = self.read(name, until=until, timeout=timeout, quiet=0.3)
        assert until(records), (
            f"{name}: condition not met in {timeout} s; {len(records)} records, last {records[-2:]}"
        )
        return records


@contextlib.contextmanager
def open_vda_stack(settings: CommonSettings, admin: AdminClient, tmp: Path,
                   names: Iterable[str] = TOPICS) -> Iterator[VdaStack]:  # fmt: skip
    prefix = settings.topic_prefix
    specs = catalog_topics(prefix, partitions={"task": PARTITIONS, "robot": PARTITIONS, "site": PARTITIONS,
                                               "vda5050": PARTITIONS}, names=tuple(names))  # fmt: skip
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs
    ]
    new.append(NewTopic(f"{prefix}tasks.inbox", num_partitions=PARTITIONS, replication_factor=1))
    for fut in admin.create_topics(new).values():
        fut.result(30)
    registry = RegistryClient(**settings.registry_client_config())
    stack = VdaStack(settings, registry, tmp, base_env={"FLEET_PARTITIONS": str(PARTITIONS)})
    stack.interface = f"t{uuid.uuid4().hex[:8]}"
    try:
        yield stack
    finally:
        stack.stop_all()
        registry.close()
        delete_topics_of(admin, prefix)


def clear_retained(topics: Iterable[str], username: str) -> None:
    """Remove retained messages (a vehicle's connection and factsheet) left by an earlier run."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"clear-{uuid.uuid4().hex[:8]}")
    client.username_pw_set(username, PASSWORD)
    client.connect("127.0.0.1", service_port("mosquitto"))
    client.loop_start()
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def create_delivery(s: VdaStack, task_id: str, pickup: str, dropoff: str) -> None:
    """A delivery task CREATE command on task.commands, as the gateway would produce it."""
    spec = {"category": "delivery", "priority": 5, "pickup_node": pickup, "dropoff_node": dropoff,
            "required_capabilities": [], "deadline": None, "timeout_ms": None, "max_attempts": 3,
            "depends_on": [], "on_dependency_failure": "CANCEL", "fleet_id": None, "robot_id": None,
            "labels": {}, "payload_json": None}  # fmt: skip
    s.produce("task.commands", task_id, {
        "event_id": uuid7(), "tenant_id": TENANT, "site_id": SITE, "occurred_at": now_ms(), "task_id": task_id,
        "command": "CREATE", "idempotency_key": None, "spec": spec, "reason": None, "requested_by": "test",
        "timer": None})  # fmt: skip
    s.flush()


def sim_config(s: VdaStack, robots: int, *, seed: int, speed_scale: float) -> VdaSimConfig:
    """The simulator's own VDA 5050 3.0 vehicles (manufacturer fleetstream-sim) on this stack's broker."""
    return VdaSimConfig(
        site_id=SITE,
        tenant_id=TENANT,
        robots=robots,
        rate_hz=2.0,
        seed=seed,
        version="3.0.0",
        manufacturer="fleetstream-sim",
        speed_scale=speed_scale,
        action_ms=500,
        mqtt={
            "host": "127.0.0.1",
            "port": service_port("mosquitto"),
            "username": "fleetstream-sim",
            "password": PASSWORD,
        },
        client_id=f"sim-{s.prefix}",
        kafka_config=s.settings.kafka_client_config(),
        registry_config=s.settings.registry_client_config(),
        topic_prefix=s.prefix,
    )
