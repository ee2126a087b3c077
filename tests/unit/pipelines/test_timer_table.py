from pipelines.timers import TimerTable


def _t(timer_id: str, due_at: int) -> dict:
    return {"timer_id": timer_id, "owner": "tasks", "target_key": timer_id, "due_at": due_at}


def test_pops_due_timers_in_due_order_and_keeps_the_rest():
    table = TimerTable()
    for tid, due in [("c", 300), ("a", 100), ("b", 200)]:
        table.upsert(_t(tid, due))
    assert [t["timer_id"] for t in table.pop_due(250)] == ["a", "b"]
    assert len(table) == 1
    assert table.next_due() == 300


def test_rearm_replaces_the_earlier_due_time():
    table = TimerTable()
    table.upsert(_t("x", 100))
    table.upsert(_t("x", 500))
    assert table.pop_due(400) == []
    assert [t["due_at"] for t in table.pop_due(500)] == [500]


def test_cancel_removes_a_pending_t():
    table = TimerTable()
    table.upsert(_t("x", 100))
    table.cancel("x")
    assert table.pop_due(10_000) == []
    assert table.next_due() is None


def test_a_timer_keeps_the_trace_of_its_latest_record() -> None:
    table = TimerTable()
    table.upsert(_t("a", 100), b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")
    table.upsert(_t("b", 100), b"trace-b")
    table.upsert(_t("b", 200))  # re-armed by a record without a trace
    table.upsert(_t("c", 100), b"trace-c")
    table.cancel("c")
    assert table.pop_due_traced(300) == [
        (_t("a", 100), b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"),
        (_t("b", 200), None),
    ]
    assert table._traces == {}  # nothing left behind for fired or cancelled timers
