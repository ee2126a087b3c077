"""One vehicle's order as plain data, and the VDA 5050 order and order-update messages built from it.

An order (spec 2.1 §6.6, 3.0 §6.1) is a route of site-map nodes split into the *base* (released: the
vehicle may drive it) and the *horizon* (planned, not released). The base only grows: every update
repeats the last base node (the *decision point*, its content unchanged, actions included) as its first
node, then the newly released nodes, then the new horizon, with ``orderUpdateId`` + 1 and the same
``orderId``. ``sequenceId`` runs over nodes and edges of the whole order (node ``i`` has ``2i``, the edge
after it ``2i + 1``) and never changes once a node is released. An edge's id is its lane's id; a lane
driven a second time in the same order is named ``<laneId>@<sequenceId>`` (3.0 allows repeated edgeIds,
2.1 calls them unique, and some vehicles reject repeats).

Order state (JSON-serialisable; :class:`Order`)::

    order_id, kind ("task" | "charge" | "move"), task_id, decision_id, plan_id, plan_seq
    nodes        node ids of the whole order: the released base, then the horizon
    base         the node dicts as issued for the base (exactly what was sent: stitching resends them)
    base_edges   the edge dicts as issued between base nodes
    target       how many nodes may be released (all, or what traffic granted), capped by ``hold``
    hold         index of a node the vehicle must not pass (a HOLD), or None
    stops        destinations: {"node", "actions": [action dicts], "index": node index or None}
    update_id    last orderUpdateId issued (-1 before the order is sent)
    bases        {str(orderUpdateId): len(base) after it}; starts: {str(orderUpdateId): index of its first
                 node} (the decision point it stitched onto), so an update can be sent again as it was
    status       "open" | "cancelling" | "cancelled" | "done" | "failed"
    acked        highest orderUpdateId the vehicle reported for this order (-1: none)
    sent_at      event time of the last message about this order; phase: last task phase reported

Nothing here reads a clock or a broker; ``model`` (the site's :class:`SiteModel`) gives positions and lanes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NotRequired, TypedDict

from schemas.errors import RejectedRecord
from topologies.vda5050.protocol import Action, Edge, Node, OrderBody
from topologies.vda5050.sitemodel import SiteModel

__all__ = [
    "Order",
    "Stop",
    "action",
    "apply_grant",
    "body",
    "current_index",
    "effective_target",
    "expand",
    "issue",
    "needs_update",
    "new_order",
    "place_stops",
    "replace_horizon",
    "start_from",
]


class Stop(TypedDict):
    """A destination of an order: its node, the actions there, where in ``nodes`` (None: not placed)."""

    node: str
    actions: list[Action]
    index: int | None


class Order(TypedDict):
    """One order of a vehicle (see the module docstring)."""

    order_id: str
    kind: str  # "task" | "charge" | "move"
    task_id: str | None
    decision_id: str | None
    plan_id: str | None
    plan_seq: int | None
    nodes: list[str]
    base: list[Node]
    base_edges: list[Edge]
    target: int
    hold: int | None
    stops: list[Stop]
    update_id: int
    bases: dict[str, int]
    starts: dict[str, int]
    status: str  # "open" | "cancelling" | "cancelled" | "done" | "failed"
    acked: int
    sent_at: int | None
    phase: str | None
    cancel_action: str | None  # actionId of its cancelOrder, once cancelled
    horizon_changed: NotRequired[bool]  # the horizon changed since the last update


def expand(model: SiteModel, route: Sequence[str]) -> list[str]:
    """``route`` with gaps between non-adjacent nodes filled by shortest paths; RejectedRecord when a
    node is not on the map or cannot be reached."""
    out: list[str] = []
    for node in route:
        if node not in model:
            raise RejectedRecord(f"route node {node!r} is not on the map of site {model.site_id!r}")
        if out and out[-1] == node:
            continue
        if out and model.lane(out[-1], node) is None:
            leg = model.path(out[-1], node)
            if not leg:
                raise RejectedRecord(
                    f"no lane or path from {out[-1]!r} to {node!r} on site {model.site_id!r}"
                )
            out.extend(leg[1:-1])
        out.append(node)
    return out


def action(order_id: str, stop: int, action_type: str, params: Mapping[str, str] | None = None) -> Action:
    """A HARD-blocking node action with a deterministic id (``<orderId>:<stop>:<actionType>``)."""
    out: Action = {
        "actionType": action_type,
        "actionId": f"{order_id}:{stop}:{action_type}",
        "blockingType": "HARD",
    }
    if params:
        out["actionParameters"] = [{"key": k, "value": v} for k, v in params.items()]
    return out


def new_order(
    *,
    order_id: str,
    kind: str,
    route: Sequence[str],
    stops: Sequence[tuple[str, list[Action]]],
    release_all: bool,
    model: SiteModel,
    task_id: str | None = None,
    decision_id: str | None = None,
    plan_id: str | None = None,
    plan_seq: int | None = None,
) -> Order:
    """An order not sent yet: ``route`` expanded, stops placed, everything released or only its start."""
    nodes = expand(model, route)
    if not nodes:
        raise RejectedRecord("an order needs at least one node")
    order: Order = {
        "order_id": order_id,
        "kind": kind,
        "task_id": task_id,
        "decision_id": decision_id,
        "plan_id": plan_id,
        "plan_seq": plan_seq,
        "nodes": nodes,
        "base": [],
        "base_edges": [],
        "target": 1,
        "hold": None,
        "stops": [{"node": node, "actions": acts, "index": None} for node, acts in stops],
        "update_id": -1,
        "bases": {},
        "starts": {},
        "status": "open",
        "acked": -1,
        "sent_at": None,
        "phase": None,
        "cancel_action": None,
    }
    place_stops(order, model)
    order["target"] = len(order["nodes"]) if release_all else 1
    return order


def place_stops(order: Order, model: SiteModel) -> None:
    """Put each stop not yet in the base on the first visit of its node after the previous stop; a stop
    the route does not reach gets a shortest-path leg appended to the route."""
    nodes: list[str] = order["nodes"]
    released = len(order["base"])
    pos = 0
    for stop in order["stops"]:
        index = stop["index"]
        if index is not None and index < released:
            pos = index
            continue
        start = max(pos, released)
        found = next((i for i in range(start, len(nodes)) if nodes[i] == stop["node"]), None)
        if found is None:
            leg = model.path(nodes[-1], stop["node"])
            if not leg:
                raise RejectedRecord(f"no path from {nodes[-1]!r} to stop {stop['node']!r}")
            nodes.extend(leg[1:])
            found = len(nodes) - 1
        stop["index"] = pos = found


def start_from(order: Order, node: str, model: SiteModel) -> None:
    """Make an order not sent yet begin at ``node`` (where the vehicle stands: the first node of an order
    must be trivially reachable): drop the route up to ``node`` when the route passes it before any stop,
    else drive there first along the shortest path."""
    nodes: list[str] = order["nodes"]
    if order["update_id"] >= 0 or not nodes or nodes[0] == node or node not in model:
        return
    first_stop = min((s["index"] for s in order["stops"] if s["index"] is not None), default=len(nodes) - 1)
    if node in nodes[: first_stop + 1]:
        cut = nodes.index(node)
        order["nodes"] = nodes[cut:]
        order["target"] = max(1, int(order["target"]) - cut)
    else:
        lead = model.path(node, nodes[0])
        if len(lead) < 2:
            return
        order["nodes"] = [*lead[:-1], *nodes]
        order["target"] = int(order["target"]) + len(lead) - 1
    for stop in order["stops"]:
        stop["index"] = None
    place_stops(order, model)


def current_index(order: Order, last_node_id: str | None, last_seq: int | None) -> int:
    """Index in the order of the node the vehicle last reported (0 when it reported none of ours)."""
    if last_seq is None or last_seq % 2:
        return 0
    index = last_seq // 2
    nodes = order["nodes"]
    return index if index < len(nodes) and nodes[index] == last_node_id else 0


def effective_target(order: Order) -> int:
    """How many nodes may be released now: the target, capped by a hold, at least what is released."""
    target = min(int(order["target"]), len(order["nodes"]))
    if order["hold"] is not None:
        target = min(target, int(order["hold"]) + 1)
    return max(target, len(order["base"]), 1)


def needs_update(order: Order) -> bool:
    """Whether an order (update) must be sent: never sent, more nodes to release, or a changed horizon."""
    if order["status"] != "open":
        return False
    return (
        order["update_id"] < 0
        or effective_target(order) > len(order["base"])
        or bool(order.get("horizon_changed"))
    )


def replace_horizon(order: Order, after_dp: Sequence[str], model: SiteModel) -> None:
    """Replace everything after the decision point with ``after_dp`` (then legs to the remaining stops)."""
    released = len(order["base"])
    keep = order["nodes"][: max(released, 1)]
    new = [*keep, *expand(model, [keep[-1], *after_dp])[1:]] if after_dp else list(keep)
    old = order["nodes"]
    order["nodes"] = new
    for stop in order["stops"]:
        if stop["index"] is not None and stop["index"] >= released:
            stop["index"] = None
    place_stops(order, model)
    if order["nodes"] != old:
        order["horizon_changed"] = True
    order["target"] = min(int(order["target"]), len(order["nodes"]))


def apply_grant(
    order: Order, route: Sequence[str], granted: int, vehicle_index: int, model: SiteModel
) -> None:
    """Extend the order by a GRANT: ``route[0]`` is where the vehicle stands or last passed, it may drive
    up to ``route[granted - 1]``, the rest of ``route`` is the horizon.

    The released base must be a prefix of the route from the vehicle's node on (grants never shrink and
    the base never changes); RejectedRecord otherwise, as for a grant of an older plan. A task's or
    charge's destinations stay: a plan that ends before them is followed by legs to them in the horizon."""
    base_ids = order["nodes"][: len(order["base"])]
    route = expand(model, route)
    if order["kind"] == "move":  # an order of traffic's own: its goal is where the latest plan ends
        order["stops"] = [{"node": route[-1], "actions": [], "index": None}]
    if not base_ids:  # not sent yet: the grant defines the order
        order["nodes"] = list(route)
        for stop in order["stops"]:
            stop["index"] = None
        place_stops(order, model)
        order["target"] = max(int(order["target"]), min(granted, len(route)), 1)
        return
    released = len(base_ids)
    match = None
    # Where the grant's route starts in the base: at the vehicle's node or ahead of it, or, for a grant
    # decided before the vehicle's latest progress reached traffic, behind it.
    here = min(vehicle_index, released - 1)
    for j in [*range(here, released), *range(here - 1, -1, -1)]:
        overlap = base_ids[j:]
        if list(route[: len(overlap)]) == overlap:
            match = j
            break
    if match is None:
        raise RejectedRecord(
            f"GRANT route {list(route[:4])}... does not continue the released base of order "
            f"{order['order_id']} (decision point {base_ids[-1]!r}, sequenceId {2 * (released - 1)})"
        )
    k = released - 1 - match  # index of the decision point in the grant's route
    replace_horizon(order, route[k + 1 :], model)
    order["target"] = max(int(order["target"]), released + max(0, min(granted, len(route)) - 1 - k))


