"""The state a step sees: one key's sub-keys, writes applied only when the step returns.

A Quix ``State`` is scoped to the key of the record being processed and offers get / set / delete /
exists by sub-key (no scans). :class:`KeyState` wraps it for one step: reads go through to the store (or
to what this step already wrote), writes are buffered and reach the store only in :meth:`KeyState.commit`,
which the adapter calls once the step returned. When the step raises, the adapter calls
:meth:`KeyState.discard` instead: nothing of a half-applied step is stored, and the in-memory models the
step used are dropped.

:class:`ModelCache` keeps a derived in-memory model per key (a site's robots, tasks and graph) so that
one update costs O(1) state I/O instead of a rebuild from every sub-key: the key's state holds a
generation token that every committed change rewrites; a cached model is used only while the stored
token is the one written with it. A rebalance that moved the key to another instance and back, an
aborted checkpoint or a restart all leave another token (or none) in the store, and the model is
rebuilt from the sub-keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["GENERATION", "KeyState", "ModelCache", "StateLike"]

#: The sub-key of the generation token a :class:`ModelCache` keeps in each key's state.
GENERATION = "gen"

M = TypeVar("M")
_DELETED: Any = object()


class StateLike(Protocol):
    """What a step needs of a Quix ``State`` (``quixstreams.State`` satisfies it)."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


class KeyState:
    """One key's state during one step (see the module docstring).

    ``key`` is the record's key (the owner of the state). Values are serialized when :meth:`commit`
    stores them, so a value set and then changed in place is stored as it is at the end of the step.
    """

    __slots__ = ("_models", "_store", "_writes", "key")

    def __init__(self, store: StateLike, key: str) -> None:
        self.key = key
        self._store = store
        self._writes: dict[str, Any] = {}
        self._models: list[tuple[ModelCache[Any], Any, Any]] = []

    def get(self, sub: str, default: Any = None) -> Any:
        writes = self._writes
        if sub in writes:
            value = writes[sub]
            return default if value is _DELETED else value
        return self._store.get(sub, default)

    def set(self, sub: str, value: Any) -> None:
        self._writes[sub] = value

    def delete(self, sub: str) -> None:
        self._writes[sub] = _DELETED

    def exists(self, sub: str) -> bool:
        writes = self._writes
        if sub in writes:
            return writes[sub] is not _DELETED
        return self._store.exists(sub)

    @property
    def pending(self) -> dict[str, Any]:
        """The sub-keys written so far (deleted ones map to None)."""
        return {k: (None if v is _DELETED else v) for k, v in self._writes.items()}

    @property
    def changed(self) -> bool:
        return bool(self._writes)

    def commit(self) -> int:
        """Store what the step wrote (and a new generation token for each model it used); returns the
        number of sub-keys written."""
        store, writes = self._store, self._writes
        for sub, value in writes.items():
            if value is _DELETED:
                store.delete(sub)
            else:
                store.set(sub, value)
        count = len(writes)
        for cache, model, token in self._models:
            if writes:
                token = uuid.uuid4().hex
                store.set(cache.token, token)
                count += 1
            cache.keep(self.key, token, model)
        self._writes = {}
        self._models = []
        return count

    def discard(self) -> None:
        """Forget what the step wrote and the models it used (the step raised)."""
        for cache, _model, _token in self._models:
            cache.drop(self.key)
        self._writes = {}
        self._models = []

    def attach(self, cache: ModelCache[Any], model: Any, token: Any) -> None:
        """Called by :meth:`ModelCache.get`: commit keeps the model, discard drops it."""
        self._models.append((cache, model, token))


class ModelCache(Generic[M]):
    """In-memory models per key, rebuilt by ``load`` when the key's stored generation token changed.

    A step gets its key's model with :meth:`get` (one state read: the token), changes it in place and
    writes the sub-keys it changed through the :class:`KeyState`; the adapter's commit then writes a new
    token and keeps the model, its discard drops the model (it may be half-updated).
    """

    def __init__(self, load: Callable[[KeyState], M], *, token: str = GENERATION) -> None:
        self.load = load
        self.token = token
        self.loads = 0
        self._models: dict[str, tuple[Any, M]] = {}

    def get(self, state: KeyState) -> M:
        token = state.get(self.token)
        hit = self._models.get(state.key)
        if hit is not None and hit[0] == token:
            model = hit[1]
        else:
            model = self.load(state)
            self.loads += 1
        state.attach(self, model, token)
        return model

    def keep(self, key: str, token: Any, model: M) -> None:
        self._models[key] = (token, model)

    def drop(self, key: str) -> None:
        self._models.pop(key, None)

    def clear(self) -> None:
        self._models.clear()

    def __len__(self) -> int:
        return len(self._models)
