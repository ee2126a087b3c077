"""VDA 5050 messages: the vendored official JSON schemas (2.1.0, 3.0.0), validation and timestamps.

Every message a vehicle sends and every order or instant action fleetstream builds is checked against the
official schema of its protocol version before it is used or published (``schemas/vda5050/README.md``
says which files and why 2.0 vehicles use 2.1.0). Validation is offline and fast (``jsonschema_rs``,
draft 2020-12, ``date-time`` formats checked).

Typical use::

    from schemas import vda

    release = vda.schema_release(message["version"])   # "2.1.0" or "3.0.0", or VdaVersionError
    problems = vda.problems("state", message, release)  # [] when valid
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from schemas.errors import FleetError

__all__ = [
    "INBOUND_TOPICS",
    "OUTBOUND_TOPICS",
    "RELEASES",
    "SCHEMA_DIR",
    "VdaValidationError",
    "VdaVersionError",
    "format_timestamp",
    "load_schema",
    "major_of",
    "parse_timestamp",
    "problems",
    "schema_release",
    "topics_of",
    "validate",
]

SCHEMA_DIR = Path(__file__).parent / "vda5050"
#: The vendored schema release used for each major protocol version.
RELEASES = {"2": "2.1.0", "3": "3.0.0"}
#: Topics vehicles publish (fleet control subscribes) and topics fleet control publishes.
INBOUND_TOPICS = ("connection", "state", "factsheet", "visualization")
OUTBOUND_TOPICS = ("order", "instantActions")
_ALL_TOPICS = {
    "2.1.0": (*INBOUND_TOPICS, *OUTBOUND_TOPICS),
    "3.0.0": (*INBOUND_TOPICS, *OUTBOUND_TOPICS, "responses", "zoneSet"),
}
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
# A comma directly before a closing brace or bracket: the only non-JSON in three upstream 3.0.0 files.
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_MAX_PROBLEMS = 5


class VdaVersionError(FleetError):
    """A message's ``version`` is not a protocol version fleetstream speaks (2.x or 3.x)."""


class VdaValidationError(FleetError):
    """A message does not validate against the official schema of its version."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def major_of(version: str) -> str:
    """``"2"`` for ``"2.1.0"``; :class:`VdaVersionError` for anything but ``[Major].[Minor].[Patch]``."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    if match is None:
        raise VdaVersionError(f"version {version!r} is not [Major].[Minor].[Patch]")
    return match.group(1)


def schema_release(version: str) -> str:
    """The vendored schema release a message of protocol ``version`` is validated against."""
    major = major_of(version)
    if major not in RELEASES:
        raise VdaVersionError(
            f"protocol version {version} is not supported (supported: 2.0, 2.1 and 3.0; schemas "
            f"{', '.join(RELEASES.values())})"
        )
    return RELEASES[major]


def topics_of(release: str) -> tuple[str, ...]:
    """The topics that have a schema in ``release``."""
    return _ALL_TOPICS[release]


def _strip_trailing_commas(text: str) -> str:
    out: list[str] = []
    pos = 0
    # only outside strings: split on string literals and clean the parts between them
    for match in re.finditer(r'"(?:\\.|[^"\\])*"', text):
        out.append(_TRAILING_COMMA.sub(r"\1", text[pos : match.start()]))
        out.append(match.group(0))
        pos = match.end()
    out.append(_TRAILING_COMMA.sub(r"\1", text[pos:]))
    return "".join(out)


@cache
def load_schema(release: str, topic: str) -> dict[str, Any]:
    """The official schema of ``topic`` in ``release`` (e.g. ``"2.1.0"``, ``"state"``), parsed."""
    if release not in _ALL_TOPICS or topic not in _ALL_TOPICS[release]:
        raise KeyError(f"no VDA 5050 schema for {topic!r} in {release!r}")
    text = (SCHEMA_DIR / release / f"{topic}.schema.json").read_text(encoding="utf-8")
    try:
        return json.loads(text)  # type: ignore[no-any-return]
    except json.JSONDecodeError:
        return json.loads(_strip_trailing_commas(text))  # type: ignore[no-any-return]


def _errata_3_0_0_factsheet(schema: dict[str, Any]) -> None:
    """3.0.0 factsheet: the schema requires ``typeSpecification.mobileRobotKinematic`` but defines (and the
    specification text names, §7.10) ``mobileRobotKinematics``; and it types ``pauseAllowed`` and
    ``cancelAllowed`` of ``mobileRobotActions`` as strings where the text says boolean."""
    spec = schema["properties"]["typeSpecification"]
    spec["required"] = [r for r in spec["required"] if r != "mobileRobotKinematic"]
    spec["anyOf"] = [{"required": ["mobileRobotKinematic"]}, {"required": ["mobileRobotKinematics"]}]
    action = schema["properties"]["protocolFeatures"]["properties"]["mobileRobotActions"]["items"]
    for name in ("pauseAllowed", "cancelAllowed"):
        action["properties"][name]["type"] = ["boolean", "string"]


#: Where an official schema contradicts its own specification text: a message valid against the schema
#: as published, or against it widened to accept the text's form too, is valid (schemas/vda5050/README.md).
_ERRATA = {("3.0.0", "factsheet"): _errata_3_0_0_factsheet}


@cache
def _validator(release: str, topic: str) -> Any:
    return jsonschema_rs.validator_for(load_schema(release, topic), validate_formats=True)


@cache
def _errata_validator(release: str, topic: str) -> Any:
    fix = _ERRATA.get((release, topic))
    if fix is None:
        return None
    schema = copy.deepcopy(load_schema(release, topic))
    fix(schema)
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def problems(topic: str, message: Any, release: str) -> list[str]:
    """What is wrong with ``message`` as a ``topic`` message of ``release`` (at most 5, empty if valid)."""
    validator = _validator(release, topic)
    if validator.is_valid(message):
        return []
    corrected = _errata_validator(release, topic)
    if corrected is not None and corrected.is_valid(message):
        return []
    out: list[str] = []
    for error in validator.iter_errors(message):
        path = "/".join(str(p) for p in error.instance_path) or "(message)"
        out.append(f"{path}: {error.message}")
        if len(out) >= _MAX_PROBLEMS:
            break
    return out


def validate(topic: str, message: Any, release: str) -> None:
    """Raise :class:`VdaValidationError` naming the first problems when ``message`` is not valid."""
    found = problems(topic, message, release)
    if found:
        raise VdaValidationError(f"{topic} does not validate against VDA 5050 {release}: " + "; ".join(found))


def parse_timestamp(value: Any) -> int:
    """Epoch milliseconds of an ISO 8601 UTC timestamp (``2017-04-15T11:40:03.12Z``); ValueError if not."""
    if not isinstance(value, str):
        raise ValueError(f"timestamp {value!r} is not a string")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no time zone")
    return round(parsed.timestamp() * 1000)


def format_timestamp(ms: int) -> str:
    """``YYYY-MM-DDTHH:mm:ss.fffZ`` (UTC, milliseconds; 3.0's form, valid for 2.x as well)."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
