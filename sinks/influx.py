"""InfluxDB sink: robot telemetry and its 1-minute aggregates as line protocol, one POST per flush.

Measurements (tags ``tenant``, ``site``, ``robot``, ``fleet`` only, so cardinality stays bounded):

- ``robot_telemetry`` from RobotTelemetry, in the raw retention policy (7 d): battery, speed, x, y, yaw,
  seq; the timestamp is the sample's ``occurred_at``.
- ``robot_telemetry_1m`` from TelemetryAggregate, in the aggregate retention policy (90 d): count,
  battery_min/max/avg, speed_avg/max, distance_m; the timestamp is ``occurred_at`` (= window start).

Idempotent by construction: InfluxDB keeps one point per measurement + tag set + timestamp, so a replayed
batch overwrites itself. Writes go through the v1 ``/write`` API (InfluxDB 1.x, 2.x via DBRP, 3.x) or,
selected by ``api="v2"``, through influxdb-client's ``/api/v2/write`` with the ``db/rp`` bucket form.

Failures follow ``sinks.deadletters``:

- an unreachable, timing-out, 5xx or 429 server raises ``SinkBackpressureError`` (the app pauses and
  retries the same records), and so does a database the server lost (it is created again first);
- a record that cannot be a point (a time outside what InfluxDB stores, years 1677..2262; no numeric
  field) and a 400 / 413 / 422 answer (a point the server refuses: a field type conflict, a limit) are
  data: the refused points are isolated by halving the request and dead-lettered, the rest is written;
- a replay older than a retention policy is not an error: the server drops those points, writes the
  rest and says so (1.6: "points beyond retention policy", 1.8+: "points outside retention policy");
  both writers log it and go on;
- any other answer (401 / 403: credentials) is :class:`InfluxWriteError` and stops the processor.

Both paths are tested against real servers: v1 on InfluxDB 1.6 and 1.12, v2 on 1.12
(``deploy/local/stack.sh up influxdb2``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import httpx
from quixstreams.sinks import SinkBackpressureError

from schemas.errors import FleetError
from sinks.batching import FlushAllSink, Origins
from sinks.deadletters import DeadLetter, RecordRefused, refuse_always, write_isolating

__all__ = [
    "AGGREGATE_MEASUREMENT",
    "RAW_MEASUREMENT",
    "InfluxConfig",
    "InfluxSink",
    "InfluxV1Writer",
    "InfluxV2Writer",
    "InfluxWriteError",
    "LineWriter",
    "aggregate_line",
    "escape_tag",
    "point",
    "telemetry_line",
    "to_lines",
]

logger = logging.getLogger(__name__)

RAW_MEASUREMENT = "robot_telemetry"
AGGREGATE_MEASUREMENT = "robot_telemetry_1m"
#: InfluxDB stores nanoseconds in an int64: times from 1677-09-21 to 2262-04-11, in epoch ms.
MIN_TIME_MS = -9_223_372_036_854
MAX_TIME_MS = 9_223_372_036_854


class InfluxWriteError(FleetError):
    """InfluxDB refused a write or a schema statement for a reason retrying cannot fix (4xx, auth)."""


@dataclass(frozen=True, slots=True)
class InfluxConfig:
    """Where and how to write. Durations are InfluxQL literals (``7d``, ``90d``, ``INF``)."""

    url: str = "http://127.0.0.1:8086"
    database: str = "fleetstream"
    raw_rp: str = "telemetry_7d"
    raw_duration: str = "7d"
    aggregate_rp: str = "telemetry_1m_90d"
    aggregate_duration: str = "90d"
    username: str | None = None
    password: str | None = None
    token: str | None = None
    api: Literal["v1", "v2"] = "v1"
    timeout_s: float = 10.0
    max_points_per_request: int = 5000
    retry_after_s: float = 5.0
    create_schema: bool = True


# ------------------------------------------------------------------------------------ line protocol

_TAG_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": "", "\\": "\\\\"})


def escape_tag(value: str) -> str:
    """A tag key or value escaped for line protocol."""
    return value.translate(_TAG_ESCAPES)


_TAG_CACHE: dict[tuple[Any, Any, Any, Any], str] = {}
_TAG_CACHE_MAX = 100_000


def _tags(record: Mapping[str, Any]) -> str:
    """``,fleet=..,robot=..,site=..,tenant=..`` (sorted by key; empty values left out), cached per robot."""
    ids = (record.get("fleet_id"), record.get("robot_id"), record.get("site_id"), record.get("tenant_id"))
    tags = _TAG_CACHE.get(ids)
    if tags is None:
        tags = "".join(
            f",{tag}={escape_tag(str(value))}"
            for tag, value in zip(("fleet", "robot", "site", "tenant"), ids, strict=True)
            if value  # an empty tag value is not allowed: leave the tag out
        )
        if len(_TAG_CACHE) >= _TAG_CACHE_MAX:
            _TAG_CACHE.clear()
        _TAG_CACHE[ids] = tags
    return tags


def _fields(pairs: Iterable[tuple[str, Any]]) -> str:
    """The general (slow) path: ints as ``i``, finite floats only."""
    out = []
    for name, value in pairs:
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            out.append(f"{name}={value}i")
        elif math.isfinite(value):
            out.append(f"{name}={float(value)!r}")
    return ",".join(out)


def _finite(*values: float) -> bool:
    # x - x is 0.0 for every finite float and NaN for NaN and the infinities.
    return sum(v - v for v in values) == 0.0


def _time(record: Mapping[str, Any]) -> int:
    at = int(record["occurred_at"])
    if not MIN_TIME_MS <= at <= MAX_TIME_MS:
        raise ValueError(f"occurred_at = {at} is outside the times InfluxDB stores (years 1677..2262)")
    return at


def telemetry_line(record: Mapping[str, Any]) -> str | None:
    """The ``robot_telemetry`` point of a RobotTelemetry dict (ValueError if InfluxDB cannot hold it)."""
    pose = record.get("pose") or {}
    battery = float(record["battery"])
    speed = float(record.get("speed") or 0.0)
    x = float(pose.get("x", math.nan))
    y = float(pose.get("y", math.nan))
    yaw = float(pose.get("yaw") or 0.0)
    seq = int(record["seq"])
    if _finite(battery, speed, x, y, yaw):  # the fast path
        fields = f"battery={battery!r},speed={speed!r},x={x!r},y={y!r},yaw={yaw!r},seq={seq}i"
    else:
        fields = _fields(
            (("battery", battery), ("speed", speed), ("x", x), ("y", y), ("yaw", yaw), ("seq", seq))
        )
    return f"{RAW_MEASUREMENT}{_tags(record)} {fields} {_time(record)}"


def aggregate_line(record: Mapping[str, Any]) -> str | None:
    """The ``robot_telemetry_1m`` point of a TelemetryAggregate dict."""
    fields = _fields(
        [("count", int(record["count"]))]
        + [
            (name, float(record[name]))
            for name in ("battery_min", "battery_max", "battery_avg", "speed_avg", "speed_max", "distance_m")
        ]
    )
    return f"{AGGREGATE_MEASUREMENT}{_tags(record)} {fields} {_time(record)}" if fields else None


def point(record: Mapping[str, Any], config: InfluxConfig) -> tuple[str, str]:
    """``(retention policy, line)`` of one record (an aggregate if it has ``window_start``).

    :raises RecordRefused: the record cannot be a point (malformed, a time InfluxDB cannot store, no
        finite field).
    """
    try:
        if "window_start" in record:
            line, rp = aggregate_line(record), config.aggregate_rp
        else:
            line, rp = telemetry_line(record), config.raw_rp
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RecordRefused(f"not an InfluxDB point: {type(exc).__name__}: {exc}") from exc
    if line is None:
        raise RecordRefused("not an InfluxDB point: no finite numeric field")
    return rp, line


def to_lines(records: Iterable[Mapping[str, Any]], config: InfluxConfig) -> dict[str, list[str]]:
    """Lines per retention policy (records that cannot be points raise :class:`RecordRefused`)."""
    out: dict[str, list[str]] = {}
    for record in records:
        if record is not None:
            rp, line = point(record, config)
            out.setdefault(rp, []).append(line)
    return out


# ------------------------------------------------------------------------------------------ writers


class LineWriter(Protocol):
    """Writes line-protocol points (precision ms) into one retention policy of the configured database."""

    def setup(self) -> None: ...

    def write(self, rp: str, lines: list[str]) -> None: ...

    def close(self) -> None: ...


def _dropped_for_retention(status: int | None, body: str) -> bool:
    """Whether an answer says "some points were older than the retention policy" (the rest was written)."""
    return status == 400 and ("beyond retention policy" in body or "outside retention policy" in body)


#: Answers that refuse the points themselves (a type conflict, an unparsable time, a size or series limit).
_REFUSED = (400, 413, 422)


def _refused(rp: str, status: int | None, body: str) -> FleetError:
    """The error of a 4xx answer to a write: :class:`RecordRefused` when it refuses the data."""
    if status in _REFUSED:
        return RecordRefused(f"InfluxDB refused the point for {rp} (HTTP {status}): {body[:500]}")
    return InfluxWriteError(f"InfluxDB refused a write to {rp} (HTTP {status}): {body[:500]}")


def _backpressure(config: InfluxConfig, what: str) -> SinkBackpressureError:
    logger.warning("InfluxDB unavailable (%s); pausing for %.1f s", what, config.retry_after_s)
    return SinkBackpressureError(retry_after=config.retry_after_s)


class InfluxV1Writer:
    """The v1 ``/write`` and ``/query`` HTTP API (1.x, 2.x with DBRP mappings, 3.x Core)."""

    def __init__(self, config: InfluxConfig) -> None:
        self.config = config
        headers = {"Authorization": f"Token {config.token}"} if config.token else {}
        auth = httpx.BasicAuth(config.username, config.password or "") if config.username else None
        self._http = httpx.Client(base_url=config.url, timeout=config.timeout_s, headers=headers, auth=auth)

    def _request(self, path: str, params: dict[str, str], content: bytes | None = None) -> httpx.Response:
        try:
            response = self._http.post(path, params=params, content=content)
        except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
            raise _backpressure(self.config, f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise _backpressure(self.config, f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    def query(self, statement: str) -> dict[str, Any]:
        """Run one InfluxQL statement; raises on an error answer."""
        response = self._request("/query", {"q": statement})
        body = response.json() if response.content else {}
        errors = [r["error"] for r in body.get("results", []) if "error" in r]
        if response.status_code >= 400 or errors or "error" in body:
            raise InfluxWriteError(
                f"InfluxQL {statement!r} failed: {body.get('error') or errors or response.text}"
            )
        return body

    def setup(self) -> None:
        """Create the database and both retention policies (idempotent; durations are corrected)."""
        cfg = self.config
        db = cfg.database.replace('"', "")
        self.query(f'CREATE DATABASE "{db}"')
        for rp, duration in ((cfg.raw_rp, cfg.raw_duration), (cfg.aggregate_rp, cfg.aggregate_duration)):
            rp = rp.replace('"', "")
            try:
                self.query(f'CREATE RETENTION POLICY "{rp}" ON "{db}" DURATION {duration} REPLICATION 1')
            except InfluxWriteError as exc:
                if "already exists" not in str(exc):
                    raise
                self.query(f'ALTER RETENTION POLICY "{rp}" ON "{db}" DURATION {duration}')

    def write(self, rp: str, lines: list[str]) -> None:
        params = {"db": self.config.database, "rp": rp, "precision": "ms"}
        if self.config.username and not self.config.token:
            params.update(u=self.config.username, p=self.config.password or "")
        response = self._request("/write", params, "\n".join(lines).encode())
        if _dropped_for_retention(response.status_code, response.text):
            # A replay older than the policy: those points would already have expired. The rest is written.
            logger.warning(
                "InfluxDB dropped points older than retention policy %s: %s", rp, response.text[:200]
            )
            return
        if response.status_code >= 400:
            raise _refused(rp, response.status_code, response.text)

    def close(self) -> None:
        self._http.close()


class InfluxV2Writer:
    """``/api/v2/write`` through influxdb-client, bucket ``"db/rp"`` (DBRP form; 1.8+, 2.x, 3.x).

    Schema statements are not part of the v2 API. ``setup`` creates the database and retention policies
    through the v1 ``/query`` API where the server offers it (1.8+); where it refuses them (2.x, 3.x),
    the buckets / DBRP mappings must exist, and ``setup`` logs which it expects.
    """

    def __init__(self, config: InfluxConfig) -> None:
        from influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.config = config
        token = config.token or (f"{config.username}:{config.password or ''}" if config.username else "")
        self._client = InfluxDBClient(
            url=config.url, token=token, org="-", timeout=int(config.timeout_s * 1000), retries=0
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def setup(self) -> None:
        schema = InfluxV1Writer(self.config)
        try:
            schema.setup()
        except InfluxWriteError as exc:  # no InfluxQL schema statements here (2.x, 3.x)
            logger.info(
                "InfluxDB v2 API: no database created (%s); expecting buckets %s/%s and %s/%s to exist",
                exc,
                self.config.database,
                self.config.raw_rp,
                self.config.database,
                self.config.aggregate_rp,
            )
        finally:
            schema.close()

    def write(self, rp: str, lines: list[str]) -> None:
        from influxdb_client.client.write_api import WritePrecision
        from influxdb_client.rest import ApiException
        from urllib3.exceptions import HTTPError

        try:
            self._api.write(
                bucket=f"{self.config.database}/{rp}",
                record=lines,
                write_precision=cast(Any, WritePrecision.MS),
            )
        except ApiException as exc:
            if exc.status is None or exc.status >= 500 or exc.status == 429:
                raise _backpressure(self.config, f"HTTP {exc.status}: {exc.reason}") from exc
            if _dropped_for_retention(exc.status, str(exc.body)):
                logger.warning(
                    "InfluxDB dropped points older than retention policy %s: %s", rp, str(exc.body)[:200]
                )
                return
            raise _refused(rp, exc.status, str(exc.body)) from exc
        except (HTTPError, OSError) as exc:
            raise _backpressure(self.config, f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._client.close()


# --------------------------------------------------------------------------------------------- sink


class InfluxSink(FlushAllSink):
    """Quix sink for ``robot.telemetry.accepted`` and ``robot.telemetry.1m``: one POST per retention policy
    per flush of all partitions' batches (chunked at ``max_points_per_request``). Never commits; the
    application does after flush."""

    def __init__(
        self,
        config: InfluxConfig,
        writer: LineWriter | None = None,
        on_flush: Callable[[int, float], None] | None = None,
        on_backpressure: Callable[[BaseException], None] | None = None,
        dead_letter: DeadLetter = refuse_always,
    ) -> None:
        """:param on_flush: called with (points written, seconds) after every successful write (metrics).
        :param on_backpressure: called with the error when a flush fails and will be retried (metrics).
        :param dead_letter: where a record InfluxDB cannot take goes (``dlq.sink-influx``)."""
        super().__init__(on_flush, on_backpressure, dead_letter)
        self.config = config
        self.writer: LineWriter = writer or (
            InfluxV2Writer(config) if config.api == "v2" else InfluxV1Writer(config)
        )
        self._ready = False
        self.points_written = 0

    def setup(self) -> None:
        try:
            self._ensure_schema()
        except SinkBackpressureError:
            logger.warning("InfluxDB not reachable at start-up; the schema is created on the first write")

    def _ensure_schema(self) -> None:
        if not self._ready:
            if self.config.create_schema:
                self.writer.setup()
            self._ready = True

    def write_all(self, values: Sequence[Mapping[str, Any] | None], origin: Origins) -> int:
        """Write RobotTelemetry / TelemetryAggregate dicts now; returns the number of points written."""
        started = time.perf_counter()
        self._ensure_schema()
        lines: dict[str, list[str]] = {}
        owners: dict[str, list[int]] = {}  # per retention policy: index in ``values`` of each line
        config = self.config
        for i, record in enumerate(values):
            if record is None:
                continue
            try:
                rp, line = point(record, config)
            except RecordRefused as exc:
                self.refuse(origin(i), exc)
                continue
            lines.setdefault(rp, []).append(line)
            owners.setdefault(rp, []).append(i)
        written = 0
        step = config.max_points_per_request
        for rp, rp_lines in lines.items():
            rp_owners = owners[rp]

            def send(span: Sequence[int], rp: str = rp, rp_lines: list[str] = rp_lines) -> None:
                assert isinstance(span, range)
                self._send(rp, rp_lines[span.start : span.stop])

            def refuse(at: int, exc: RecordRefused, rp_owners: list[int] = rp_owners) -> None:
                self.refuse(origin(rp_owners[at]), exc)

            for start in range(0, len(rp_lines), step):
                chunk = range(start, min(start + step, len(rp_lines)))
                written += len(chunk) - write_isolating(chunk, send, refuse)
        self.points_written += written
        elapsed = time.perf_counter() - started
        if self._on_flush:
            self._on_flush(written, elapsed)
        logger.debug("wrote %d points in %.3f s", written, elapsed)
        return written

    def _send(self, rp: str, lines: list[str]) -> None:
        try:
            self.writer.write(rp, lines)
        except InfluxWriteError as exc:
            if "database not found" in str(exc):  # the server lost its data: recreate, then retry
                self._ready = False
                raise _backpressure(self.config, "database not found") from exc
            raise

    def close(self) -> None:
        self.writer.close()