# ------------------------------------------------------------------------------------------- messages
def _node(order: Order, index: int, released: bool, model: SiteModel, map_id: str) -> Node:
    node_id = order["nodes"][index]
    x, y = model.positions[node_id]
    actions: list[Action] = []
    for stop in order["stops"]:
        if stop["index"] == index:
            actions.extend(stop["actions"])
    return {
        "nodeId": node_id,
        "sequenceId": 2 * index,
        "released": released,
        "nodePosition": {"x": x, "y": y, "mapId": map_id},
        "actions": actions,
    }


def _edge(order: Order, index: int, released: bool, model: SiteModel, major: str) -> Edge:
    a, b = order["nodes"][index], order["nodes"][index + 1]
    lane = model.lane(a, b)
    if lane is None:
        raise RejectedRecord(f"no lane from {a!r} to {b!r} on site {model.site_id!r}")
    edge_id = lane[0]
    nodes = order["nodes"]
    for j in range(index):  # a lane driven again in the same order: some vehicles want unique edgeIds
        earlier = model.lane(nodes[j], nodes[j + 1])
        if earlier is not None and earlier[0] == edge_id:
            edge_id = f"{lane[0]}@{2 * index + 1}"
            break
    if major == "2":
        return {
            "edgeId": edge_id,
            "sequenceId": 2 * index + 1,
            "released": released,
            "startNodeId": a,
            "endNodeId": b,
            "actions": [],
        }
    return {"edgeId": edge_id, "sequenceId": 2 * index + 1, "released": released, "actions": []}


