"""A circuit breaker: closed -> open after N consecutive failures -> half-open probe after a cooldown.

State changes are logged and exported to the ``CIRCUIT_STATE`` gauge (0 closed, 1 half-open, 2 open).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import IntEnum

from pipelines.metrics import CIRCUIT_STATE

__all__ = ["BreakerState", "CircuitBreaker"]

logger = logging.getLogger(__name__)


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    """Thread-safe; ``allow()`` before a call, then ``record_success()`` or ``record_failure()``."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cooldown_s < 0:
            raise ValueError("failure_threshold must be >= 1 and cooldown_s >= 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        CIRCUIT_STATE.labels(name=name).set(int(self._state))

    @property
    def state(self) -> BreakerState:
        with self._lock:
            return self._state

    def _move(self, new: BreakerState, why: str) -> None:
        if new is self._state:
            return
        logger.warning("circuit %s: %s -> %s (%s)", self.name, self._state.name, new.name, why)
        self._state = new
        CIRCUIT_STATE.labels(name=self.name).set(int(new))

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open, only one probe at a time)."""
        with self._lock:
            if self._state is BreakerState.OPEN:
                if self._clock() - self._opened_at < self.cooldown_s:
                    return False
                self._move(BreakerState.HALF_OPEN, "cooldown elapsed, probing")
            if self._state is BreakerState.HALF_OPEN:
                if self._probing:
                    return False
                self._probing = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._probing = False
            self._move(BreakerState.CLOSED, "call succeeded")

    def record_failure(self) -> None:
        with self._lock:
            self._probing = False
            if self._state is BreakerState.HALF_OPEN:
                self._opened_at = self._clock()
                self._move(BreakerState.OPEN, "probe failed")
                return
            self._failures += 1
            if self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                self._move(BreakerState.OPEN, f"{self._failures} consecutive failures")
