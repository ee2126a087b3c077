"""Circuit breaker transitions with a fake clock, and the gauge that exports them."""

from __future__ import annotations

from pipelines.metrics import CIRCUIT_STATE
from pipelines.planner.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _gauge(name: str) -> float:
    return CIRCUIT_STATE.labels(name=name)._value.get()


def test_opens_after_n_consecutive_failures_only() -> None:
    b = CircuitBreaker("t-open", failure_threshold=3, cooldown_s=5, clock=Clock())
    b.record_failure()
    b.record_failure()
    b.record_success()  # resets the count
    b.record_failure()
    b.record_failure()
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure()
    assert b.state is BreakerState.OPEN and not b.allow()
    assert _gauge("t-open") == 2


def test_half_open_allows_one_probe_after_the_cooldown() -> None:
    clock = Clock()
    b = CircuitBreaker("t-probe", failure_threshold=1, cooldown_s=5, clock=clock)
    b.record_failure()
    clock.t += 4.9
    assert not b.allow()
    clock.t += 0.2
    assert b.allow()  # the probe
    assert b.state is BreakerState.HALF_OPEN and _gauge("t-probe") == 1
    assert not b.allow()  # one probe at a time
    b.record_failure()  # the probe failed: open again, for a new cooldown
    assert b.state is BreakerState.OPEN and not b.allow()
    clock.t += 5.1
    assert b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED and _gauge("t-probe") == 0 and b.allow() and b.allow()


def test_transitions_are_logged(caplog) -> None:  # type: ignore[no-untyped-def]
    b = CircuitBreaker("t-log", failure_threshold=1, cooldown_s=0, clock=Clock())
    with caplog.at_level("WARNING"):
        b.record_failure()
        b.allow()
        b.record_success()
    assert [r.getMessage().split("(")[0].strip() for r in caplog.records] == [
        "circuit t-log: CLOSED -> OPEN",
        "circuit t-log: OPEN -> HALF_OPEN",
        "circuit t-log: HALF_OPEN -> CLOSED",
    ]
