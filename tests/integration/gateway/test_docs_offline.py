"""/docs and /redoc on a closed network (issue 15, item 9): every asset the pages load comes from the
gateway itself (the ``fastapi-offline`` package's copies of Swagger UI and ReDoc), and in a real browser
(headless Chromium, which reaches nothing else on this machine either) both pages render the API.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.integration.gateway.browser import Cdp, Chromium
from tests.integration.gateway.test_dashboard_browser import chromium_installed

__all__ = ["chromium_installed"]  # the fixture, imported for pytest

pytestmark = pytest.mark.timeout(300)

_URL = re.compile(
    r"""(?:src|href|spec-url)=["']([^"']+)["']|url:\s*["']([^"']+)["']|(https?://[^\s"'<>)]+)"""
)


def _references(page: str) -> list[str]:
    return [next(g for g in m.groups() if g) for m in _URL.finditer(page)]


@pytest.mark.parametrize(("path", "assets"), [("/docs", 3), ("/redoc", 2)])
def test_the_page_and_every_asset_it_names_come_from_the_gateway(gateway, path: str, assets: int) -> None:
    page = httpx.get(f"{gateway.url}{path}")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    refs = _references(page.text)
    foreign = [r for r in refs if urlsplit(r).netloc]
    assert foreign == [], f"{path} names other hosts: {foreign}"
    loaded = []
    for ref in refs:
        if ref.startswith(("data:", "#")):
            continue
        resp = httpx.get(urljoin(f"{gateway.url}{path}", ref))
        assert resp.status_code == 200, f"{ref}: {resp.status_code}"
        loaded.append((ref, len(resp.content)))
    scripts = [(r, n) for r, n in loaded if r.endswith(".js")]
    assert scripts and all(n > 500_000 for _, n in scripts), loaded  # the real bundles, not stubs
    assert len([r for r, _ in loaded if r.startswith("/docs-assets/")]) == assets, loaded
    assert any(r == "/openapi.json" for r, _ in loaded), loaded


PAGES = {
    # Swagger UI: one block per operation; ReDoc: one section per operation.
    "/docs": "document.querySelectorAll('.opblock').length",
    "/redoc": "document.querySelectorAll('[data-section-id*=\"operation/\"]').length",
}


async def _render(chromium: Chromium, url: str, counter: str, want: int) -> dict[str, Any]:
    async with Cdp.connect(chromium.page_ws_url()) as cdp:
        await cdp.send("Network.enable")
        await cdp.send("Runtime.enable")
        await cdp.send("Page.enable")
        await cdp.send("Page.navigate", url=url)
        deadline, count = time.monotonic() + 60, 0
        while time.monotonic() < deadline and count < want:
            await asyncio.sleep(0.5)
            count = await cdp.evaluate(counter) or 0
        requested = [p["request"]["url"] for m, p in cdp.events if m == "Network.requestWillBeSent"]
        failed = [p for m, p in cdp.events if m == "Network.loadingFailed"]
        errors = [p for m, p in cdp.events if m == "Runtime.exceptionThrown"]
        return {"count": count, "requested": requested, "failed": failed, "errors": errors}


def test_docs_and_redoc_render_in_a_browser_with_nothing_from_elsewhere(
    gateway, chromium_installed: Path
) -> None:
    operations = sum(
        1
        for ops in httpx.get(f"{gateway.url}/openapi.json").json()["paths"].values()
        for method in ops
        if method in ("get", "post", "put", "delete", "patch")
    )
    chromium = Chromium()
    try:
        for path, counter in PAGES.items():
            seen = asyncio.run(_render(chromium, f"{gateway.url}{path}", counter, operations))
            assert seen["count"] >= operations, f"{path} rendered {seen['count']} of {operations}: {seen}"
            elsewhere = [u for u in seen["requested"] if not u.startswith((gateway.url, "data:", "blob:"))]
            assert elsewhere == [], f"{path} requested {elsewhere}"
            assert seen["failed"] == [] and seen["errors"] == [], seen
            assert f"{gateway.url}/openapi.json" in seen["requested"]
    finally:
        chromium.close()
