"""The drill's handles on the infrastructure: the three-node Kafka cluster and the stack's services.

Both go through ``deploy/local/stack.sh``: the cluster is its ``cluster`` service (three combined KRaft
nodes beside the stack's own Kafka, data under ``.local/cluster``), addressed node by node with the
script's own environment for that folder; Postgres, Redis and InfluxDB are the stack's services. Nothing
here knows a pid: the script keeps them.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

__all__ = ["CLUSTER_NODES", "KafkaCluster", "StackError", "StackServices"]

logger = logging.getLogger(__name__)

STACK_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "stack.sh"
CLUSTER_NODES = 3


class StackError(RuntimeError):
    """A stack.sh call failed; the message carries its output."""


def _stack(args: Iterable[str], env: Mapping[str, str] | None = None, timeout: float = 180.0) -> str:
    result = subprocess.run(
        [str(STACK_SCRIPT), *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise StackError(f"stack.sh {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return result.stdout


@dataclass
class KafkaCluster:
    """The separate three-node cluster (``stack.sh up cluster``): its nodes ``kafka-1..3`` on
    ``base_port``, ``base_port+2``, ``base_port+4`` (controllers one port above each)."""

    base_port: int
    local_dir: Path
    nodes: int = CLUSTER_NODES
    _admin: AdminClient | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> KafkaCluster:
        """The cluster ``stack.sh`` would start with this environment (FLEET_KAFKA_CLUSTER_PORT, else
        FLEET_KAFKA_PORT+2; FLEET_LOCAL_DIR, else the checkout's .local)."""
        kafka_port = int(environ.get("FLEET_KAFKA_PORT", "19092"))
        port = int(environ.get("FLEET_KAFKA_CLUSTER_PORT", str(kafka_port + 2)))
        local = Path(environ.get("FLEET_LOCAL_DIR", str(STACK_SCRIPT.parents[2] / ".local")))
        return cls(base_port=port, local_dir=local)

    # -- addresses ---------------------------------------------------------------------------------------
    def node_names(self) -> list[str]:
        return [f"kafka-{n}" for n in range(1, self.nodes + 1)]

    def port(self, node_id: int) -> int:
        return self.base_port + 2 * (node_id - 1)

    def controller_port(self, node_id: int) -> int:
        return self.port(node_id) + 1

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{self.port(n)}" for n in range(1, self.nodes + 1))

    def _env(self) -> dict[str, str]:
        """The environment under which stack.sh addresses this cluster's own folder and ports."""
        return {
            "FLEET_LOCAL_DIR": str(self.local_dir / "cluster"),
            "FLEET_KAFKA_PORT": str(self.base_port),
            "FLEET_KAFKA_CONTROLLER_PORT": str(self.base_port + 1),
            "FLEET_KAFKA_LIB": str(self.local_dir / "kafka" / "lib"),
            "FLEET_KAFKA_TOOLS_LIB": str(self.local_dir / "kafka" / "tools-lib"),
            "FLEET_KAFKA_BROKERS": str(self.nodes),
            "FLEET_KAFKA_CLUSTER_PORT": "0",
        }

    @property
    def admin(self) -> AdminClient:
        if self._admin is None:
            self._admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        return self._admin

    # -- control -----------------------------------------------------------------------------------------
    def ensure_up(self) -> None:
        """Start the cluster (a no-op when it runs)."""
        _stack(["up", "cluster"], timeout=300)

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, no flush (what a crash or an OOM kill does)."""
        _stack(["kill", f"kafka-{node_id}"], self._env())

    def stop(self, node_id: int) -> None:
        """Stop one node cleanly (SIGTERM: controlled shutdown moves its leaderships first)."""
        _stack(["down", f"kafka-{node_id}"], self._env(), timeout=60)

    def start(self, node_id: int) -> None:
        """Start one node and wait until it serves."""
        _stack(["up", f"kafka-{node_id}"], self._env(), timeout=300)

    def running(self) -> dict[int, bool]:
        """Each node, and whether stack.sh sees it up."""
        out = _stack(["status"], self._env())
        state = {}
        for line in out.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0].startswith("kafka-"):
                state[int(parts[0].removeprefix("kafka-"))] = parts[2] == "up"
        return state

    def tool(self, cls: str, *args: str, timeout: float = 60.0) -> str:
        """Run a class of Kafka's kafka-tools jar against this cluster; its stdout."""
        return _stack(["kafka-tool", cls, *args], self._env(), timeout=timeout)

    def tool_argv(self, cls: str, *args: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment to run a kafka-tools class as a long-lived process."""
        return [str(STACK_SCRIPT), "kafka-tool", cls, *args], {**os.environ, **self._env()}

    # -- who leads ---------------------------------------------------------------------------------------
    def active_controller(self) -> int:
        """The node id of the active controller (the KRaft quorum's leader), from the quorum itself."""
        out = self.tool(
            "org.apache.kafka.tools.MetadataQuorumCommand",
            "--bootstrap-server",
            self.bootstrap_servers,
            "describe",
            "--status",
        )
        match = re.search(r"^LeaderId:\s+(\d+)", out, re.MULTILINE)
        if match is None:
            raise StackError(f"no LeaderId in the quorum's status:\n{out}")
        return int(match.group(1))

    def leader_of(self, topic: str, partition: int = 0) -> int:
        """The broker that leads ``topic``'s ``partition`` now."""
        meta = self.admin.list_topics(topic, timeout=10).topics[topic]
        return int(meta.partitions[partition].leader)

    def under_replicated(self, prefix: str = "") -> list[str]:
        """Partitions (of topics starting with ``prefix``, internal ones included) whose in-sync replicas
        are fewer than their replicas, or that have no leader."""
        meta = self.admin.list_topics(timeout=10)
        out = []
        for name, topic in meta.topics.items():
            if not (name.startswith(prefix) or name.startswith("__")):
                continue
            for pid, part in topic.partitions.items():
                if part.leader < 0 or len(part.isrs) < len(part.replicas):
                    out.append(f"{name}[{pid}] isr={part.isrs} replicas={part.replicas}")
        return out

    def wait_fully_replicated(self, prefix: str = "", timeout: float = 180.0) -> float:
        """Until every partition has all its replicas in sync again; returns the seconds it took."""
        t0 = time.monotonic()
        lagging: list[str] = []
        while time.monotonic() - t0 < timeout:
            try:
                lagging = self.under_replicated(prefix)
            except Exception as exc:  # metadata unavailable for a moment while leaders move
                lagging = [f"metadata: {exc}"]
            if not lagging:
                return time.monotonic() - t0
            time.sleep(0.5)
        raise StackError(f"still under-replicated after {timeout:.0f}s: {lagging[:10]}")

    def describe(self) -> dict[str, Any]:
        """Brokers, controller and features, for the report."""
        features = self.tool(
            "org.apache.kafka.tools.FeatureCommand", "--bootstrap-server", self.bootstrap_servers, "describe"
        )
        levels = dict(re.findall(r"Feature: (\S+)\s.*?FinalizedVersionLevel: (\S+)", features))
        return {
            "bootstrap": self.bootstrap_servers,
            "brokers": sorted(self.admin.list_topics(timeout=10).brokers),
            "active_controller": self.active_controller(),
            "transaction.version": levels.get("transaction.version"),
            "kraft.version": levels.get("kraft.version"),
            "metadata.version": levels.get("metadata.version"),
        }


@dataclass
class StackServices:
    """The stack's Postgres, Redis and InfluxDB, taken down and brought back through stack.sh."""

    def down(self, service: str) -> None:
        _stack(["down", service], timeout=60)

    def up(self, service: str) -> None:
        _stack(["up", service], timeout=120)
