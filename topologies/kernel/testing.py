"""Run a step without a broker, on Quix Streams' own state stores (in memory or RocksDB).

    harness = StepHarness(step, backend="rocksdb", path=tmp_path)
    outputs = harness.send("telemetry", "r1", record, now_ms=record["occurred_at"])
    harness.checkpoint()          # what Quix does at a commit: the transaction is prepared and written
    harness.restart(new_step)     # a fresh process: empty memory, the stored state kept

Every key's state goes through a real Quix store transaction (``as_state(prefix=key)``, as a stateful
``apply`` gets it), so a test sees what the processor would store: JSON round trips, sub-keys, deletes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Literal

from quixstreams.state.base import Store
from quixstreams.state.memory import MemoryStore
from quixstreams.state.rocksdb import RocksDBStore

from topologies.kernel.output import Output
from topologies.kernel.step import Step, run_step

__all__ = ["BACKENDS", "Backend", "StepHarness", "open_store"]

Backend = Literal["memory", "rocksdb"]
BACKENDS: tuple[Backend, ...] = ("memory", "rocksdb")


def open_store(backend: Backend, path: Path | None = None, name: str = "default") -> Store:
    """A Quix store of ``backend`` with partition 0 assigned (RocksDB under ``path``)."""
    store: Store
    if backend == "memory":
        store = MemoryStore(name, "harness")
    else:
        directory = path if path is not None else Path(tempfile.mkdtemp(prefix="fleet-state-"))
        store = RocksDBStore(name, "harness", str(directory))
    store.assign_partition(0)
    return store


class StepHarness:
    """Feeds inputs to a step, one Quix store transaction per checkpoint, keys on partition 0."""

    def __init__(self, step: Step, backend: Backend = "memory", path: Path | None = None) -> None:
        self.step = step
        self.backend = backend
        self.store = open_store(backend, path)
        self._open = self.store.start_partition_transaction(0)

    def state(self, key: str) -> Any:
        """The Quix ``State`` of ``key`` in the open transaction."""
        return self._open.as_state(prefix=key)

    def send(self, kind: str, key: str, event: Any, now_ms: int) -> list[Output]:
        """Apply one input as the processor would (writes stored when the step returns)."""
        return run_step(self.step, self.state(key), key, kind, event, now_ms)

    def checkpoint(self) -> None:
        """Commit the open transaction and start the next one."""
        self._open.prepare()
        self._open.flush()
        self._open = self.store.start_partition_transaction(0)

    def abort(self) -> None:
        """Drop the open transaction (an aborted checkpoint: its inputs will come again)."""
        self._open = self.store.start_partition_transaction(0)

    def restart(self, step: Step) -> None:
        """A new process with ``step`` (fresh memory) on the committed state."""
        self.checkpoint()
        self.step = step

    def stored(self, key: str, sub: str) -> Any:
        """What a fresh transaction reads for ``key``'s sub-key ``sub`` (the committed store)."""
        return self.store.start_partition_transaction(0).as_state(prefix=key).get(sub)

    def close(self) -> None:
        self.store.close()
