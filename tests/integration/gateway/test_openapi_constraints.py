"""What the OpenAPI document publishes is what the server enforces (issue 15, item 11): every cursor of the
published form is a position in the list, any other is a 422 naming it; a telemetry range longer than 366
days is paged (a page covers at most 366 days and says where to go on), not refused.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest

from gateway.pagination import encode_cursor
from tests.integration.gateway.conftest import ts

pytestmark = pytest.mark.timeout(120)

LISTS = ("/v1/tasks", "/v1/robots", "/v1/sites", "/v1/decisions", "/v1/conflicts", "/v1/alerts")
DAY = 86_400_000


def test_the_schema_publishes_the_cursor_form_the_lists_accept(gateway, auth, new_tenant) -> None:
    spec = httpx.get(f"{gateway.url}/openapi.json").json()
    viewer = auth(new_tenant(), "viewer")
    for path in LISTS:
        (param,) = [p for p in spec["paths"][path]["get"]["parameters"] if p["name"] == "cursor"]
        pattern = param["schema"]["anyOf"][0]["pattern"]
        for cursor in ("0.", "17672256000000000." + "ab" * 3, "999999999999999999." + "00ff" * 64):
            assert re.fullmatch(pattern, cursor)
            resp = httpx.get(f"{gateway.url}{path}", params={"cursor": cursor}, headers=viewer)
            assert resp.status_code == 200, f"{path} {cursor}: {resp.text}"
        for cursor in ("garbage!", "12.abc", "12.AB", "WzEsIjIiXQ"):
            assert not re.fullmatch(pattern, cursor)
            resp = httpx.get(f"{gateway.url}{path}", params={"cursor": cursor}, headers=viewer)
            assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["query", "cursor"], (
                resp.text
            )


def test_a_cursor_pages_on_after_the_row_it_names(gateway, auth, new_tenant, pg) -> None:
    tenant = new_tenant()
    base = int(time.time() * 1000)
    for i in range(3):
        pg.insert(
            "alerts",
            {
                "tenant_id": tenant,
                "alert_id": f"a{i}",
                "kind": "BATTERY_LOW",
                "occurred_at": ts(base - i * 1000),
            },
        )
    viewer = auth(tenant, "viewer")
    first = httpx.get(f"{gateway.url}/v1/alerts", params={"limit": 1}, headers=viewer).json()
    assert [a["alert_id"] for a in first["items"]] == ["a0"]
    assert first["next_cursor"] == encode_cursor(base * 1000, "a0")
    rest = httpx.get(
        f"{gateway.url}/v1/alerts", params={"cursor": first["next_cursor"]}, headers=viewer
    ).json()
    assert [a["alert_id"] for a in rest["items"]] == ["a1", "a2"] and rest["next_cursor"] is None


def test_a_telemetry_range_over_366_days_is_paged_in_windows(gateway, auth, new_tenant, influx_write) -> None:
    tenant = new_tenant()
    start = (int(time.time() * 1000) // DAY + 1) * DAY  # tomorrow, 00:00 UTC: points ahead of any retention
    samples = [start + 10 * DAY, start + 400 * DAY, start + 800 * DAY]
    influx_write(
        [
            {"tenant_id": tenant, "site_id": "s1", "robot_id": "r1", "fleet_id": "f1", "seq": i,
             "occurred_at": at, "battery": 0.5, "speed": 0.0, "pose": {"x": float(i), "y": 0.0}}
            for i, at in enumerate(samples)
        ]
    )  # fmt: skip
    viewer = auth(tenant, "viewer")
    url = f"{gateway.url}/v1/robots/r1/telemetry"
    pages, cursor = [], None
    for _ in range(10):
        params = {
            "from": start,
            "to": start + 900 * DAY,
            "every": "1d",
            **({"cursor": cursor} if cursor else {}),
        }
        resp = httpx.get(url, params=params, headers=viewer)
        assert resp.status_code == 200, resp.text
        pages.append([p["time"] for p in resp.json()["points"]])
        cursor = resp.json()["next_cursor"]
        if cursor is None:
            break
        assert int(cursor) <= start + 366 * DAY * len(pages) and int(cursor) % DAY == 0
    assert pages == [[samples[0]], [samples[1]], [samples[2]]]
    raw = httpx.get(
        url, params={"from": start, "to": start + 900 * DAY, "every": "raw"}, headers=viewer
    ).json()
    assert [p["time"] for p in raw["points"]] == [samples[0]] and raw["next_cursor"] == str(start + 366 * DAY)
