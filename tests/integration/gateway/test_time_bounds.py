"""Time bounds past what the stores can represent are a 422 naming the parameter, not a 500 from InfluxDB."""

from __future__ import annotations

import httpx


def test_a_bound_past_influxdbs_range_is_a_422(gateway, auth, new_tenant) -> None:
    viewer = auth(new_tenant(), "viewer")
    url = f"{gateway.url}/v1/robots/r1/telemetry"
    resp = httpx.get(url, params={"to": 9_223_372_036_855}, headers=viewer)
    assert resp.status_code == 422, resp.text
    assert any(d["loc"][-1] == "to" for d in resp.json()["detail"])


def test_the_last_representable_instant_is_accepted(gateway, auth, new_tenant) -> None:
    viewer = auth(new_tenant(), "viewer")
    url = f"{gateway.url}/v1/robots/r1/telemetry"
    resp = httpx.get(url, params={"from": 9_223_372_036_000, "to": 9_223_372_036_854}, headers=viewer)
    assert resp.status_code == 200, resp.text
    assert resp.json()["points"] == []
