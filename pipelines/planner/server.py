"""The gRPC planner: optimal batch assignment (``linear_sum_assignment``) and routes with ETAs.

It computes the same cost matrix as the in-process policy (``topologies.dispatch.policy.CostModel``)
from the robots, tasks, map and config in the request, so the only difference from the fallback is the
solver. Maps are cached per (tenant, site, version); a request for a map the server does not hold and
that carries no ``site_map_json`` is answered FAILED_PRECONDITION so the client resends it.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections import OrderedDict
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import HealthServicer

from pipelines.planner.convert import robot_from_pb, task_from_pb
from schemas.proto import planner_pb2 as pb
from schemas.proto import planner_pb2_grpc as pb_grpc
from schemas.sitegraph import SiteGraph, graph_for
from topologies.dispatch.config import DispatchConfig
from topologies.dispatch.decisions import route_waypoints
from topologies.dispatch.policy import CostModel, optimal

__all__ = ["MAP_REQUIRED", "PlannerService", "serve"]

logger = logging.getLogger(__name__)

MAP_REQUIRED = "map required"
_MAPS_KEPT = 256


class PlannerService(pb_grpc.PlannerServicer):
    """Stateless apart from the cache of site maps."""

    def __init__(self) -> None:
        self._maps: OrderedDict[tuple[str, str, int], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.assign_calls = 0

    def _graph(self, site: pb.SiteRef, config: DispatchConfig, context: grpc.ServicerContext) -> SiteGraph:
        key = (site.tenant_id, site.site_id, site.version)
        with self._lock:
            site_map = self._maps.get(key)
            if site_map is None and site.site_map_json:
                site_map = json.loads(site.site_map_json)
                self._maps[key] = site_map
                while len(self._maps) > _MAPS_KEPT:
                    self._maps.popitem(last=False)
        if site_map is None:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, MAP_REQUIRED)
        assert site_map is not None
        return graph_for(site_map, config.nominal_speed_mps)

    @staticmethod
    def _config(config_json: str) -> DispatchConfig:
        return DispatchConfig.from_dict(json.loads(config_json)) if config_json else DispatchConfig()

    def Assign(self, request: pb.AssignRequest, context: grpc.ServicerContext) -> pb.AssignResponse:
        self.assign_calls += 1
        config = self._config(request.config_json)
        graph = self._graph(request.site, config, context)
        model = CostModel(graph, config, request.now_ms)
        table = model.table(
            [robot_from_pb(r) for r in request.robots], [task_from_pb(t) for t in request.tasks]
        )
        pairs = optimal(table)
        logger.debug(
            "assign %s: %d robots x %d tasks -> %d",
            request.site.site_id,
            len(table.robots),
            len(table.tasks),
            len(pairs),
        )
        return pb.AssignResponse(
            assignments=[
                pb.Pair(robot_id=a.robot_id, task_id=a.task_id, cost=a.cost, travel_s=a.travel_s)
                for a in pairs
            ],
            total_cost=sum(a.cost for a in pairs),
            solver="linear_sum_assignment",
        )

    def Route(self, request: pb.RouteRequest, context: grpc.ServicerContext) -> pb.RouteResponse:
        config = self._config(request.config_json)
        graph = self._graph(request.site, config, context)
        via = list(request.via)
        if len(via) < 2:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "via needs at least two nodes")
        legs = [graph.timed_path(a, b) for a, b in itertools.pairwise(via)]
        if any(not leg for leg in legs):
            context.abort(grpc.StatusCode.NOT_FOUND, "no route through the given nodes")
        route = route_waypoints(legs, request.start_ms)
        return pb.RouteResponse(
            waypoints=[pb.Waypoint(node_id=w["node_id"], eta_ms=w["eta"]) for w in route],
            eta_ms=route[-1]["eta"],
            travel_s=sum(leg[-1][1] for leg in legs),
        )


def serve(host: str = "127.0.0.1", port: int = 0, *, max_workers: int = 4) -> tuple[grpc.Server, int]:
    """Start a planner server; returns it (already started) and the bound port (``port=0``: a free one)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
    pb_grpc.add_PlannerServicer_to_server(PlannerService(), server)
    # grpc.health.v1 for Kubernetes' gRPC probes: SERVING for the server ("") and the Planner service.
    health = HealthServicer()
    for service in ("", pb.DESCRIPTOR.services_by_name["Planner"].full_name):
        health.set(service, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"planner: cannot bind {host}:{port}")
    server.start()
    logger.info("planner listening on %s:%d", host, bound)
    return server, bound
