"""The one exception root of fleetstream, and the errors that route a record to the dead-letter topic."""

from __future__ import annotations

__all__ = ["FleetError", "RecordError", "RejectedRecord", "SchemaDecodeError"]


class FleetError(Exception):
    """Root of every fleetstream error."""


class RecordError(FleetError):
    """A record that can never succeed: it goes to the dead-letter topic and the partition moves on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RejectedRecord(RecordError):
    """A topology refused a record (unknown robot, battery out of range, ...). Raised before state changes."""


class SchemaDecodeError(RecordError):
    """Bytes that are not a valid record of the expected schema (bad magic byte, unknown id, truncated)."""
