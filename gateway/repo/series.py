"""Telemetry history from InfluxDB (v1 ``/query`` API, InfluxQL with bound parameters).

Raw points live in ``robot_telemetry`` (short retention), one-minute aggregates in
``robot_telemetry_1m`` (long retention), tagged ``tenant``, ``site``, ``robot``, ``fleet`` (see
``sinks/influx.py``). A range that starts before the raw retention is read from
the aggregates. Pages are in time order; the cursor is the start of the next page (epoch ms).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from gateway.errors import Unavailable

__all__ = ["EVERY_PATTERN", "InfluxError", "InfluxReader", "SeriesPage", "every_ms"]

EVERY_PATTERN = r"^(raw|[1-9][0-9]{0,4}(s|m|h|d))$"
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_RAW_FIELDS = ("battery", "speed", "x", "y")


class InfluxError(Exception):
    """InfluxDB refused a query (a bug of ours: InfluxDB down is :class:`gateway.errors.Unavailable`)."""


def every_ms(every: str) -> int | None:
    """Bucket width of ``every`` in ms (``None`` for raw points)."""
    if every == "raw":
        return None
    match = re.fullmatch(r"(\d+)([smhd])", every)
    if not match:
        raise ValueError(f"bad interval {every!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


@dataclass(frozen=True, slots=True)
class SeriesPage:
    """Points in time order, where they were read from, and the cursor of the next page."""

    points: list[dict[str, Any]]
    source: str
    next_cursor: int | None


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class InfluxReader:
    def __init__(
        self,
        url: str,
        database: str,
        *,
        raw_measurement: str = "robot_telemetry",
        raw_rp: str | None = None,
        rollup_measurement: str = "robot_telemetry_1m",
        rollup_rp: str | None = None,
        raw_retention_ms: int = 7 * 86_400_000,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        auth = httpx.BasicAuth(username, password or "") if username else None
        self._http = httpx.AsyncClient(base_url=url.rstrip("/"), timeout=timeout, auth=auth)
        self.database = database
        self._raw = (f"{_ident(raw_rp)}." if raw_rp else "") + _ident(raw_measurement)
        self._rollup = (f"{_ident(rollup_rp)}." if rollup_rp else "") + _ident(rollup_measurement)
        self.raw_retention_ms = raw_retention_ms

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        """GET ``path``; no answer, or a 5xx, is InfluxDB unavailable."""
        try:
            response = await self._http.get(path, params=params)
        except httpx.TransportError as exc:
            raise Unavailable("influxdb", f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise Unavailable("influxdb", f"InfluxDB answered {response.status_code}: {response.text[:200]}")
        return response

    async def ping(self) -> None:
        response = await self._get("/ping")
        if response.status_code >= 300:
            raise InfluxError(f"ping answered {response.status_code}")

    async def _query(self, q: str, params: dict[str, str]) -> list[dict[str, Any]]:
        response = await self._get(
            "/query",
            params={"db": self.database, "epoch": "ms", "q": q, "params": orjson.dumps(params).decode()},
        )
        if response.status_code >= 400:
            raise InfluxError(f"InfluxDB answered {response.status_code}: {response.text[:200]}")
        result = response.json()["results"][0]
        if "error" in result:
            if "database not found" in result["error"]:
                return []
            raise InfluxError(result["error"])
        rows: list[dict[str, Any]] = []
        for series in result.get("series", []):
            columns = series["columns"]
            rows.extend(dict(zip(columns, values, strict=True)) for values in series["values"])
        return rows

    async def history(
        self,
        tenant_id: str,
        robot_id: str,
        *,
        start_ms: int,
        end_ms: int,
        every: str,
        limit: int,
        now_ms: int,
    ) -> SeriesPage:
        """Points of one robot of one tenant in ``[start_ms, end_ms)``, at most ``limit`` of them."""
        width = every_ms(every)
        use_rollup = start_ms < now_ms - self.raw_retention_ms and (width is None or width >= 60_000)
        where = (
            f"tenant = $tenant AND robot = $robot AND time >= {int(start_ms)}ms AND time < {int(end_ms)}ms"
        )
        params = {"tenant": tenant_id, "robot": robot_id}
        if use_rollup:
            bucket = max(width or 60_000, 60_000)
            q = (
                "SELECT mean(battery_avg) AS battery, mean(speed_avg) AS speed, min(battery_min) AS battery_min, "
                "max(battery_max) AS battery_max, sum(count) AS samples "
                f"FROM {self._rollup} WHERE {where} GROUP BY time({bucket}ms) fill(none) LIMIT {limit + 1}"
            )
            source = "rollup"
        elif width is None:
            bucket = None
            q = f"SELECT {', '.join(_RAW_FIELDS)} FROM {self._raw} WHERE {where} ORDER BY time ASC LIMIT {limit + 1}"
            source = "raw"
        else:
            bucket = width
            q = (
                "SELECT mean(battery) AS battery, mean(speed) AS speed, last(x) AS x, last(y) AS y, "
                "min(battery) AS battery_min, max(battery) AS battery_max, count(battery) AS samples "
                f"FROM {self._raw} WHERE {where} GROUP BY time({bucket}ms) fill(none) LIMIT {limit + 1}"
            )
            source = "raw"
        rows = await self._query(q, params)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more and rows:
            next_cursor = int(rows[-1]["time"]) + (bucket if bucket else 1)
        return SeriesPage(points=rows, source=source, next_cursor=next_cursor)
