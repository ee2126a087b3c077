"""The RMF sink against the RMF API server simulator (served locally; RMF is what is simulated here)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from quixstreams.sinks import SinkBackpressureError
from quixstreams.sinks.base.batch import SinkBatch

from pipelines.rmf import RmfServerConfig, RmfServerSim
from schemas import rmf
from schemas.errors import RecordError
from sinks.deadletters import SinkRecord
from sinks.rmf import RmfApiClient, RmfSink
from topologies.tasks import from_rmf

FLEET = "tinyRobot"


@pytest.fixture
def server() -> Iterator[RmfServerSim]:
    sim = RmfServerSim(RmfServerConfig(fleets=(FLEET,), cancel_timeout_s=0.3)).start()
    yield sim
    sim.stop()


class Published(list[tuple[str, dict[str, Any]]]):
    def __call__(self, key: str, message: dict[str, Any]) -> None:
        assert rmf.errors(message, "task_state_update") == []
        self.append((key, message))


def make_sink(server: RmfServerSim, published: Published, *, timeout_s: float = 2.0, **kw: Any) -> RmfSink:
    client = RmfApiClient(server.url, server.token(), timeout_s=timeout_s)
    return RmfSink(client, published, rmf_fleets=[FLEET], retry_after_s=0.1, **kw)


def assigned(task_id: str, *, fleet: str = FLEET, attempt: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "tenant_id": "t1",
        "kind": "TRANSITION",
        "state": "ASSIGNED",
        "previous_state": "QUEUED",
        "robot_id": "r1",
        "attempt": attempt,
        "spec": {"category": "delivery", "pickup_node": "A", "dropoff_node": "B", "fleet_id": fleet} | spec,
    }


def cancelled(task_id: str, **extra: Any) -> dict[str, Any]:
    return (
        assigned(task_id)
        | {"state": "CANCELLED", "previous_state": "DISPATCHED", "reason": "by operator"}
        | extra
    )


def batch(*events: dict[str, Any]) -> SinkBatch:
    out = SinkBatch("task.events", 0)
    for i, event in enumerate(events):
        out.append(event, event["task_id"], 0, [], i)
    return out


def dispatches(server: RmfServerSim) -> list[dict[str, Any]]:
    return [r for r in server.sim.requests if r["type"] == "dispatch_task_request"]


def test_accepted_dispatch_links_rmf_id(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.write(batch(assigned("task-a")))
    [request] = dispatches(server)
    assert rmf.errors(request, "dispatch_task_request") == []
    assert request["request"]["fleet_name"] == FLEET
    [(key, message)] = published
    assert key == "delivery.dispatch-0"
    [inp] = from_rmf(message, 0)
    assert (inp["task_id"], inp["external_id"], inp["observed"]) == (
        "task-a",
        "delivery.dispatch-0",
        "DISPATCHED",
    )
    sink.write(batch(assigned("task-a")))  # redelivery: nothing new
    assert len(dispatches(server)) == 1 and len(published) == 1


def test_non_rmf_tasks_are_left_alone(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.write(
        batch(assigned("task-b", fleet="amr-fleet"), cancelled("task-b", spec={"fleet_id": "amr-fleet"}))
    )
    assert server.sim.requests == [] and published == []


def test_robot_registered_as_rmf_managed_routes_its_tasks(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.register({"robot_id": "r1", "fleet_id": FLEET, "managed_by": "RMF", "active": True})
    sink.write(batch(assigned("task-r", fleet="")))
    assert dispatches(server)[0]["request"]["fleet_name"] == FLEET


def test_refusal_fails_the_task_with_rmf_errors(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.rmf_fleets = frozenset({FLEET, "ghost"})
    sink.write(batch(assigned("task-c", fleet="ghost")))
    [(key, message)] = published
    assert key == "task-c"
    assert message["data"]["dispatch"] == {
        "status": "failed_to_assign",
        "errors": [{"code": 2, "category": "Unknown fleet", "detail": "no fleet named [ghost]"}],
    }
    [failed] = from_rmf(message, 0)
    assert failed["observed"] == "FAILED"
    assert failed["reason"] == "RMF failed_to_assign: Unknown fleet: no fleet named [ghost] (2)"
    sink.write(batch(assigned("task-c", fleet="ghost")))
    assert len(dispatches(server)) == 1  # a refusal is final for this attempt


def test_unsupported_spec_fails_without_calling_rmf(server: RmfServerSim) -> None:
    published = Published()
    make_sink(server, published).write(batch(assigned("task-d", category="charge")))
    assert server.sim.requests == []
    assert "has no RMF task description" in published[0][1]["data"]["dispatch"]["errors"][0]["detail"]


def test_server_down_backpressure_then_catch_up_without_double_dispatch(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.write(batch(assigned("task-e")))
    port = server.port
    server.stop()
    events = batch(assigned("task-e"), assigned("task-f"), assigned("task-g"))
    with pytest.raises(SinkBackpressureError):
        sink.write(events)
    restarted = RmfServerSim(server.config, port=port, app=server.app).start()  # the same RMF, back up
    try:
        sink.write(events)  # the whole batch is re-delivered
    finally:
        restarted.stop()
    ids = [r["request"]["labels"][0] for r in dispatches(server)]
    assert ids == ["fleetstream_task_id=task-e", "fleetstream_task_id=task-f", "fleetstream_task_id=task-g"]
    assert [k for k, _ in published] == ["delivery.dispatch-0", "delivery.dispatch-1", "delivery.dispatch-2"]


def test_timeout_then_retry_finds_the_task_instead_of_dispatching_again() -> None:
    slow = RmfServerSim(RmfServerConfig(fleets=(FLEET,), dispatch_delay_s=0.6)).start()
    try:
        published = Published()
        sink = make_sink(slow, published, timeout_s=0.3)
        with pytest.raises(SinkBackpressureError):
            sink.write(batch(assigned("task-h")))
        time.sleep(0.6)  # RMF accepted it after our timeout
        sink.write(batch(assigned("task-h")))
        assert len(dispatches(slow)) == 1
        assert sink.stats["found"] == 1
        assert published[0][0] == "delivery.dispatch-0"
    finally:
        slow.stop()


def test_retried_attempt_is_a_new_rmf_task(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.write(batch(assigned("task-i"), assigned("task-i", attempt=2)))
    assert [r["request"]["labels"][1] for r in dispatches(server)] == [
        "fleetstream_attempt=1",
        "fleetstream_attempt=2",
    ]


def test_cancel_reaches_rmf(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.write(batch(assigned("task-j"), cancelled("task-j")))
    [cancel] = [r for r in server.sim.requests if r["type"] == "cancel_task_request"]
    assert rmf.errors(cancel, "cancel_task_request") == []
    assert cancel["task_id"] == "delivery.dispatch-0"
    assert server.sim.tasks["delivery.dispatch-0"]["status"] == "canceled"
    assert sink.stats["cancelled"] == 1


def test_cancel_caused_by_rmf_is_not_sent_back(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.write(batch(assigned("task-k"), cancelled("task-k", reason="RMF canceled")))
    assert [r["type"] for r in server.sim.requests] == ["dispatch_task_request"]


def test_unanswered_cancel_retries_then_gives_up(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published, cancel_attempts=2)
    event = cancelled("task-l", external_id="delivery.dispatch-77")
    with pytest.raises(SinkBackpressureError):
        sink.write(batch(event))
    sink.write(batch(event))  # second unanswered cancel: given up, the partition moves on
    assert sink.stats["cancel_failed"] == 1
    sink.write(batch(event))
    assert len([r for r in server.sim.requests if r["type"] == "cancel_task_request"]) == 2


def test_wrong_token_is_backpressure_not_a_refusal(server: RmfServerSim) -> None:
    published = Published()
    sink = RmfSink(RmfApiClient(server.url, "bad-token", timeout_s=1), published, rmf_fleets=[FLEET])
    with pytest.raises(SinkBackpressureError):
        sink.write(batch(assigned("task-m")))
    assert published == []


def test_a_spec_rmf_messages_cannot_carry_fails_the_task_with_the_reason(server: RmfServerSim) -> None:
    published = Published()
    sink = make_sink(server, published)
    sink.write(
        batch(assigned("task-p", category="patrol", payload_json='{"places": ["A"], "rounds": "many"}'))
    )
    assert dispatches(server) == []
    [(key, message)] = published
    assert key == "task-p" and message["data"]["dispatch"]["status"] == "failed_to_assign"
    assert "many" in message["data"]["dispatch"]["errors"][0]["detail"]


def test_an_invalid_task_state_from_rmf_is_dead_lettered_and_the_batch_goes_on(server: RmfServerSim) -> None:
    make_sink(server, Published()).write(batch(assigned("task-a")))
    # RMF's record of the task loses its id; a restarted sink meets it through the label lookup.
    (stored,) = server.sim.tasks.values()
    del stored["booking"]["id"]
    dead: list[tuple[SinkRecord, RecordError]] = []
    published = Published()
    restarted = make_sink(server, published, dead_letter=lambda r, e: dead.append((r, e)))
    restarted.write(batch(assigned("task-a"), assigned("task-b")))
    [(record, error)] = dead
    assert (record.topic, record.partition, record.offset) == ("task.events", 0, 0)
    assert record.value["task_id"] == "task-a"
    assert "RMF answered the dispatch of task-a with an invalid task state" in error.reason
    assert [m["data"]["booking"]["labels"][0] for _, m in published] == ["fleetstream_task_id=task-b"]
    assert restarted.stats["dead_lettered"] == 1 and restarted.stats["dispatched"] == 1
    restarted.write(batch(assigned("task-a")))  # read again after a pause: not dispatched twice
    assert len(dispatches(server)) == 2 and len(dead) == 1
