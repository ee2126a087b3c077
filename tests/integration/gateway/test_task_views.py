"""One task reads the same from GET /v1/tasks/{task_id} and from the list (issue 15, item 10), and tasks
Open-RMF created itself (``external_id`` set) show in both, are not hidden by filters, and the dashboard
shows their Open-RMF id.

The projections are written by the real sinks from TaskEvent records: the Postgres sink into a migrated
schema of this test's own, the Redis sink into the stack's Redis (whose task view has no category,
priority or created_at: the item used to answer those as null).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from gateway.cli import mint_token
from schemas.examples import example
from sinks.postgres import PostgresSink
from sinks.redis import RedisConfig, RedisSink
from tests.integration.conftest import service_port
from tests.integration.gateway.browser import Cdp, Chromium
from tests.integration.gateway.conftest import ts
from tests.integration.gateway.test_dashboard_browser import chromium_installed
from tests.integration.sinks.test_postgres_support import IDENTITY_TOPICS, pg_schema

__all__ = ["chromium_installed", "pg_schema"]  # the fixtures, imported for pytest

pytestmark = pytest.mark.timeout(120)

T0 = 1_767_225_600_000
STATES = ["CREATED", "QUEUED", "ASSIGNED", "EXECUTING"]


def events(tenant: str, task_id: str, n: int, **extra: Any) -> list[dict[str, Any]]:
    """The first ``n`` transitions of a task, as the tasks topology writes them."""
    spec = {**example("TaskEvent")["spec"], **extra.pop("spec", {})}
    out = []
    for i in range(n):
        out.append(
            {
                **example("TaskEvent"),
                "event_id": str(uuid.uuid4()),
                "tenant_id": tenant,
                "site_id": "s1",
                "task_id": task_id,
                "seq": i + 1,
                "state": STATES[i],
                "previous_state": STATES[i - 1] if i else None,
                "robot_id": "r1" if i >= 2 else None,
                "attempt": 1 if i >= 2 else 0,
                "occurred_at": T0 + 1000 * i,
                "spec": spec if i == 0 else None,
                **extra,
            }
        )
    return out


@pytest.fixture
def project(pg_dsn: str, pg_schema: str, redis_url: str):
    """project(to_postgres, to_redis): write TaskEvents with the real Postgres and Redis sinks."""
    pg_sink = PostgresSink(pg_dsn, IDENTITY_TOPICS, schema=pg_schema, migrate_on_start=False)
    pg_sink.setup()
    redis_sink = RedisSink(RedisConfig(url=redis_url))

    def _project(to_postgres: list[dict[str, Any]], to_redis: list[dict[str, Any]]) -> None:
        for offset, rec in enumerate(to_postgres):
            pg_sink.add(rec, rec["task_id"], rec["occurred_at"], [], "task.events", 0, offset)
        pg_sink.flush()
        redis_sink.write_records(to_redis)

    yield _project
    pg_sink.close()
    redis_sink.close()


@pytest.fixture
def gw(gateway_factory, pg_schema: str):
    dsn = (
        f"postgresql://fleet@127.0.0.1:{service_port('postgres')}/fleetstream"
        f"?options=-csearch_path%3D{pg_schema}"
    )
    return gateway_factory(postgres_dsn=dsn)


def _listed(gw, headers: dict[str, str], **params: Any) -> dict[str, dict[str, Any]]:
    resp = httpx.get(f"{gw.url}/v1/tasks", params=params, headers=headers)
    assert resp.status_code == 200, resp.text
    return {t["task_id"]: t for t in resp.json()["items"]}


def test_the_item_and_the_list_entry_of_a_task_agree(gw, project, new_tenant, auth) -> None:
    tenant = new_tenant()
    viewer = auth(tenant, "viewer")
    done = events(tenant, "t-done", 4, spec={"category": "pick", "priority": 9})
    project(done, done)
    item = httpx.get(f"{gw.url}/v1/tasks/t-done", headers=viewer)
    assert item.status_code == 200, item.text
    entry = _listed(gw, viewer)["t-done"]
    assert item.json() == entry
    assert entry["category"] == "pick" and entry["priority"] == 9 and entry["created_at"] == T0
    assert (
        entry["state"] == "EXECUTING" and entry["updated_at"] == T0 + 3000 and entry["source"] == "postgres"
    )

    # The Postgres sink lags behind the Redis one: the item has the newer state, and still every field.
    lagging = events(tenant, "t-lag", 3, spec={"category": "delivery", "priority": 4})
    project(lagging[:2], lagging)
    item = httpx.get(f"{gw.url}/v1/tasks/t-lag", headers=viewer).json()
    entry = _listed(gw, viewer)["t-lag"]
    assert item["state"] == "ASSIGNED" and item["robot_id"] == "r1" and item["seq"] == 3
    assert item["source"] == "redis" and entry["state"] == "QUEUED"
    for field in ("task_id", "site_id", "category", "priority", "created_at", "external_id"):
        assert item[field] == entry[field], field
    assert item["category"] == "delivery" and item["priority"] == 4 and item["created_at"] == T0


def test_tasks_created_by_open_rmf_show_their_external_id_and_pass_the_filters(
    gw, project, new_tenant, auth
) -> None:
    tenant = new_tenant()
    viewer = auth(tenant, "viewer")
    ours = events(tenant, "t-ours", 2)
    rmf = events(tenant, "patrol.dispatch-7", 4, external_id="patrol.dispatch-7", spec={"category": "patrol"})
    project(ours + rmf, ours + rmf)
    item = httpx.get(f"{gw.url}/v1/tasks/patrol.dispatch-7", headers=viewer)
    assert item.status_code == 200, item.text
    assert item.json()["external_id"] == "patrol.dispatch-7"
    assert _listed(gw, viewer)["patrol.dispatch-7"] == item.json()
    assert _listed(gw, viewer)["t-ours"]["external_id"] is None
    for params in (
        {"site_id": "s1"},
        {"state": "EXECUTING"},
        {"robot_id": "r1"},
        {"category": "patrol"},
        {"external_id": "patrol.dispatch-7"},
    ):
        assert "patrol.dispatch-7" in _listed(gw, viewer, **params), params
    assert list(_listed(gw, viewer, external_id="patrol.dispatch-7")) == ["patrol.dispatch-7"]


TASK_ROWS_JS = """[...document.querySelectorAll('#tasks tbody tr')].map((tr) => ({
  id: tr.dataset.id, ext: tr.querySelector('.ext')?.textContent ?? null, text: tr.textContent }))"""


async def _task_rows(chromium: Chromium, url: str, want: int) -> list[dict[str, Any]]:
    async with Cdp.connect(chromium.page_ws_url()) as cdp:
        await cdp.send("Runtime.enable")
        await cdp.send("Page.enable")
        await cdp.send("Page.navigate", url=url)
        rows: list[dict[str, Any]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(rows) < want:
            await asyncio.sleep(0.5)
            rows = await cdp.evaluate(TASK_ROWS_JS) or []
        return rows


def test_the_dashboard_shows_the_open_rmf_id_of_a_task(gateway, pg, new_tenant, chromium_installed) -> None:
    tenant = new_tenant()
    now = int(time.time() * 1000)
    for task_id, external_id in (("t-ours", None), ("patrol.dispatch-9", "patrol.dispatch-9")):
        pg.insert(
            "tasks",
            {"tenant_id": tenant, "task_id": task_id, "site_id": "s1", "state": "EXECUTING", "attempt": 1,
             "seq": 3, "external_id": external_id, "created_at": ts(now - 5000), "updated_at": ts(now)},
        )  # fmt: skip
    token = mint_token(gateway.settings, tenant=tenant, roles=["viewer"])
    chromium = Chromium()
    try:
        rows = asyncio.run(_task_rows(chromium, f"{gateway.url}/?site=s1&token={token}", want=2))
    finally:
        chromium.close()
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"t-ours", "patrol.dispatch-9"}, rows
    assert by_id["patrol.dispatch-9"]["ext"] == "patrol.dispatch-9"
    assert by_id["t-ours"]["ext"] is None
