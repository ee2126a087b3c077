"""The planner client used by dispatch: a deadline per call, retries with jittered backoff, a circuit
breaker, and :class:`PlannerAssigner`, which falls back to the in-process greedy policy.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc

from pipelines.planner.breaker import CircuitBreaker
from pipelines.planner.convert import assignment_from_pb, robot_to_pb, task_to_pb
from pipelines.planner.server import MAP_REQUIRED
from schemas.errors import FleetError
from schemas.proto import planner_pb2 as pb
from schemas.proto import planner_pb2_grpc as pb_grpc
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.policy import Assignment, CostTable, RobotView, TaskView, greedy

__all__ = ["PlannerAssigner", "PlannerClient", "PlannerUnavailable"]

logger = logging.getLogger(__name__)

_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)
# Reconnect quickly after the planner comes back (gRPC's default backoff grows to two minutes).
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


class PlannerUnavailable(FleetError):
    """The planner could not answer (circuit open, retries exhausted or an error): use the fallback."""


class PlannerClient:
    """A blocking client of the Planner service; every failure of a call is one breaker failure."""

    def __init__(
        self,
        target: str,
        *,
        timeout_s: float = 0.25,
        retries: int = 1,
        backoff_s: float = 0.02,
        breaker: CircuitBreaker | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.breaker = breaker or CircuitBreaker(f"planner:{target}")
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._channel = grpc.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self._stub = pb_grpc.PlannerStub(self._channel)
        self.calls = 0

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Callable[..., Any], build: Callable[[bool], Any]) -> Any:
        """Call with the deadline and retries; resend the map once when the server asks for it."""
        if not self.breaker.allow():
            raise PlannerUnavailable("planner circuit is open")
        with_map = False
        attempt = 0
        while True:
            self.calls += 1
            try:
                response = method(build(with_map), timeout=self.timeout_s)
            except grpc.RpcError as exc:
                code = exc.code() if hasattr(exc, "code") else None
                if code is grpc.StatusCode.FAILED_PRECONDITION and not with_map and MAP_REQUIRED in str(exc):
                    with_map = True
                    continue
                if code in _RETRYABLE and attempt < self.retries:
                    delay = self.backoff_s * (2**attempt) * self._rng.uniform(0.5, 1.5)
                    attempt += 1
                    logger.debug("planner %s: %s, retry %d in %.3fs", self.target, code, attempt, delay)
                    self._sleep(delay)
                    continue
                self.breaker.record_failure()
                raise PlannerUnavailable(f"planner {self.target}: {code}") from exc
            except Exception as exc:
                self.breaker.record_failure()
                raise PlannerUnavailable(f"planner {self.target}: {exc}") from exc
            self.breaker.record_success()
            return response

    @staticmethod
    def _site(site_map: Mapping[str, Any], with_map: bool) -> pb.SiteRef:
        return pb.SiteRef(
            tenant_id=str(site_map.get("tenant_id") or ""),
            site_id=str(site_map.get("site_id") or ""),
            version=int(site_map.get("version", 0)),
            site_map_json=json.dumps(dict(site_map)) if with_map else "",
        )

    def assign(
        self,
        site_map: Mapping[str, Any],
        robots: Sequence[RobotView],
        tasks: Sequence[TaskView],
        now_ms: int,
        config: DispatchConfig,
    ) -> list[Assignment]:
        """The optimal assignment of ``robots`` to ``tasks``; raises :class:`PlannerUnavailable`."""
        robots_pb = [robot_to_pb(r) for r in robots]
        tasks_pb = [task_to_pb(t) for t in tasks]
        config_json = json.dumps(config.to_dict())

        def build(with_map: bool) -> pb.AssignRequest:
            return pb.AssignRequest(
                site=self._site(site_map, with_map),
                now_ms=now_ms,
                robots=robots_pb,
                tasks=tasks_pb,
                config_json=config_json,
            )

        response = self._call(self._stub.Assign, build)
        return [assignment_from_pb(p) for p in response.assignments]

    def route(
        self, site_map: Mapping[str, Any], via: Sequence[str], start_ms: int, config: DispatchConfig
    ) -> list[dict[str, Any]]:
        """RouteWaypoint dicts through ``via``; raises :class:`PlannerUnavailable`."""

        def build(with_map: bool) -> pb.RouteRequest:
            return pb.RouteRequest(
                site=self._site(site_map, with_map),
                start_ms=start_ms,
                via=list(via),
                config_json=json.dumps(config.to_dict()),
            )

        response = self._call(self._stub.Route, build)
        return [{"node_id": w.node_id, "eta": w.eta_ms} for w in response.waypoints]


class PlannerAssigner:
    """A dispatch ``Assigner``: the planner's optimal answer, or the in-process greedy one if it fails."""

    def __init__(self, client: PlannerClient) -> None:
        self.client = client
        self.fallbacks = 0

    def __call__(self, table: CostTable) -> tuple[list[Assignment], str]:
        model = table.model
        if model is None:
            return greedy(table), "in_process"
        try:
            pairs = self.client.assign(
                model.graph.source, table.robots, table.tasks, model.now_ms, model.config
            )
        except PlannerUnavailable as exc:
            self.fallbacks += 1
            logger.info("planner unavailable, using the in-process policy: %s", exc)
            return greedy(table), "in_process"
        return pairs, "planner"
