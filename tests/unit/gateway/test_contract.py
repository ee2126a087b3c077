"""The constraints the OpenAPI document publishes are exactly what the gateway accepts (issue 15, item 11):
every cursor and cron expression of the published form is accepted; telemetry pages never split a bucket.
Also the gateway's limit settings and the error answers of a dependency that is down (items 6, 7, 13)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx
import pytest
from croniter import croniter
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import RecordTooLarge, Unavailable, install_error_handlers
from gateway.models import CRON_PATTERN, MAX_TIMESTAMP_MS, TIME_ZONES, ScheduleCreate, TaskSpecIn
from gateway.pagination import CURSOR_MAX_LENGTH, CURSOR_PATTERN, decode_cursor, encode_cursor, time_of
from gateway.routers.telemetry import MAX_WINDOW_MS, _window_end
from gateway.settings import GatewaySettings
from pipelines.settings import ConfigError, load_settings


@given(st.from_regex(CURSOR_PATTERN, fullmatch=True))
def test_every_cursor_of_the_published_form_is_a_position(cursor: str) -> None:
    assert len(cursor) <= CURSOR_MAX_LENGTH
    sort, item_id = decode_cursor(cursor)
    assert time_of(sort) <= datetime.max.replace(tzinfo=UTC)
    assert "\x00" not in item_id  # Postgres text holds no NUL
    assert re.fullmatch(CURSOR_PATTERN, encode_cursor(sort, item_id))


@given(st.integers(0, 10**17), st.text(min_size=1, max_size=64).filter(lambda s: "\x00" not in s))
def test_issued_cursors_have_the_published_form(sort: int, item_id: str) -> None:
    cursor = encode_cursor(sort, item_id)
    assert re.fullmatch(CURSOR_PATTERN, cursor)
    assert decode_cursor(cursor) == (sort, item_id)


@given(st.from_regex(CRON_PATTERN, fullmatch=True).filter(lambda s: 9 <= len(s) <= 128))
def test_every_cron_expression_of_the_published_form_is_valid(expr: str) -> None:
    assert croniter.is_valid(expr), expr
    assert len(expr.split()) == 5


def test_cron_pattern_refuses_what_the_schedules_refuse() -> None:
    for bad in ("* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *"):
        assert not re.fullmatch(CRON_PATTERN, bad), bad
    for good in ("*/5 * * * *", "0 8-18 * * MON-FRI", "30 2 1,15 jan-jun 0", "0 0 29 2 *"):
        assert re.fullmatch(CRON_PATTERN, good), good
        ScheduleCreate.model_validate({"site_id": "s", "cron": good, "template": {"category": "c"}})


def test_the_schema_lists_the_time_zones() -> None:
    zone = ScheduleCreate.model_json_schema()["properties"]["timezone"]
    assert zone["enum"] == TIME_ZONES and "Europe/Paris" in TIME_ZONES and "UTC" in TIME_ZONES


def test_deadline_lies_in_years_1970_to_9999() -> None:
    prop = TaskSpecIn.model_json_schema()["properties"]["deadline"]["anyOf"][0]
    assert prop["minimum"] == 0 and prop["maximum"] == MAX_TIMESTAMP_MS
    assert datetime.fromtimestamp(MAX_TIMESTAMP_MS / 1000, UTC).year == 9999
    TaskSpecIn.model_validate({"category": "c", "deadline": MAX_TIMESTAMP_MS})
    with pytest.raises(ValueError, match="deadline"):
        TaskSpecIn.model_validate({"category": "c", "deadline": MAX_TIMESTAMP_MS + 1})


@given(
    st.integers(0, 9_000_000_000_000), st.sampled_from([None, 1000, 30_000, 45_000, 3_600_000, 86_400_000])
)
def test_a_telemetry_page_spans_at_most_366_days_and_splits_no_bucket(start: int, width: int | None) -> None:
    end = _window_end(start, width)
    assert start < end <= start + MAX_WINDOW_MS
    if width is not None:
        assert end % width == 0 and end % 60_000 == 0
        assert end > start + MAX_WINDOW_MS - 2 * max(width, 180_000)


def test_a_bucket_longer_than_a_page_is_one_page() -> None:
    assert _window_end(0, 400 * 86_400_000) > 9_000_000_000_000


def test_limit_settings_defaults_and_checks() -> None:
    settings = load_settings(GatewaySettings)
    assert settings.leeway_seconds == 5
    assert settings.task_max_record_bytes == 65536 and settings.task_max_payload_bytes == 16384
    assert settings.unavailable_retry_after_seconds == 5
    with pytest.raises(ConfigError, match="task_max_payload_bytes"):
        load_settings(GatewaySettings, task_max_payload_bytes=70_000)
    with pytest.raises(ConfigError, match="task_max_record_bytes"):
        load_settings(GatewaySettings, max_body_bytes=8192, task_max_record_bytes=16384)


async def test_a_dependency_down_is_a_503_naming_it_and_a_large_record_a_413() -> None:
    app = FastAPI()
    app.state.settings = load_settings(GatewaySettings, unavailable_retry_after_seconds=7)
    install_error_handlers(app)

    @app.get("/down")
    async def down() -> None:
        raise Unavailable("postgres", "PoolTimeout: couldn't get a connection after 3.00 sec")

    @app.get("/large")
    async def large() -> None:
        raise RecordTooLarge("task.commands", 70_000, 65_536)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        resp = await client.get("/down")
        assert resp.status_code == 503 and resp.headers["retry-after"] == "7"
        body = resp.json()
        assert body["error"] == "unavailable" and body["dependency"] == "postgres"
        assert (
            body["detail"][0]["loc"] == ["dependency", "postgres"]
            and "PoolTimeout" in body["detail"][0]["msg"]
        )
        resp = await client.get("/large")
        assert resp.status_code == 413 and "65536" in resp.json()["message"]
        assert resp.json()["detail"][0]["loc"] == ["body"]
