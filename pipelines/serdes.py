"""The serializers every processor's topics share: traced outputs, topology outputs, captured raw bytes.

- :class:`TracingSerializer` wraps a topic's value serializer: every record produced carries
  ``traceparent`` (the current trace's span, or a new trace's) and is counted in
  ``fleet_records_out_total``.
- :class:`OutputSerializer` writes the value of a topology :class:`~topologies.kernel.Output`: a record
  dict through the topic's encoder, ``bytes`` as they are (an input forwarded unchanged), an inbox
  :class:`~topologies.kernel.Envelope` in its wire format, None as a tombstone.
- :class:`CapturingDeserializer` remembers the raw bytes of the message it decodes, so a record a sink
  fails on can be dead-lettered with its original bytes (topologies read bytes and decode in their step).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from quixstreams.models import Deserializer, SerializationContext, Serializer

from pipelines.metrics import RECORDS_OUT
from schemas.tracing import TRACEPARENT, Trace, current
from topologies.kernel import Envelope, decode_envelope, encode_envelope

__all__ = [
    "RAW",
    "CapturingDeserializer",
    "InboxDeserializer",
    "OutputSerializer",
    "TracingSerializer",
]

logger = logging.getLogger(__name__)


class _RawCapture:
    """The raw bytes of the message being processed, so a processing error can dead-letter the original."""

    value: bytes | None = None
    topic: str | None = None


RAW = _RawCapture()


class CapturingDeserializer(Deserializer):
    """Wraps a value deserializer and remembers the raw bytes of the message it decodes."""

    def __init__(self, inner: Deserializer) -> None:
        super().__init__()
        self._inner = inner

    @property
    def split_values(self) -> bool:
        return self._inner.split_values

    def __call__(self, value: bytes, ctx: SerializationContext) -> Any:
        RAW.value = value
        RAW.topic = ctx.topic
        return self._inner(value, ctx)


class TracingSerializer(Serializer):
    """Wraps a value serializer: every record it serializes carries ``traceparent`` (the current trace's
    span, or a new trace's) and is counted in ``fleet_records_out_total``."""

    def __init__(self, inner: Serializer, processor: str, topic: str) -> None:
        super().__init__()
        self._inner = inner
        self._topic = topic
        self._out = RECORDS_OUT.labels(processor, topic)

    @property
    def inner(self) -> Serializer:
        return self._inner

    @property
    def extra_headers(self) -> dict[str, Any]:
        # Quix reads this once per record it serializes, just before serializing the value.
        self._out.value += 1
        trace = current()
        header = trace.header if trace is not None else Trace().header
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("producing a record to %s", self._topic, extra={"output_topic": self._topic})
        extra = self._inner.extra_headers
        return {**extra, TRACEPARENT: header} if extra else {TRACEPARENT: header}

    def __call__(self, value: Any, ctx: SerializationContext) -> str | bytes:
        return self._inner(value, ctx)


class OutputSerializer(Serializer):
    """Serializes the value of a topology ``Output`` (see the module docstring); ``encode`` writes a
    record dict of the target topic (None: the topic takes only bytes and envelopes)."""

    def __init__(self, encode: Callable[[Any], bytes] | None) -> None:
        super().__init__()
        self._encode = encode

    def __call__(self, out: Any, ctx: SerializationContext) -> Any:
        value = out.value
        if value is None:
            return None  # the producer writes a tombstone
        kind = type(value)
        if kind is bytes:
            return value
        if kind is Envelope:
            return encode_envelope(value)
        if self._encode is None:
            raise TypeError(f"{ctx.topic} takes bytes or inbox envelopes, not {kind.__name__}")
        return self._encode(value)


class InboxDeserializer(Deserializer):
    """An inbox record's bytes -> its :class:`~topologies.kernel.Envelope` (a RecordError if they are
    not one: the processor dead-letters it)."""

    def __call__(self, value: bytes, ctx: SerializationContext) -> Envelope:
        return decode_envelope(value)
