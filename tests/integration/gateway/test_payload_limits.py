"""Size and time limits of task commands and schedules (issue 15, item 6), enforced at the gateway before
anything is produced: an oversized body is a 413, an oversized field a 422 naming it and the limit, a
deadline outside years 1970..9999 a 422 naming it; a command's time is the gateway's own clock.
"""

from __future__ import annotations

import time

import httpx
import pytest

from gateway.models import MAX_TIMESTAMP_MS

pytestmark = pytest.mark.timeout(120)


def _task(payload: object = None, **spec: object) -> dict[str, object]:
    return {"site_id": "s1", "spec": {"category": "delivery", **spec, "payload": payload}}


def test_an_integer_beyond_64_bits_in_the_payload_is_a_422(gateway, auth, new_tenant) -> None:
    body = {"site_id": "s1", "spec": {"category": "delivery", "payload": {"n": -(2**63) - 1}}}
    resp = httpx.post(f"{gateway.url}/v1/tasks", json=body, headers=auth(new_tenant(), "operator"))
    assert resp.status_code == 422, resp.text
    assert any("payload" in d["loc"] for d in resp.json()["detail"])


def test_a_900_kb_spec_is_refused_and_not_produced(gateway, auth, new_tenant, kafka) -> None:
    tenant = new_tenant()
    big = _task({"blob": "x" * 900_000})
    resp = httpx.post(f"{gateway.url}/v1/tasks", json=big, headers=auth(tenant))
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"] == "too_large" and "65536" in resp.json()["message"]
    assert resp.json()["detail"][0]["loc"] == ["body"]
    # The same body without a Content-Length (chunked) is cut off while it is read.
    chunks = (
        bytes(c)
        for c in [
            b'{"site_id": "s1", "spec": {"category": "d", "payload": {"b": "',
            *[b"x" * 8192] * 110,
            b'"}}}',
        ]
    )
    resp = httpx.post(
        f"{gateway.url}/v1/tasks",
        content=chunks,
        headers={**auth(tenant), "content-type": "application/json"},
    )
    assert resp.status_code == 413, resp.text
    # The schedules' template has the same limit.
    schedule = {"site_id": "s1", "cron": "*/5 * * * *", "template": big["spec"]}
    resp = httpx.post(f"{gateway.url}/v1/schedules", json=schedule, headers=auth(tenant))
    assert resp.status_code == 413, resp.text
    ok = httpx.post(f"{gateway.url}/v1/tasks", json=_task({"n": 1}), headers=auth(tenant))
    assert ok.status_code == 202
    produced = kafka.read("task.commands", lambda r: r["tenant_id"] == tenant, want=2, timeout=5)
    assert [c["task_id"] for c in produced] == [ok.json()["task_id"]]


def test_a_payload_over_its_limit_is_a_422_naming_it_and_the_limit(gateway, auth, new_tenant) -> None:
    headers = auth(new_tenant())
    payload = {"blob": "é" * 10_000}  # 20,011 bytes as JSON: under the body limit, over the payload limit
    resp = httpx.post(f"{gateway.url}/v1/tasks", json=_task(payload), headers=headers)
    assert resp.status_code == 422, resp.text
    (problem,) = resp.json()["detail"]
    assert problem["loc"] == ["body", "spec", "payload"] and problem["type"] == "too_large"
    assert "20011 bytes" in problem["msg"] and "16384" in problem["msg"]
    schedule = {"site_id": "s1", "cron": "0 8 * * MON", "template": _task(payload)["spec"]}
    resp = httpx.post(f"{gateway.url}/v1/schedules", json=schedule, headers=headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "template", "payload"]
    fits = {"blob": "x" * 16_000}
    assert httpx.post(f"{gateway.url}/v1/tasks", json=_task(fits), headers=headers).status_code == 202


def test_the_limits_are_settings(gateway_factory, auth, new_tenant) -> None:
    gw = gateway_factory(task_max_payload_bytes=1024, task_max_record_bytes=8192)
    headers = auth(new_tenant())
    resp = httpx.post(f"{gw.url}/v1/tasks", json=_task({"b": "x" * 2000}), headers=headers)
    assert resp.status_code == 422 and "1024" in resp.json()["detail"][0]["msg"], resp.text
    resp = httpx.post(
        f"{gw.url}/v1/tasks", json=_task({"b": "x" * 1000}, labels={"k": "v" * 256}), headers=headers
    )
    assert resp.status_code == 202, resp.text
    resp = httpx.post(
        f"{gw.url}/v1/tasks",
        json=_task(None, labels={f"k{i}": "v" * 256 for i in range(32)}),
        headers=headers,
    )
    assert resp.status_code == 413 and "8192" in resp.json()["message"], resp.text


def test_deadline_beyond_year_9999_is_a_422_naming_it(gateway, auth, new_tenant) -> None:
    headers = auth(new_tenant())
    for deadline in (MAX_TIMESTAMP_MS + 1, 2**53, -1):
        resp = httpx.post(f"{gateway.url}/v1/tasks", json=_task(None, deadline=deadline), headers=headers)
        assert resp.status_code == 422, resp.text
        (problem,) = resp.json()["detail"]
        assert problem["loc"][:3] == ["body", "spec", "deadline"], problem
    in_a_day = int(time.time() * 1000) + 86_400_000
    resp = httpx.post(f"{gateway.url}/v1/tasks", json=_task(None, deadline=in_a_day), headers=headers)
    assert resp.status_code == 202, resp.text


def test_occurred_at_is_the_gateways_clock_and_cannot_be_sent(gateway, auth, new_tenant, kafka) -> None:
    tenant = new_tenant()
    tomorrow = int(time.time() * 1000) + 86_400_000
    resp = httpx.post(
        f"{gateway.url}/v1/tasks", json={**_task(), "occurred_at": tomorrow}, headers=auth(tenant)
    )
    assert resp.status_code == 422, resp.text
    assert resp.json()["detail"][0]["loc"] == ["body", "occurred_at"]
    before = int(time.time() * 1000)
    resp = httpx.post(f"{gateway.url}/v1/tasks", json=_task(), headers=auth(tenant))
    after = int(time.time() * 1000)
    assert resp.status_code == 202
    (command,) = kafka.read("task.commands", lambda r: r["tenant_id"] == tenant)
    assert before <= command["occurred_at"] <= after
