"""Fixtures for the telemetry processor against the real stack: catalog topics under a unique prefix,
an Avro producer, processors as subprocesses (``fleet run ...``) and read_committed readers."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipelines.settings import CommonSettings
from schemas.catalog import topics as catalog_topics
from schemas.registry import RegistryClient
from tests.integration.processes import ProcessStack
from topologies.kernel import decode_envelope
from topologies.telemetry import SITE_BOUNDS

TELEMETRY_TOPICS = (
    "robot.telemetry",
    "robot.registry",
    "timers.due.telemetry",
    "robot.status",
    "alerts",
    "robot.telemetry.1m",
    "timers",
    "site.maps",
    "dlq.telemetry",
    "telemetry.inbox",
    "robot.telemetry.accepted",
)


class Stack(ProcessStack):
    """One test's slice of the stack for the telemetry-side processors (see :class:`ProcessStack`)."""

    def __init__(self, settings: CommonSettings, registry: RegistryClient, tmp: Path) -> None:
        super().__init__(settings, registry, tmp)

    def site_bounds(self, timeout: float = 30.0) -> dict[str, Any]:
        """The bounds the telemetry processor's site directory sent each robot so far (robot -> the last
        ``site_bounds`` message), read from its inbox."""
        found: dict[str, Any] = {}
        for message in self.read("telemetry.inbox", until=lambda m: bool(m), timeout=timeout, raw=True):
            envelope = decode_envelope(message.value())
            if envelope.kind == SITE_BOUNDS:
                found[message.key().decode()] = envelope.payload
        return found

    def wait_until_bounds(self, robot: str, check: Callable[[Any], bool], timeout: float = 30.0) -> None:
        """Until the last bounds the site directory sent ``robot`` pass ``check`` (None: no map)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.site_bounds(timeout=2.0).get(robot)
            if last is not None and check(last["bounds"]):
                return
        raise AssertionError(
            f"the bounds of {robot} never passed the check:\n{self.log('telemetry')[-3000:]}"
        )

    def wait_for_bounds(self, robots: Iterable[str], timeout: float = 30.0) -> None:
        """Until the processor has given each of ``robots`` its site's map bounds (the pose check is on)."""
        deadline = time.monotonic() + timeout
        wanted = set(robots)
        while time.monotonic() < deadline:
            bounds = self.site_bounds(timeout=2.0)
            if all(bounds.get(r, {}).get("bounds") for r in wanted):
                return
        raise AssertionError(
            f"no site bounds for {sorted(wanted)} after {timeout} s:\n{self.log('telemetry')[-3000:]}"
        )


@pytest.fixture
def stack(prefixed_settings: CommonSettings, create_topics, tmp_path: Path) -> Iterator[Stack]:
    """The telemetry processor's topics (robot group with 2 partitions) under this test's prefix."""
    prefix = prefixed_settings.topic_prefix
    for spec in catalog_topics(prefix, partitions={"robot": 2}, names=TELEMETRY_TOPICS):
        create_topics([spec.name], partitions=spec.partitions, config=spec.config())
    registry = RegistryClient(**prefixed_settings.registry_client_config())
    result = Stack(prefixed_settings, registry, tmp_path)
    yield result
    result.stop_all()
    registry.close()


class TcpProxy:
    """A TCP forwarder to a real service that a test can cut (``down()``) and restore (``up()``) to
    simulate an outage; the service itself is never mocked."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def down(self) -> None:
        """Refuse new connections and reset the open ones."""
        with self._lock:
            listener, self._listener = self._listener, None
            conns, self._conns = self._conns, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            listener.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[int], TcpProxy]]:
    proxies: list[TcpProxy] = []

    def _make(upstream_port: int) -> TcpProxy:
        proxy = TcpProxy(upstream_port).up()
        proxies.append(proxy)
        return proxy

    yield _make
    for proxy in proxies:
        proxy.down()
