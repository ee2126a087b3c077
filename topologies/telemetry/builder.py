"""``build_telemetry``: the thin Quix adapter around the pure per-robot state machine.

Inputs, all keyed by ``robot_id`` and co-partitioned (equal partition counts): ``robot.telemetry``,
``robot.registry`` and, optionally, ``timers.due.telemetry``. They are concatenated into one stream so
that a robot's registration, runtime state and offline timer live in the same key's state.

State (the default store of the concatenated stream; its changelog name derives from the three input
topic names, so keep them): one sub-key ``robot`` per key holding the registration and the runtime
state (see ``machine``). Rejections raise :class:`~schemas.errors.RejectedRecord` before any state is
written.

Per record, the state store is the costliest part of the topology (a read and a write go through
several layers of Quix and a JSON round trip each). So :class:`TelemetryStep` keeps the robots it has
read or written in memory for the rest of the Quix store transaction, and, in a topology built by
:func:`build_telemetry`, stores each changed robot once per checkpoint instead of once per record:
Quix flushes sinks first when it commits a checkpoint (then it produces the state changelogs, then it
commits the Kafka transaction), and the topology registers a sink that receives no record and whose
``flush`` stores what changed (:class:`StateFlush`). A crash before a commit loses the memory and the
uncommitted transaction alike, so what the store holds always matches the committed offsets.

Every output leaves through one dataframe of :class:`~topologies.telemetry.records.Output` values
(topic + record): produce it with ``to_topic`` choosing the topic per value (:func:`output_key` is its
key). One stream with a per-record topic is cheaper than a filtered branch per topic, which Quix runs
(and copies each record into) for every output.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

from quixstreams import State
from quixstreams.context import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.sinks import BaseSink

from schemas.errors import RejectedRecord
from schemas.ids import now_ms
from topologies.telemetry import machine, records
from topologies.telemetry.config import TelemetryConfig
from topologies.telemetry.records import Output
from topologies.telemetry.rules import validate_telemetry
from topologies.telemetry.sitemaps import SiteBounds

__all__ = [
    "OUTPUT_KEY_FIELDS",
    "OUTPUT_TOPICS",
    "REGISTRATION",
    "STATE_ROBOT",
    "TELEMETRY",
    "TIMER",
    "BoundsLookup",
    "StateFlush",
    "TelemetryStep",
    "build_telemetry",
    "output_key",
]

logger = logging.getLogger(__name__)

#: The state sub-key of a robot (registration + runtime). Renaming it orphans the stored state.
STATE_ROBOT = "robot"

#: Catalog names of the outputs, and the field of each output record that is its Kafka key.
OUTPUT_TOPICS = (records.STATUS, records.ALERTS, records.AGGREGATES, records.TIMERS)
OUTPUT_KEY_FIELDS = {
    records.STATUS: "robot_id",
    records.ALERTS: "subject_id",
    records.AGGREGATES: "robot_id",
    records.TIMERS: "timer_id",
}

#: ``(tenant_id, site_id) -> bounds of the site's latest map`` (None when the site has no known map).
BoundsLookup = Callable[[str, str], SiteBounds | None]

#: Kinds of input, by the topic they come from.
TELEMETRY, REGISTRATION, TIMER = "telemetry", "registration", "timer"


def _no_maps(_tenant_id: str, _site_id: str) -> SiteBounds | None:
    return None


def output_key(out: Output) -> str:
    """The Kafka key of an output record: the field :data:`OUTPUT_KEY_FIELDS` names for its topic."""
    return str(out.value[OUTPUT_KEY_FIELDS[out.topic]])


_MISSING: dict[str, Any] = {}


class _Scope:
    """What the step knows of one Quix store transaction: the robot entries read or written through it
    (by key), and the keys changed but not stored yet, with the state object to store them through."""

    __slots__ = ("__weakref__", "entries", "unstored")

    def __init__(self) -> None:
        self.entries: dict[Any, dict[str, Any]] = {}
        self.unstored: dict[Any, State] = {}


class TelemetryStep:
    """One input of a robot applied to its state: load, validate, transition, store.

    The robot's registration and runtime state share one state entry:
    ``{"registration": {...} | None, "runtime": {...} | None}`` under sub-key :data:`STATE_ROBOT`.

    The state store stays the source of truth; the step keeps a cache scoped to one Quix store
    transaction (one checkpoint of one partition): the entries it read or wrote through it, by key.
    Within a transaction this step is the only writer of its keys, so the cache is the store's view
    plus the step's own changes. A new transaction (every checkpoint, and after a rebalance, a recovery
    or a restart) starts with an empty cache, and a transaction's entries are dropped with it (weak
    reference). A state object without a transaction (a test double) is read and written every time.

    Writes go through to the store at once, unless :meth:`enable_write_behind` was called (by
    :class:`StateFlush` when Quix starts it): then a changed entry is stored by :meth:`flush`, which
    Quix calls through that sink at every checkpoint commit before it commits the state.
    """

    def __init__(
        self,
        config: TelemetryConfig,
        site_bounds: BoundsLookup,
        clock: Callable[[], int],
        kinds: dict[str, str] | None = None,
    ) -> None:
        self.config = config
        self.site_bounds = site_bounds
        self.clock = clock
        self.kinds = kinds or {}
        self._scopes: weakref.WeakKeyDictionary[Any, _Scope] = weakref.WeakKeyDictionary()
        # The scope of the last record's transaction: Quix drains one partition's buffer before the
        # next, so most records hit it (holding it keeps one transaction alive a record longer).
        self._last: tuple[Any, _Scope | None] = (None, None)
        self._write_behind = False

    @property
    def write_behind(self) -> bool:
        return self._write_behind

    def enable_write_behind(self) -> None:
        """Store changed entries at :meth:`flush` only. The caller must call ``flush`` before every
        commit of the state transactions (:class:`StateFlush` does, as a Quix sink)."""
        self._write_behind = True

    def flush(self) -> int:
        """Store every entry changed since the last flush through its transaction; returns how many.

        Transactions Quix already prepared or failed are skipped: they belong to an abandoned
        checkpoint whose records will be processed again.
        """
        stored = 0
        for transaction, scope in list(self._scopes.items()):
            unstored, scope.unstored = scope.unstored, {}
            if (
                not unstored
                or getattr(transaction, "prepared", False)
                or getattr(transaction, "failed", False)
            ):
                continue
            entries = scope.entries
            for key, state in unstored.items():
                state.set(STATE_ROBOT, entries[key])
            stored += len(unstored)
        return stored

    def discard(self) -> None:
        """Forget every cached and unstored entry (the checkpoint is abandoned; its records come again)."""
        self._scopes = weakref.WeakKeyDictionary()
        self._last = (None, None)

    def __call__(self, value: Any, key: Any, _timestamp: int, _headers: Any, state: State) -> list[Output]:
        """The Quix callback: the input's kind comes from the topic of the message being processed."""
        return self.apply(self.kinds[message_context().topic], value, key, state)

    def apply(self, kind: str, value: dict[str, Any] | None, key: Any, state: State) -> list[Output]:
        """Apply one input of ``kind`` (``telemetry``, ``registration``, ``timer``) for robot ``key``."""
        if value is not None and kind != TIMER and value["robot_id"] != key:
            raise RejectedRecord(f"record key {key!r} does not match robot_id {value['robot_id']!r}")
        scope = self._scope(state)
        if scope is None:
            entry = state.get(STATE_ROBOT) or {}
        else:
            entry = scope.entries.get(key, _MISSING)
            if entry is _MISSING:
                entry = scope.entries[key] = state.get(STATE_ROBOT) or {}
        registration = entry.get("registration")
        robot = entry.get("runtime")
        if kind == TELEMETRY:
            if value is None:
                return []
            validate_telemetry(
                value,
                registration,
                self.site_bounds(value["tenant_id"], value["site_id"]),
                self.config,
                self.clock(),
            )
            new, out = machine.on_telemetry(robot, value, self.config)
            if new is robot:  # a duplicate or a stale sample: nothing changes, nothing to store
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug(
                        "dropped %s telemetry seq %s (last %s)", machine.classify_order(robot, value, self.config),
                        value["seq"], robot["seq"] if robot else None,
                        extra={"robot_id": value["robot_id"], "tenant_id": value["tenant_id"]},
                    )  # fmt: skip
                return out
        elif kind == REGISTRATION:  # a tombstone (None) forgets the robot
            self._store(
                scope,
                key,
                state,
                {"registration": machine.on_registration(registration, value), "runtime": robot},
            )
            return []
        else:
            if value is None:
                return []
            new, out = machine.on_timer(robot, value, self.config)
            if new is robot:
                return out
        self._store(scope, key, state, {"registration": registration, "runtime": new})
        return out

    def _scope(self, state: State) -> _Scope | None:
        """The scope of ``state``'s store transaction (None: ``state`` has no transaction)."""
        transaction = getattr(state, "_transaction", None)
        last, scope = self._last
        if transaction is last:
            return scope
        if transaction is None:
            return None
        scope = self._scopes.get(transaction)
        if scope is None:
            scope = self._scopes[transaction] = _Scope()
        self._last = (transaction, scope)
        return scope

    def _store(self, scope: _Scope | None, key: Any, state: State, entry: dict[str, Any]) -> None:
        if scope is None:
            state.set(STATE_ROBOT, entry)
            return
        if self._write_behind:
            scope.unstored[key] = state
        else:  # the store first: if it refuses the value, the cache keeps what the store has
            state.set(STATE_ROBOT, entry)
        scope.entries[key] = entry


