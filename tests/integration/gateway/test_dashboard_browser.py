"""The dashboard in a real browser (issue 8): headless Chromium (Debian's chromium) loads ``/`` while the
simulator drives a demo site through the telemetry processor, and the page draws robots that move.

Pipeline: simulator -> robot.telemetry -> ``fleet run telemetry`` -> robot.status -> gateway SSE -> page.
The site map is seeded in Postgres, as the Postgres sink would. Chromium is driven over the DevTools
protocol; a screenshot is kept in ``.local/screenshots/dashboard.png``.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from gateway.cli import mint_token
from gateway.producer import OUTPUT_TOPICS
from gateway.sse import STREAM_TOPICS
from pipelines.settings import CommonSettings
from pipelines.simulator import SimConfig, demo_site, run_simulation
from schemas import catalog
from schemas.registry import RegistryClient
from tests.integration.gateway.browser import (
    CHROMIUM,
    INSTALL_SCRIPT,
    Cdp,
    Chromium,
    decode_png,
    png_header,
    png_idat,
)
from tests.integration.gateway.conftest import GatewayEnv, Pg, RunningGateway, start_gateway, ts
from tests.integration.telemetry.conftest import TELEMETRY_TOPICS, Stack

SCREENSHOT = Path(__file__).resolve().parents[3] / ".local" / "screenshots" / "dashboard.png"
ROBOTS = 8
VIEWPORT = (1440, 900)

# What the page drew: every robot group in the SVG, its status class, and where it is on screen.
ROBOTS_JS = """(() => {
  const map = document.getElementById("map").getBoundingClientRect();
  const robots = [...document.querySelectorAll("#robots g.robot")].map((g) => {
    const body = g.querySelector("circle.body").getBoundingClientRect();
    return { id: g.dataset.id, cls: g.querySelector("circle.body").getAttribute("class"),
      transform: g.style.transform, x: body.x + body.width / 2, y: body.y + body.height / 2, r: body.width / 2,
      fill: getComputedStyle(g.querySelector("circle.body")).fill };
  });
  return { robots, map: { x: map.x, y: map.y, w: map.width, h: map.height },
    model: state.robots.size, nodes: document.querySelectorAll("#nodes circle.node").length,
    lanes: document.querySelectorAll("#lanes line").length, conn: document.getElementById("conn").textContent,
    counter: document.getElementById("c-robots").textContent };
})()"""


@pytest.fixture(scope="session")
def chromium_installed() -> Path:
    """Debian's chromium, installed by deploy/local/install-chromium.sh if missing (never skipped)."""
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=900, check=False
    )
    output = f"{result.stdout}\n{result.stderr}".strip()
    if result.returncode != 0 or not CHROMIUM.exists():
        pytest.fail(f"install-chromium.sh failed (exit {result.returncode}):\n{output}", pytrace=False)
    print(f"install-chromium.sh: {time.monotonic() - started:.1f}s: {output.splitlines()[-1]}")
    return CHROMIUM


@pytest.fixture
def live_site(
    gw_env: GatewayEnv, settings: CommonSettings, pg: Pg, tmp_path: Path
) -> Iterator[tuple[RunningGateway, str, str]]:
    """A gateway, the telemetry processor and the simulator on topics of their own, for one demo site.
    Yields (gateway, site id, token)."""
    suffix = uuid.uuid4().hex[:8]
    prefix, tenant, site = f"dash{suffix}.", f"tenant-{suffix}", f"demo-{suffix}"
    admin = AdminClient(settings.kafka_client_config())
    names = sorted({*STREAM_TOPICS, *OUTPUT_TOPICS, *TELEMETRY_TOPICS})
    specs = catalog.topics(prefix, partitions={"robot": 2, "task": 2, "site": 2}, names=names)
    new = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config()) for s in specs
    ]
    for fut in admin.create_topics(new).values():
        fut.result(30)

    site_map = demo_site(site, tenant)
    pg.insert(
        "site_maps",
        {"tenant_id": tenant, "site_id": site, "version": site_map["version"], "name": site_map.get("name"),
         "map": site_map, "occurred_at": ts(site_map["occurred_at"])},
    )  # fmt: skip

    proc_settings = settings.model_copy(update={"topic_prefix": prefix, "state_dir": tmp_path / "state"})
    registry = RegistryClient(**proc_settings.registry_client_config())
    stack = Stack(proc_settings, registry, tmp_path)
    stop = threading.Event()
    sim_errors: list[Exception] = []
    gw: RunningGateway | None = None
    try:
        stack.start("telemetry", heartbeat_s=1)  # a RobotStatus per robot per second, not only on changes

        def _simulate() -> None:
            config = SimConfig(
                site_id=site, tenant_id=tenant, robots=ROBOTS, rate_hz=2.0, seed=7, topic_prefix=prefix,
                kafka_config=proc_settings.kafka_client_config(),
                registry_config=proc_settings.registry_client_config(),
            )  # fmt: skip
            try:
                run_simulation(config, stop)
            except Exception as exc:  # reported by the test at teardown
                sim_errors.append(exc)

        sim = threading.Thread(target=_simulate, name="simulator", daemon=True)
        sim.start()
        gw = start_gateway(gw_env.settings(topic_prefix=prefix))
        token = mint_token(gw.settings, tenant=tenant, roles=["admin"])
        yield gw, site, token
        assert not sim_errors, f"simulator failed: {sim_errors!r}"
        code = stack.procs["telemetry"].poll()
        assert code is None, f"telemetry exited ({code}):\n{stack.log('telemetry')[-3000:]}"
    finally:
        stop.set()
        if gw is not None:
            gw.stop()
        stack.stop_all()
        registry.close()
        leftovers = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        for fut in admin.delete_topics(leftovers).values() if leftovers else ():
            with contextlib.suppress(Exception):
                fut.result(30)


