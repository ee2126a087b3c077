"""A task payload JSON cannot carry portably (an integer beyond 64 bits) is a 422 naming it, not a 500."""

from __future__ import annotations

import httpx


def test_an_integer_beyond_64_bits_in_the_payload_is_a_422(gateway, auth, new_tenant) -> None:
    body = {"site_id": "s1", "spec": {"category": "delivery", "payload": {"n": -(2**63) - 1}}}
    resp = httpx.post(f"{gateway.url}/v1/tasks", json=body, headers=auth(new_tenant(), "operator"))
    assert resp.status_code == 422, resp.text
    assert any("payload" in d["loc"] for d in resp.json()["detail"])
