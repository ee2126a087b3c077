"""One way to run a stateful step in Quix Streams: ``step(state, kind, event, now_ms) -> list[Output]``.

A step is a plain function (or callable object) of:

- ``state``: the :class:`~topologies.kernel.state.KeyState` of the record's key (its owner: a robot, a
  task, a site), whose writes are stored only when the step returns;
- ``kind``: what the input is (``"telemetry"``, ``"registration"``, ``"timer"``...), tagged when the
  topology is wired (:func:`build_step`, :func:`feed`), never guessed from the record's fields;
- ``event``: the decoded record (a typed dict of ``schemas.records``), or None for a tombstone; for an
  input whose headers matter (the MQTT topic a bridge received a message on), what its
  :data:`DecodeWithHeaders` made of the value and the record's Kafka headers;
- ``now_ms``: the record's Kafka timestamp (ms). It stands for "now" in every rule that needs one (a
  timestamp too far in the future, a misfire), so replaying a topic gives the same answers.

It returns the records to produce (:class:`~topologies.kernel.output.Output`). A record that can never be
processed raises :class:`~schemas.errors.RecordError` (the processor dead-letters it); any other exception
is a bug or an infrastructure error and stops the processor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from quixstreams.context import message_context
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.models.types import KafkaHeaders

from schemas.errors import RejectedRecord
from schemas.tracing import current
from topologies.kernel.inbox import Envelope, HomePartition
from topologies.kernel.output import Output
from topologies.kernel.state import KeyState, StateLike

__all__ = [
    "Decode",
    "DecodeWithHeaders",
    "Forward",
    "Route",
    "StateView",
    "Step",
    "StepAdapter",
    "annotate",
    "build_step",
    "feed",
    "feeds",
    "merge",
    "rekey",
    "run_step",
]

#: Source bytes -> the event a step takes (raises RecordError for bytes that are not a record).
Decode = Callable[[bytes], Any]
#: ``(the record's value, its Kafka headers) -> the event a step takes``, for a direct input whose headers
#: are part of the input (raises RecordError for a record that is not one). Headers: (name, bytes) pairs.
DecodeWithHeaders = Callable[[Any, KafkaHeaders], Any]
#: ``(the record's Quix State, key) -> the state the step uses`` (e.g. a write-behind view, pipelines/).
StateView = Callable[[StateLike, str], StateLike]
#: ``(source bytes or None, source key) -> owner key`` of a fed record; None leaves the record out.
Route = Callable[[Any, Any], str | None]
#: ``(source bytes or None, source key, Kafka timestamp) -> [(owner key, payload)]``: what a feed sends to
#: the inbox for one source record (payloads are dicts, or bytes); raises RecordError for a bad record.
Forward = Callable[[Any, Any, int], Iterable[tuple[str, Any]]]


class Step(Protocol):
    def __call__(self, state: KeyState, kind: str, event: Any, now_ms: int) -> list[Output]: ...


def annotate(event: Any) -> None:
    """Let the log lines of the record being processed carry its ids (tenant, robot, task...): for a step
    that decodes its input itself."""
    trace = current()
    if trace is not None and type(event) is dict:
        trace.value = event


def run_step(step: Step, store: StateLike, key: str, kind: str, event: Any, now_ms: int) -> list[Output]:
    """Apply ``step`` to one input with ``store`` (a Quix ``State``): the step's writes are stored when it
    returns and dropped, with the models it used, when it raises."""
    state = KeyState(store, key)
    try:
        out = step(state, kind, event, now_ms)
    except BaseException:
        state.discard()
        raise
    state.commit()
    return out


class StepAdapter:
    """The Quix callback of a stateful step (``apply(..., stateful=True, metadata=True, expand=True)``).

    A record of a direct input gets the kind of its topic (``kinds``: real topic name -> kind); an inbox
    record carries its kind in its :class:`~topologies.kernel.inbox.Envelope`. Source bytes are decoded
    with ``decoders[kind]``; a direct record of a kind in ``header_decoders`` (value as read, bytes or
    None) is made into its event with its headers by ``header_decoders[kind]`` instead. With ``home``, a
    direct record that is not on its key's partition (its producer partitions otherwise than murmur2) is
    not applied here but forwarded to ``inbox``, which puts it on the right one (without its headers: the
    two do not go together).
    """

    def __init__(
        self,
        step: Step,
        *,
        kinds: Mapping[str, str],
        decoders: Mapping[str, Decode] | None = None,
        inbox: str | None = None,
        home: HomePartition | None = None,
        state_view: StateView | None = None,
        header_decoders: Mapping[str, DecodeWithHeaders] | None = None,
    ) -> None:
        if home is not None and inbox is None:
            raise ValueError("forwarding misplaced records needs an inbox")
        if home is not None and header_decoders:
            raise ValueError("header_decoders and home exclude each other: the inbox carries no headers")
        self.step = step
        self._kinds = dict(kinds)
        self._decoders = dict(decoders or {})
        self._header_decoders = dict(header_decoders or {})
        self._inbox = inbox
        self._home = home
        self._view = state_view

    def __call__(self, value: Any, key: Any, timestamp: int, headers: Any, state: StateLike) -> list[Output]:
        with_headers = None
        if type(value) is Envelope:
            kind, payload = value.kind, value.payload
            if kind in self._header_decoders:  # a wiring error: the inbox carries no headers
                raise ValueError(f"a {kind} input came through the inbox: its event needs its Kafka headers")
        else:
            context = message_context()
            kind, payload = self._kinds[context.topic], value
            home = self._home
            if home is not None and key is not None and context.partition != home(key):
                return [Output(self._inbox, key, Envelope(kind, payload))]  # type: ignore[arg-type]
            if self._header_decoders:
                with_headers = self._header_decoders.get(kind)
        if key is None:
            raise RejectedRecord(f"{kind} record without a key")
        if with_headers is not None:
            event = with_headers(payload, headers)
            annotate(event)
        elif type(payload) is bytes:
            decode = self._decoders.get(kind)
            if decode is None:  # the step decodes it itself (and annotates it)
                event = payload
            else:
                event = decode(payload)
                annotate(event)  # log lines of this record name its tenant, robot, task...
        else:
            event = payload
        view = self._view
        return run_step(
            self.step, view(state, key) if view is not None else state, key, kind, event, timestamp
        )


def build_step(
    step: Step,
    *,
    direct: Mapping[str, StreamingDataFrame] | None = None,
    inbox: StreamingDataFrame | None = None,
    inbox_topic: str | None = None,
    decoders: Mapping[str, Decode] | None = None,
    partitions: int | None = None,
    state_view: StateView | None = None,
    header_decoders: Mapping[str, DecodeWithHeaders] | None = None,
) -> StreamingDataFrame:
    """Wire ``step`` over its inputs; returns a dataframe of :class:`Output`.

    :param direct: kind -> dataframe of an input keyed by the owner and co-partitioned with the inbox
        (values: bytes). Several direct inputs are read aligned by timestamp (Quix ``concat``).
    :param inbox: the processor's inbox (values: :class:`Envelope`), fed by :func:`feed` and by the step.
    :param inbox_topic: catalog name of the inbox, for the outputs that go to it.
    :param decoders: kind -> decoder of source bytes.
    :param partitions: the partitions of the direct inputs; when given, a direct record on another
        partition than its key's (murmur2) goes through the inbox first (needs ``inbox_topic``).
    :param state_view: what the step's state goes through (default: the Quix ``State`` itself).
    :param header_decoders: kind -> (value, Kafka headers) -> event, for a direct input whose headers are
        part of the input (instead of ``decoders``; not with ``partitions``: the inbox carries no headers).

    The state store belongs to the dataframe of all these topics (its changelog topic is named after
    them): add a new input through the inbox, never as a new direct input, or the state is orphaned.
    """
    sdfs = [*(direct or {}).values(), *([inbox] if inbox is not None else [])]
    if not sdfs:
        raise ValueError("a step needs at least one input")
    merged = merge(sdfs)
    kinds = {topic.name: kind for kind, sdf in (direct or {}).items() for topic in sdf.topics}
    adapter = StepAdapter(
        step,
        kinds=kinds,
        decoders=decoders,
        inbox=inbox_topic,
        home=HomePartition(partitions) if partitions is not None else None,
        state_view=state_view,
        header_decoders=header_decoders,
    )
    return merged.apply(adapter, stateful=True, metadata=True, expand=True)


def feed(
    sdf: StreamingDataFrame,
    kind: str,
    *,
    inbox: str,
    route: Route | None = None,
    forward: Forward | None = None,
) -> StreamingDataFrame:
    """Send the records of one source to the inbox ``inbox`` (catalog name) tagged as ``kind``; returns
    a dataframe of :class:`Output`.

    By default a record goes unchanged, keyed by ``route(value, key)`` (default: its own key). With
    ``forward``, what goes is what ``forward`` makes of it (e.g. the normalized input, decoded and checked
    here so that a bad record is dead-lettered from its own topic).
    """

    def send(value: Any, key: Any, timestamp: int, _headers: Any) -> list[Output]:
        if forward is not None:
            return [
                Output(inbox, str(owner), Envelope(kind, p)) for owner, p in forward(value, key, timestamp)
            ]
        owner = key if route is None else route(value, key)
        return [] if owner is None else [Output(inbox, str(owner), Envelope(kind, value))]

    return sdf.apply(send, metadata=True, expand=True)


def rekey(decode: Decode, field: str) -> Forward:
    """A feed's ``forward`` that sends each decoded record to the owner its ``field`` names (a site, a
    task); a tombstone, or a record without that field, has no owner and is left out."""

    def forward(value: Any, _key: Any, _timestamp: int) -> list[tuple[str, Any]]:
        record = decode(value) if value is not None else None
        if not record or not record.get(field):
            return []
        annotate(record)  # log lines of this record name its tenant, robot, task...
        return [(str(record[field]), record)]

    return forward


def feeds(
    sources: Mapping[str, StreamingDataFrame], *, inbox: str, forward: Callable[[str], Forward]
) -> list[StreamingDataFrame]:
    """One :func:`feed` per source (kind -> dataframe), each with the ``forward`` of its kind."""
    return [feed(sdf, kind, inbox=inbox, forward=forward(kind)) for kind, sdf in sources.items()]


def merge(sdfs: list[StreamingDataFrame]) -> StreamingDataFrame:
    """One dataframe of several (Quix ``concat``): records of different topics are then read aligned by
    timestamp, partition by partition."""
    merged = sdfs[0]
    for sdf in sdfs[1:]:
        merged = merged.concat(sdf)
    return merged
