"""A watchdog for exactly-once processors: exit when a checkpoint's transaction commit blocks.

After a hard broker kill, librdkafka (2.12, the client Quix Streams 3.28 pins) can keep a dead broker as
the transaction's coordinator and block ``send_offsets_to_transaction`` / ``commit_transaction`` for
minutes (librdkafka issues #5511 and #5456; docs/reliability.md, "What the drills found"): the processor
neither progresses nor fails. A healthy commit takes milliseconds, a commit across a failover a few
seconds. :class:`CommitWatchdog` samples the processing thread's Python stack once a second; when that
thread has been inside one and the same Kafka transaction call (Quix's ``InternalProducer`` or its
``Producer``) for longer than its limit, it logs why and ends the process. Nothing is lost: the open
transaction is aborted by the coordinator (or fenced by the restarted instance, which takes the same
``transactional.id``) and its records are processed again from the last committed offsets; Kubernetes,
``fleet up`` or the drills' supervisor restart the process.

It reads frames (``sys._current_frames``, the standard library's stack sampling), not any attribute of
Quix or of the Kafka client.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

__all__ = ["EXIT_CODE", "TRANSACTION_CALLS", "CommitWatchdog", "transaction_call"]

logger = logging.getLogger(__name__)

#: The exit status of a process the watchdog ended.
EXIT_CODE = 75  # EX_TEMPFAIL: try again (a restart recovers)
#: (module file suffix, function) of the calls that may block on a dead coordinator: the transaction calls
#: of a checkpoint, and the consumer's close on the way out (it leaves the group through the group's
#: coordinator; a full drill saw a failed tasks instance hang there for 6 minutes, out of its group and
#: never restarted).
TRANSACTION_CALLS = frozenset(
    {
        ("quixstreams/internal_producer.py", "commit_transaction"),
        ("quixstreams/internal_producer.py", "abort_transaction"),
        ("quixstreams/kafka/producer.py", "send_offsets_to_transaction"),
        ("quixstreams/kafka/producer.py", "commit_transaction"),
        ("quixstreams/kafka/producer.py", "abort_transaction"),
        ("quixstreams/kafka/consumer.py", "close"),
    }
)


def transaction_call(frame: FrameType | None) -> FrameType | None:
    """The outermost frame of ``frame``'s stack that is a Kafka transaction call (None: not in one)."""
    found = None
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename.replace(os.sep, "/")
        for suffix, function in TRANSACTION_CALLS:
            if code.co_name == function and filename.endswith(suffix):
                found = frame
                break
        frame = frame.f_back
    return found


class CommitWatchdog:
    """Ends the process when thread ``thread_id`` stays in one transaction call longer than ``limit_s``.

    :param name: the processor, for the log line.
    :param limit_s: how long one call may block.
    :param thread_id: the thread that runs the application (default: the one that calls :meth:`start`).
    :param on_stall: what to do instead of ending the process (tests); gets the seconds blocked.
    """

    def __init__(
        self,
        name: str,
        limit_s: float,
        *,
        thread_id: int | None = None,
        interval_s: float = 1.0,
        on_stall: Callable[[float], None] | None = None,
    ) -> None:
        if limit_s <= 0:
            raise ValueError("limit_s must be positive")
        self.name = name
        self.limit_s = limit_s
        self.interval_s = interval_s
        self.thread_id = thread_id
        self._on_stall = on_stall
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread_id is None:
            self.thread_id = threading.get_ident()
        self._thread = threading.Thread(target=self._watch, name=f"{self.name}-commit-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def _watch(self) -> None:
        call: FrameType | None = None  # held, so that a later call cannot be the same frame object
        since = 0.0
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            current = transaction_call(sys._current_frames().get(self.thread_id or 0))
            if current is None or current is not call:
                call, since = current, now
                continue
            blocked = now - since
            if blocked > self.limit_s:
                self._stalled(blocked, current.f_code.co_name)
                return
        call = None

    def _stalled(self, blocked: float, function: str) -> None:
        logger.error(
            "%s: a Kafka call (%s) has blocked for %.0fs (more than %.0fs): the client keeps a broker that "
            "is gone as the coordinator (librdkafka #5511); exiting so that a restart recovers (an open "
            "transaction is aborted, its records processed again)",
            self.name, function, blocked, self.limit_s,
        )  # fmt: skip
        if self._on_stall is not None:
            self._on_stall(blocked)
            return
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(EXIT_CODE)
