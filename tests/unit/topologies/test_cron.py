"""Cron schedules with a fake clock: fire times (time zones, DST), one task per fire, misfire policies."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from schemas.errors import RejectedRecord
from tests.unit.topologies.test_tasks_helpers import CFG, Harness, schedule
from topologies.tasks import cron_task_id, from_due_timer, next_fire, step_schedule, validate_schedule


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: str = "UTC") -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


START = ms(2025, 6, 2, 8, 0)  # a Monday


def test_next_fire_in_utc_is_strictly_after() -> None:
    assert next_fire("*/5 * * * *", "UTC", START) == START + 5 * 60_000
    assert next_fire("*/5 * * * *", "UTC", START - 1) == START
    assert next_fire("0 9 * * 1-5", "UTC", START) == ms(2025, 6, 2, 9)
    assert next_fire("0 9 * * 1-5", "UTC", ms(2025, 6, 6, 9)) == ms(2025, 6, 9, 9)  # Friday -> Monday


def test_next_fire_reads_the_cron_in_the_schedule_time_zone() -> None:
    assert next_fire("0 9 * * *", "Europe/Berlin", START) == ms(2025, 6, 3, 7)  # 09:00 CEST is 07:00 UTC
    assert next_fire("0 9 * * *", "America/New_York", START) == ms(2025, 6, 2, 13)


def test_spring_forward_gap_fires_once_after_the_gap() -> None:
    before = ms(2025, 3, 30, 0, 0)  # Berlin skips 02:00-03:00 local that night
    first = next_fire("30 2 * * *", "Europe/Berlin", before)
    assert datetime.fromtimestamp(first / 1000, UTC) == datetime(2025, 3, 30, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert next_fire("30 2 * * *", "Europe/Berlin", first) == ms(2025, 3, 31, 2, 30, "Europe/Berlin")


def test_fall_back_repeated_hour_fires_a_wall_time_once() -> None:
    before = ms(2025, 10, 26, 0, 0)  # Berlin repeats 02:00-03:00 local that night
    first = next_fire("30 2 * * *", "Europe/Berlin", before)
    assert first == int(datetime(2025, 10, 26, 0, 30, tzinfo=UTC).timestamp() * 1000)  # 02:30 CEST
    assert next_fire("30 2 * * *", "Europe/Berlin", first) == ms(2025, 10, 27, 2, 30, "Europe/Berlin")
    fires = [next_fire("*/30 * * * *", "Europe/Berlin", ms(2025, 10, 26, 1, 0, "Europe/Berlin"))]
    while len(fires) < 6:
        fires.append(next_fire("*/30 * * * *", "Europe/Berlin", fires[-1]))
    local = [datetime.fromtimestamp(f / 1000, ZoneInfo("Europe/Berlin")).strftime("%H:%M%z") for f in fires]
    assert local == ["01:30+0200", "02:00+0200", "02:30+0200", "03:00+0100", "03:30+0100", "04:00+0100"]


@pytest.mark.parametrize(
    ("cron", "tz", "reason"),
    [
        ("* * * * * *", "UTC", "five-field"),
        ("61 * * * *", "UTC", "five-field"),
        ("every minute", "UTC", "five-field"),
        ("* * * * *", "Mars/Olympus", "time zone"),
        ("0 0 31 2 *", "UTC", "no fire time"),  # valid fields, a date that never comes (31 February)
    ],
)
def test_invalid_schedules_are_rejected(cron: str, tz: str, reason: str) -> None:
    with pytest.raises(RejectedRecord, match=reason):
        validate_schedule({"cron": cron, "timezone": tz})


def test_schedule_arms_its_next_fire_and_each_fire_creates_one_task() -> None:
    h = Harness(now=START)
    h.send(schedule("s1", "*/5 * * * *", START))
    ((timer_id, timer),) = h.timers.items()
    assert (
        timer["due_at"] == START + 300_000
        and timer["target_key"] == "s1"
        and timer_id.startswith("schedule:s1:")
    )
    h.advance(START + 300_000)
    task_id = cron_task_id("t1", "s1", START + 300_000)
    assert h.transitions(task_id) == ["CREATED", "QUEUED"]
    created = h.events[task_id][0]
    assert created["occurred_at"] == START + 300_000
    assert created["spec"]["labels"] == {"schedule_id": "s1", "fire_at": str(START + 300_000)}
    assert created["spec"]["category"] == "patrol"
    assert [t["due_at"] for t in h.timers.values()] == [START + 600_000]
    h.advance(START + 900_000)
    assert h.schedules["s1"]["fires"] == 3  # type: ignore[index]
    assert len([k for k in h.events if h.transitions(k)[:1] == ["CREATED"]]) == 3


def test_a_fire_handled_twice_never_creates_a_second_task() -> None:
    h = Harness(now=START)
    h.send(schedule("s1", "*/5 * * * *", START))
    (timer,) = h.timers.values()
    before = h.schedules["s1"]
    h.advance(timer["due_at"])
    # the timer service delivers the same due timer again (at least once): stale, ignored
    h.send(*from_due_timer(timer))
    # a replay from the old state (as after a crash) creates the same task id: a DUPLICATE at most
    _, out = step_schedule(before, from_due_timer(timer)[0], CFG, timer["due_at"])
    h.send(*[o.value.payload for o in out if o.topic == "tasks.inbox" and o.value is not None])
    task_id = cron_task_id("t1", "s1", timer["due_at"])
    assert h.kinds(task_id) == [("TRANSITION", "CREATED"), ("TRANSITION", "QUEUED"), ("DUPLICATE", "QUEUED")]
    assert h.schedules["s1"]["fires"] == 1  # type: ignore[index]


@pytest.mark.parametrize(("policy", "expected_tasks"), [("SKIP", 0), ("FIRE_ONCE", 1)])
def test_misfire_after_downtime(policy: str, expected_tasks: int) -> None:
    h = Harness(now=START)
    h.send(schedule("s1", "* * * * *", START, misfire=policy))
    (timer,) = h.timers.values()
    down_until = START + 10 * 60_000 + 30_000  # 10.5 minutes of downtime: ten fires missed
    h.now = down_until
    h.send(*from_due_timer(timer))
    created = [k for k in h.events if h.transitions(k)[:1] == ["CREATED"]]
    assert len(created) == expected_tasks
    if expected_tasks:
        (task_id,) = created
        assert task_id == cron_task_id("t1", "s1", timer["due_at"])
        assert h.events[task_id][0]["spec"]["labels"]["misfire"] == "FIRE_ONCE"
        assert h.events[task_id][0]["occurred_at"] == down_until
    (nxt,) = h.timers.values()
    assert nxt["due_at"] == START + 11 * 60_000  # the first fire after now: no burst
    h.advance(nxt["due_at"])
    assert h.schedules["s1"]["fires"] == expected_tasks + 1  # type: ignore[index]


def test_late_within_grace_is_a_normal_fire() -> None:
    h = Harness(now=START)
    h.send(schedule("s1", "*/5 * * * *", START, misfire="SKIP"))
    (timer,) = h.timers.values()
    h.now = timer["due_at"] + CFG.misfire_grace_ms - 1
    h.send(*from_due_timer(timer))
    assert h.schedules["s1"]["fires"] == 1  # type: ignore[index]
    assert [t["due_at"] for t in h.timers.values()] == [timer["due_at"] + 300_000]


def test_update_rearms_disable_and_delete_cancel_the_timer() -> None:
    h = Harness(now=START)
    h.send(schedule("s1", "*/5 * * * *", START))
    (first,) = h.timers
    h.send(schedule("s1", "*/5 * * * *", START + 1))  # same next fire: no churn
    assert list(h.timers) == [first] and h.tombstoned == []
    h.send(schedule("s1", "0 * * * *", START + 2))
    assert first in h.tombstoned and [t["due_at"] for t in h.timers.values()] == [START + 3_600_000]
    h.send(schedule("s1", "0 * * * *", START + 3, enabled=False))
    assert h.timers == {}
    h.advance(START + 7_200_000)
    assert h.schedules["s1"]["fires"] == 0  # type: ignore[index]
    h.send(schedule("s1", "0 * * * *", START + 7_200_001))
    assert len(h.timers) == 1
    h.send(
        {
            "type": "schedule",
            "schedule_id": "s1",
            "record": None,
            "occurred_at": START + 7_200_002,
            "event_id": None,
        }
    )
    assert h.timers == {} and h.schedules["s1"] is None


def test_stale_fire_of_a_rearmed_schedule_is_ignored() -> None:
    h = Harness(now=START)
    h.send(schedule("s1", "*/5 * * * *", START))
    (old,) = h.timers.values()
    h.send(schedule("s1", "0 * * * *", START + 1))
    h.now = old["due_at"]
    h.send(*from_due_timer(old))
    assert h.schedules["s1"]["fires"] == 0 and old["timer_id"] in h.tombstoned  # type: ignore[index]
