"""The commit watchdog ends a processor whose thread stays in one Kafka transaction call too long, and
leaves alone one that commits often (each call short) or that waits for records."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from pipelines.app import create_processor_app
from pipelines.settings import CommonSettings
from pipelines.watchdog import CommitWatchdog, transaction_call

# Functions compiled as if they were Quix's producer module, the way the watchdog recognises them.
QUIX_PRODUCER = str(Path("site-packages") / "quixstreams" / "internal_producer.py")
SOURCE = """
def commit_transaction(release, pause):
    if pause:
        release.wait(pause)

def poll(release, pause):
    release.wait(pause)
"""


def _quix_functions() -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    exec(compile(SOURCE, QUIX_PRODUCER, "exec"), namespace)
    return namespace


def _run(target: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _stalls_while_blocked(call: Any, release: threading.Event, *args: Any) -> int:
    """Run ``call(release, *args)`` (it blocks until released) under a 0.5 s watchdog; the stalls reported
    (each after more than 0.5 s) before it is released."""
    stalls: list[float] = []
    blocked = _run(call, release, *args)
    dog = CommitWatchdog("t", 0.5, thread_id=blocked.ident, interval_s=0.05, on_stall=stalls.append)
    dog.start()
    deadline = time.monotonic() + 10
    while not stalls and time.monotonic() < deadline:
        time.sleep(0.05)
    release.set()
    blocked.join()
    dog.stop()
    assert all(s > 0.5 for s in stalls)
    return len(stalls)


def test_a_blocked_commit_ends_the_process_and_short_ones_or_idle_polls_do_not() -> None:
    quix = _quix_functions()
    release = threading.Event()
    stalls: list[float] = []

    def watch(thread: threading.Thread) -> CommitWatchdog:
        dog = CommitWatchdog("t", 0.5, thread_id=thread.ident, interval_s=0.05, on_stall=stalls.append)
        dog.start()
        return dog

    def many_short_commits() -> None:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            quix["commit_transaction"](release, 0.02)

    for target, args in ((many_short_commits, ()), (quix["poll"], (release, 1.5))):
        thread = _run(target, *args)
        dog = watch(thread)
        thread.join()
        dog.stop()
        assert stalls == [], target
    assert _stalls_while_blocked(quix["commit_transaction"], release, 30) == 1


def test_a_consumer_close_that_hangs_on_the_way_out_ends_the_process() -> None:
    """A processor that failed and then blocks leaving its group (a dead coordinator) is ended too."""
    namespace: dict[str, Any] = {}
    code = "def close(release):\n    release.wait(30)\n"
    exec(
        compile(code, str(Path("site-packages") / "quixstreams" / "kafka" / "consumer.py"), "exec"), namespace
    )
    assert _stalls_while_blocked(namespace["close"], threading.Event()) == 1


def test_the_stack_walk_finds_the_transaction_call_and_nothing_else() -> None:
    import sys

    assert transaction_call(sys._getframe()) is None
    seen: list[Any] = []

    def probe(release: threading.Event, pause: float) -> None:
        seen.append(transaction_call(sys._getframe()))

    namespace = _quix_functions()
    namespace["release_wait"] = probe
    code = compile("def commit_transaction(r, p):\n    release_wait(r, p)\n", QUIX_PRODUCER, "exec")
    exec(code, namespace)
    namespace["commit_transaction"](threading.Event(), 0)
    assert seen[0] is not None and seen[0].f_code.co_name == "commit_transaction"


def test_only_exactly_once_processors_get_a_watchdog() -> None:
    settings = CommonSettings(kafka_commit_stall_s=12)
    eos = create_processor_app(settings, "telemetry", exactly_once=True)
    alo = create_processor_app(settings, "sink-redis", exactly_once=False)
    try:
        assert eos.commit_stall_s == 12 and alo.commit_stall_s is None
    finally:
        eos.close()
        alo.close()
