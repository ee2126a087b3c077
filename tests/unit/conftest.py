"""Stateful tests run against both of Quix Streams' state stores (memory and RocksDB), as the
processors would use them (``topologies.kernel.testing``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from topologies.kernel import Step
from topologies.kernel.testing import BACKENDS, Backend, StepHarness


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def harness(backend: Backend, tmp_path: Path) -> Iterator[Callable[[Step], StepHarness]]:
    """A factory of :class:`StepHarness` on this test's backend (closed after the test)."""
    made: list[StepHarness] = []

    def make(step: Step) -> StepHarness:
        h = StepHarness(step, backend, tmp_path / f"state-{len(made)}")
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()