async def _wait_for(cdp: Cdp, predicate: Any, timeout: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            seen = await cdp.evaluate(ROBOTS_JS)
            if predicate(seen):
                return seen
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; page state: {_summary(seen)}")


def _summary(seen: dict[str, Any]) -> str:
    robots = seen.get("robots", [])
    return f"{ {k: v for k, v in seen.items() if k != 'robots'} } robots drawn: {len(robots)} {robots[:3]}"


def _inside(robot: dict[str, Any], box: dict[str, float]) -> bool:
    return box["x"] <= robot["x"] <= box["x"] + box["w"] and box["y"] <= robot["y"] <= box["y"] + box["h"]


def _close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 24) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a[:3], b[:3], strict=True))


def _rgb(css: str) -> tuple[int, int, int]:
    r, g, b = (int(float(v)) for v in css[css.index("(") + 1 : css.index(")")].split(",")[:3])
    return r, g, b


async def _drive(url: str, chromium: Chromium) -> dict[str, Any]:
    async with Cdp.connect(chromium.page_ws_url()) as cdp:
        await cdp.send("Page.enable")
        await cdp.send("Runtime.enable")
        width, height = VIEWPORT
        await cdp.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        await cdp.send("Page.navigate", url=url)

        # Every robot of the simulator drawn inside the map, the map drawn, the stream live.
        first = await _wait_for(
            cdp,
            lambda s: s.get("conn") == "live" and s.get("nodes", 0) > 50
            and len(s["robots"]) >= ROBOTS and all(_inside(r, s["map"]) for r in s["robots"]),
            timeout=60,
            what=f"{ROBOTS} robots drawn on the map",
        )  # fmt: skip
        # Move: a robot's place on the screen changes within a few seconds.
        before = {r["id"]: (r["x"], r["y"]) for r in first["robots"]}
        moved: list[str] = []
        deadline = time.monotonic() + 20
        second = first
        while not moved and time.monotonic() < deadline:
            await asyncio.sleep(2)
            second = await cdp.evaluate(ROBOTS_JS)
            moved = [
                r["id"] for r in second["robots"]
                if r["id"] in before and abs(r["x"] - before[r["id"]][0]) + abs(r["y"] - before[r["id"]][1]) > 2
            ]  # fmt: skip

        # Pixels: the centre of some robot on screen has its status colour (drawn, not hidden).
        coloured = []
        for r in second["robots"]:
            shot = decode_png(await cdp.screenshot(x=r["x"] - 1, y=r["y"] - 1, width=3, height=3))
            if _close(shot.pixel(1, 1), _rgb(r["fill"])):
                coloured.append(r["id"])
        small = decode_png(await cdp.screenshot(x=0, y=0, width=width, height=height, scale=0.25))
        await asyncio.sleep(1)  # let the transitions settle a little for a clean picture
        full = await cdp.screenshot()
        errors = [
            p for m, p in cdp.events if m == "Runtime.exceptionThrown"
            or (m == "Runtime.consoleAPICalled" and p.get("type") == "error")
        ]  # fmt: skip
        return {"first": first, "second": second, "moved": moved, "coloured": coloured,
                "small": small, "full": full, "errors": errors}  # fmt: skip


def test_dashboard_draws_moving_robots(
    chromium_installed: Path, live_site: tuple[RunningGateway, str, str]
) -> None:
    gw, site, token = live_site
    started = time.monotonic()
    chromium = Chromium(*VIEWPORT)
    try:
        out = asyncio.run(asyncio.wait_for(_drive(f"{gw.url}/?site={site}&token={token}", chromium), 100))
    except BaseException:
        print(f"chromium log:\n{chromium.log()}")
        raise
    finally:
        chromium.close()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(out["full"])
    print(f"browser part: {time.monotonic() - started:.1f}s; screenshot {SCREENSHOT} ({len(out['full'])} B)")

    first, second = out["first"], out["second"]
    assert first["model"] >= ROBOTS and int(first["counter"]) >= ROBOTS, _summary(first)
    assert first["lanes"] > 50, _summary(first)
    assert out["moved"], f"no robot moved on screen: {_summary(first)} -> {_summary(second)}"
    assert out["coloured"], f"no robot's status colour at its place in the screenshot: {_summary(second)}"
    assert not out["errors"], f"page errors: {out['errors'][:3]}"

    # The saved screenshot: a real PNG of the viewport, not a blank page.
    png = out["full"]
    width, height, _, colour = png_header(png)
    assert (width, height) == VIEWPORT and colour in (2, 6)
    assert len(png) > 20_000, len(png)
    assert len(png_idat(png)) == height * (1 + width * (3 if colour == 2 else 4))
    colours = out["small"].colours()
    assert len(colours) > 50, f"screenshot nearly blank: {len(colours)} colours"
