"""The one exception root of fleetstream, and the errors that route a record to the dead-letter topic."""

from __future__ import annotations

__all__ = [
    "FleetError",
    "IncompatibleSchemaError",
    "RecordError",
    "RegistryError",
    "RejectedRecord",
    "SchemaDecodeError",
    "SchemaEncodeError",
]


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


class SchemaEncodeError(RecordError):
    """A value that does not fit the writer schema (missing field, wrong type, unknown enum symbol)."""


class RegistryError(FleetError):
    """The schema registry failed or refused a request (an infrastructure error: retry, do not DLQ)."""

    def __init__(
        self, message: str, *, status_code: int | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code


class IncompatibleSchemaError(FleetError):
    """A schema change breaks the compatibility rules (the offline gate or the registry refused it)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []
