"""Annotations that pin a pydantic field to one Avro type, and the enum base with an Avro default.

A plain ``int`` maps to Avro ``int``, ``float`` to ``double``; use :data:`Long` for 64-bit counters
and :data:`TimestampMs` for epoch-millisecond instants (``long`` + ``timestamp-millis``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, ClassVar

__all__ = ["AvroEnum", "AvroType", "Long", "TimestampMs"]


@dataclass(frozen=True, slots=True)
class AvroType:
    """Metadata marker: the Avro primitive a field is written as, with an optional logical type."""

    type: str
    logical_type: str | None = None

    @property
    def avro(self) -> Any:
        if self.logical_type is None:
            return self.type
        return {"type": self.type, "logicalType": self.logical_type}


Long = Annotated[int, AvroType("long")]
TimestampMs = Annotated[int, AvroType("long", "timestamp-millis")]


class AvroEnum(StrEnum):
    """A string enum written as an Avro enum; subclasses name their reader-side default symbol.

    ``__avro_default__`` is the symbol a reader substitutes for a symbol it does not know, which is
    what lets an enum grow under FULL_TRANSITIVE compatibility.
    """

    __avro_default__: ClassVar[str] = "UNKNOWN"