def issue(
    order: Order,
    *,
    model: SiteModel,
    map_id: str,
    major: str,
    max_nodes: int | None = None,
    from_update: int | None = None,
    stitch_actions: bool = True,
) -> OrderBody:
    """Release what may be released and return the next order (update) body: ``orderId``,
    ``orderUpdateId`` (+1), nodes and edges (the caller adds the header).

    Stitching: the update starts with the decision point of update ``from_update`` (default: the previous
    one; an older one when the vehicle missed updates) exactly as it was sent. ``max_nodes`` (the
    vehicle's ``maxArrayLens``) truncates the horizon first, then holds releases back for a later update."""
    base = order["base"]
    base_edges = order["base_edges"]
    previous = order["update_id"] if from_update is None else from_update
    start = 0 if previous < 0 else int(order["bases"][str(previous)]) - 1
    target = effective_target(order)
    if max_nodes is not None and max_nodes > 0:
        target = min(target, max(start + max_nodes, len(base)))
    for i in range(len(base), target):
        base.append(_node(order, i, True, model, map_id))
        if i > 0:
            base_edges.append(_edge(order, i - 1, True, model, major))
    order["update_id"] += 1
    order["bases"][str(order["update_id"])] = len(base)
    order["starts"][str(order["update_id"])] = start
    order["horizon_changed"] = False
    return body(order, order["update_id"], model=model, map_id=map_id, major=major, max_nodes=max_nodes,
                stitch_actions=stitch_actions)  # fmt: skip


