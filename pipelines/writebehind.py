"""Write-behind state for the telemetry step: each key's sub-keys kept in memory within a checkpoint and
stored once, when the checkpoint commits. Public Quix Streams API only, pinned to the version it was
checked against (``tests/unit/pipelines/test_writebehind.py``).

Per record, Quix's state store is the costliest part of the telemetry topology (a read and a write, each
through several layers and a JSON round trip). A robot reports many times per checkpoint, so keeping its
entry in memory for the rest of the checkpoint and storing it once at the end saves most of that.

What it relies on (Quix Streams 3.28, ``checkpointing/checkpoint.py``):

- ``Checkpoint.commit`` first calls ``flush()`` of every sink, then prepares the state transactions and
  commits the Kafka transaction. :class:`WriteBehindSink` is a sink that receives no record: its ``flush``
  stores the changed entries through the ``State`` objects the records were processed with (their
  transactions are still open then), and forgets every cached entry, so each checkpoint starts from what
  the store holds.
- A checkpoint that is not committed (another sink's backpressure) calls ``on_paused()`` of the sinks:
  the cached and changed entries are dropped with it; its records are processed again.
- Between two flushes, no other process writes the partitions this one owns: a rebalance commits the
  checkpoint (a flush) before the partitions move; a partition lost without it makes that commit fail and
  the processor stop, memory and all.

Values read are shared with the cache: the step must not change them in place (the telemetry step builds
new dicts). The kernel's :class:`~topologies.kernel.KeyState` buffers a step's writes on top of this, so a
step that raises changes nothing here either.
"""

from __future__ import annotations

import logging
from typing import Any

import quixstreams
from quixstreams.context import message_context
from quixstreams.sinks import BaseSink

from topologies.kernel import StateLike

__all__ = ["QUIX_VERSION", "CheckpointHook", "WriteBehind", "WriteBehindSink"]

logger = logging.getLogger(__name__)

#: The Quix Streams version whose checkpoint order this module was checked against.
QUIX_VERSION = "3.28.1"

_MISSING: Any = object()
_DELETED: Any = object()


class _KeyView:
    """One key's sub-keys for the rest of the checkpoint (a :class:`StateLike`)."""

    __slots__ = ("changed", "store", "values")

    def __init__(self, store: StateLike) -> None:
        self.store = store
        self.values: dict[str, Any] = {}
        self.changed: set[str] = set()

    def get(self, sub: str, default: Any = None) -> Any:
        value = self.values.get(sub, _MISSING)
        if value is _MISSING:
            value = self.values[sub] = self.store.get(sub, _DELETED)
        return default if value is _DELETED else value

    def set(self, sub: str, value: Any) -> None:
        self.values[sub] = value
        self.changed.add(sub)

    def delete(self, sub: str) -> None:
        self.values[sub] = _DELETED
        self.changed.add(sub)

    def exists(self, sub: str) -> bool:
        return self.get(sub, _MISSING) is not _MISSING

    def store_changes(self) -> int:
        for sub in self.changed:
            value = self.values[sub]
            if value is _DELETED:
                self.store.delete(sub)
            else:
                self.store.set(sub, value)
        return len(self.changed)


class WriteBehind:
    """The state views of one processor (see the module docstring); use with :class:`WriteBehindSink`."""

    def __init__(self) -> None:
        if quixstreams.__version__ != QUIX_VERSION:  # pragma: no cover - the pinned test says why
            raise RuntimeError(
                f"write-behind state was checked against Quix Streams {QUIX_VERSION}, not "
                f"{quixstreams.__version__}: re-check its assumptions (pipelines/writebehind.py)"
            )
        self._keys: dict[tuple[int, str], _KeyView] = {}

    def view(self, store: StateLike, key: str) -> StateLike:
        """The view of ``key`` for the record being processed (``store``: its Quix ``State``)."""
        slot = (message_context().partition, key)
        view = self._keys.get(slot)
        if view is None:
            view = self._keys[slot] = _KeyView(store)
        else:
            view.store = store  # the same transaction until the next flush
        return view

    def flush(self) -> int:
        """Store every changed entry; forget every cached one. Returns the sub-keys stored."""
        keys, self._keys = self._keys, {}
        return sum(view.store_changes() for view in keys.values() if view.changed)

    def discard(self) -> None:
        """Forget everything: the checkpoint will not be committed."""
        self._keys = {}


class CheckpointHook(BaseSink):
    """A sink used for its ``flush``, which Quix runs at every checkpoint before the commit (see the module
    docstring): silent when it starts, and a failure raised there stops the processor."""

    def __init__(self) -> None:
        super().__init__(on_client_connect_success=_quiet, on_client_connect_failure=_reraise)


class WriteBehindSink(CheckpointHook):
    """The checkpoint hook of a :class:`WriteBehind`: a sink that receives no record (attach it to a branch
    that lets nothing through)."""

    def __init__(self, states: WriteBehind) -> None:
        super().__init__()
        self.states = states

    def add(self, *_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("WriteBehindSink receives no records")

    def flush(self) -> None:
        stored = self.states.flush()
        if stored and logger.isEnabledFor(logging.DEBUG):
            logger.debug("stored %d state entries before the checkpoint commit", stored)

    def on_paused(self) -> None:
        self.states.discard()


def _quiet() -> None:
    return None


def _reraise(exc: Exception | None) -> None:
    if exc is not None:
        raise exc
