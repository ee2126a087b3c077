"""Fixtures of the sink tests: a real dead-letter queue (a Kafka topic of the test's own) for the sinks, and
InfluxDB 1.12 (``/api/v2/write``), started when a test first needs it."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from pipelines.dlq import DeadLetterQueue
from pipelines.settings import CommonSettings
from schemas.catalog import CATALOG
from schemas.codec import AvroCodec
from schemas.registry import RegistryClient
from sinks.deadletters import DeadLetterWriter

#: The first test on InfluxDB 1.12 may wait for its build (``make test`` starts it in the background;
#: 15-20 min cold on 2 cores): pytest-timeout's 300 s would cut it.
INFLUXD_BUILD_TIMEOUT_S = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on InfluxDB 1.12 may wait for its build first: give them the build's time limit."""
    here = Path(__file__).parent
    for item in items:
        if here not in item.path.parents:
            continue
        callspec = getattr(item, "callspec", None)
        params = callspec.params.values() if callspec is not None else ()
        if "influx2_url" in getattr(item, "fixturenames", ()) or any("@1.12" in str(p) for p in params):
            item.add_marker(pytest.mark.timeout(INFLUXD_BUILD_TIMEOUT_S))


STACK = Path(__file__).resolve().parents[3] / "deploy" / "local" / "stack.sh"
#: Where ``install-influxd.sh --background`` reports its progress.
BUILD_LOG = (
    Path(
        os.environ.get("FLEET_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fleetstream"
    )
    / "influxd-background.log"
)


@pytest.fixture(scope="session")
def influx2_url(request: pytest.FixtureRequest) -> str:
    """InfluxDB 1.12 (serves /api/v2/write), started here if it is not running: ``stack.sh up influxdb2``,
    which waits for the build ``make test`` started in the background (``install-influxd.sh
    --background``) or builds it. A test needing it fails if it cannot be had."""
    url = f"http://127.0.0.1:{int(os.environ.get('FLEET_INFLUXDB2_PORT', 18087))}"
    if not _influx_version(url):
        _say(
            request,
            f"\n[influxdb2] not running at {url}: `deploy/local/stack.sh up influxdb2` (waits for its build)",
        )
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as log:
            up = subprocess.Popen(
                [str(STACK), "up", "influxdb2"], stdout=log, stderr=subprocess.STDOUT, text=True
            )
            while True:  # a line a minute while it waits (a cold build takes 15-20 min)
                try:
                    up.wait(timeout=60)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() - started > INFLUXD_BUILD_TIMEOUT_S:
                        up.kill()
                        up.wait()
                        break
                    log.seek(0)
                    last = _last_line(BUILD_LOG if BUILD_LOG.exists() else None) or _last_line(log.read())
                    _say(
                        request,
                        f"[influxdb2] still waiting ({(time.monotonic() - started) / 60:.0f} min): {last}",
                    )
            log.seek(0)
            output = log.read()
        _say(request, f"[influxdb2] exit {up.returncode} after {time.monotonic() - started:.0f} s")
        if up.returncode != 0:
            pytest.fail(f"`stack.sh up influxdb2` failed:\n{output[-3000:]}", pytrace=False)
    version = _influx_version(url)
    if not version.startswith("1.") or tuple(map(int, version.split(".")[:2])) < (1, 8):
        pytest.fail(
            f"InfluxDB 1.8+ for /api/v2/write not running at {url} (found {version or 'nothing'})",
            pytrace=False,
        )
    return url


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """A progress line on the terminal, past pytest's output capture (a wait may take minutes)."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        request.config.get_terminal_writer().line(line)


def _last_line(text: str | Path | None) -> str:
    if isinstance(text, Path):
        text = text.read_text(errors="replace")
    return (text or "").strip().rpartition("\n")[2]


def _influx_version(url: str) -> str:
    """The version an InfluxDB at ``url`` answers /ping with ("" if nothing answers)."""
    try:
        return httpx.get(f"{url}/ping", timeout=2).headers.get("X-Influxdb-Version", "")
    except httpx.HTTPError:
        return ""


@dataclass
class DeadLetters:
    """A sink's dead letters going to a real Kafka topic; ``read`` returns what arrived there."""

    writer: DeadLetterWriter
    topic: str
    codecs: dict[str, AvroCodec]
    _settings: CommonSettings

    def read(self, expected: int, timeout: float = 15.0) -> list[Message]:
        """Every dead letter of the topic, waiting up to ``timeout`` for at least ``expected``."""
        consumer = Consumer(
            {
                **self._settings.kafka_client_config(),
                "group.id": f"{self.topic}-reader",
                "enable.auto.commit": False,
            }
        )
        consumer.assign([TopicPartition(self.topic, 0, 0)])
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is not None and not msg.error():
                    out.append(msg)
                elif len(out) >= expected:
                    break
        finally:
            consumer.close()
        return out


@pytest.fixture
def dead_letters(
    settings: CommonSettings, create_topics: Callable[..., list[str]], unique_prefix: str
) -> Iterator[DeadLetters]:
    """Dead letters of a sink under test, in ``<prefix>dlq.sink-test``. Sinks under test are fed records
    of unprefixed catalog topics (``sink.add(..., "alerts", ...)``); their codecs encode the dead letters."""
    (topic,) = create_topics([f"{unique_prefix}dlq.sink-test"])
    registry = RegistryClient(**settings.registry_client_config())
    queue = DeadLetterQueue(settings.kafka_client_config(), "sink-test", topic)
    codecs = {t.name: AvroCodec.for_topic(registry, t.name, unique_prefix) for t in CATALOG if t.is_avro}
    writer = DeadLetterWriter(queue.send, {name: codec.encode for name, codec in codecs.items()})
    yield DeadLetters(writer, topic, codecs, settings)
    queue.close()
    registry.close()