class StateFlush(BaseSink):
    """The checkpoint hook of a :class:`TelemetryStep`: a sink that receives no record.

    Quix calls ``flush`` of every sink first when it commits a checkpoint, before it produces the state
    changelogs and commits the Kafka transaction; this one stores the step's changed robots then. Write
    behind is enabled only once Quix has started the sink, so a step whose hook is not running writes
    through. ``on_paused`` (another sink refused the checkpoint) drops what the step kept.
    """

    def __init__(self, step: TelemetryStep) -> None:
        super().__init__(on_client_connect_success=_quiet, on_client_connect_failure=_reraise)
        self.step = step

    def setup(self) -> None:
        self.step.enable_write_behind()

    def add(self, *_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("StateFlush receives no records")

    def flush(self) -> None:
        stored = self.step.flush()
        if stored and logger.isEnabledFor(logging.DEBUG):
            logger.debug("stored %d robots' state before the checkpoint commit", stored)

    def on_paused(self) -> None:
        self.step.discard()


def _quiet() -> None:
    return None


def _reraise(exc: Exception | None) -> None:
    if exc is not None:
        raise exc


def _nothing(_value: Any) -> bool:
    return False


def build_telemetry(
    sdf: StreamingDataFrame,
    *,
    registry_sdf: StreamingDataFrame,
    timers_due_sdf: StreamingDataFrame | None = None,
    config: TelemetryConfig,
    site_bounds: BoundsLookup | None = None,
    clock: Callable[[], int] = now_ms,
) -> StreamingDataFrame:
    """Wire the telemetry topology; returns one dataframe of :class:`Output` values (topic + record).

    :param sdf: ``robot.telemetry`` (RobotTelemetry dicts, key robot_id).
    :param registry_sdf: ``robot.registry`` (RobotRegistration dicts, key robot_id).
    :param timers_due_sdf: ``timers.due.telemetry`` (Timer dicts, key robot_id); without it no robot
        ever goes OFFLINE.
    :param config: thresholds and periods.
    :param site_bounds: bounds of a site's latest map, for the pose check (None: no pose check).
    :param clock: wall clock in epoch ms, for the future-timestamp check.
    :returns: the outputs, each to be produced to its catalog topic ``out.topic`` (one of
        ``OUTPUT_TOPICS``) with key :func:`output_key`, e.g. ``sdf.to_topic(lambda out, *_:
        topics[out.topic], key=output_key)`` with serializers that write ``out.value``.
    """
    kinds = {t.name: TELEMETRY for t in sdf.topics} | {t.name: REGISTRATION for t in registry_sdf.topics}
    step = TelemetryStep(config, site_bounds or _no_maps, clock, kinds)
    # The checkpoint hook hangs off the registry input, which is rare, so the branch (Quix copies a
    # record for every extra branch) costs nothing on the telemetry path; no record passes the filter.
    registry_sdf.filter(_nothing).sink(StateFlush(step))
    merged = sdf.concat(registry_sdf)
    if timers_due_sdf is not None:
        kinds |= {t.name: TIMER for t in timers_due_sdf.topics}
        merged = merged.concat(timers_due_sdf)
    return merged.apply(step, stateful=True, metadata=True, expand=True)