def body(
    order: Order,
    update_id: int,
    *,
    model: SiteModel,
    map_id: str,
    major: str,
    max_nodes: int | None = None,
    stitch_actions: bool = True,
) -> OrderBody:
    """The body of an update already issued, as it was sent (valid while it is the latest update: the
    horizon is rebuilt from the current route).

    ``stitch_actions=False`` sends the stitching node of an update without its actions (for 2.0 vehicles,
    see ``control._stitch_actions``); otherwise it is sent exactly as it was, actions included."""
    base = order["base"]
    released = int(order["bases"][str(update_id)])
    start = int(order["starts"][str(update_id)])
    horizon_end = len(order["nodes"])
    if max_nodes is not None and max_nodes > 0:
        horizon_end = min(horizon_end, start + max_nodes)
    nodes = [*base[start:released]]
    if update_id > 0 and not stitch_actions and nodes:
        nodes[0] = {**nodes[0], "actions": []}
    edges = [*order["base_edges"][start : max(released - 1, start)]]
    for i in range(released, horizon_end):
        nodes.append(_node(order, i, False, model, map_id))
        edges.append(_edge(order, i - 1, False, model, major))
    return {
        "orderId": order["order_id"],
        "orderUpdateId": update_id,
        "nodes": nodes,
        "edges": edges,
    }
