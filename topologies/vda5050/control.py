"""Decisions out: scheduler decisions -> orders, order updates and instant actions; and what the vehicle's
states say about them (accepted, rejected, done, failed, cancelled, missed).

Per vehicle: ``current`` (the order the vehicle has or is about to get) and ``pending`` (the next one,
sent once the vehicle is idle: VDA 5050 accepts a new order only then). How each decision maps:

- ASSIGN: an order to the route's end with a ``pick`` at the task's pickup node and a ``drop`` at its
  drop-off node; the whole route released, or, with ``await_grants``, only its start node.
- GRANT: releases the base up to ``route[granted - 1]`` and makes the rest of the route the horizon, as
  an order update (same orderId, next orderUpdateId, stitched on the decision point); a grant with no open
  order opens one (orderId = plan id).
- CHARGE: an order to the charger with ``startCharging`` there. UNASSIGN: ``cancelOrder``.
- HOLD: no release past the hold node; ``startPause`` when the base already passes it. RESUME: releases
  again and ``stopPause``. REROUTE: a new horizon after the decision point, or, when the base would have to
  change, ``cancelOrder`` and a new order along the new route.

A decision that cannot apply (an older plan's grant, a grant that does not continue the released base, a
route off the map) raises RejectedRecord: the decision is dead-lettered with the reason and nothing is
sent. MQTT QoS 0 loses messages, so every state is also compared with what was sent: an order or update
the vehicle has not acknowledged after ``resend_after_ms`` is sent again (the identical update, which a
vehicle ignores if it had it; or, when it missed several, one update stitched onto the last it has), and
so is a ``cancelOrder`` it has not carried out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict, cast

from schemas import vda
from schemas.errors import RejectedRecord
from schemas.records import Decision
from topologies.kernel import Output
from topologies.vda5050 import orders as ords
from topologies.vda5050 import records
from topologies.vda5050.config import VdaConfig
from topologies.vda5050.inbound import REJECTIONS, Report
from topologies.vda5050.messages import outbound
from topologies.vda5050.protocol import (
    Action,
    Header,
    InstantActions,
    InstantActionsBody,
    OrderBody,
    OutboundMessage,
)
from topologies.vda5050.sitemodel import MapLookup, SiteModel

if TYPE_CHECKING:
    from topologies.vda5050.vehicle import VehicleState

__all__ = ["Orders", "on_decision", "on_state", "send"]


class Orders(TypedDict):
    """A vehicle's orders (state sub-key ``builder.STATE_ORDERS``)."""

    current: ords.Order | None  # the order the vehicle has or is about to get
    pending: ords.Order | None  # the next one, sent once the vehicle is idle


_TERMINAL = frozenset({"FINISHED", "FAILED"})
_MAX_REMEMBERED = 64


def send(v: VehicleState, topic: str, body: OrderBody | InstantActionsBody, at: int) -> Output:
    """An outbound message with its header (headerId per topic, +1 per message), validated against the
    official schema of the vehicle's version; a message that does not validate is a bug: ValueError."""
    header = int(v["hid"].get(topic, -1)) + 1
    v["hid"] = {**v["hid"], topic: header}
    head: Header = {
        "headerId": header,
        "timestamp": vda.format_timestamp(at),
        "version": v["version"],
        "manufacturer": v["manufacturer"],
        "serialNumber": v["serial"],
    }
    message = cast(OutboundMessage, {**head, **body})  # an order or instantActions, as ``topic`` says
    if topic == "instantActions" and str(v["version"]).startswith("2.0."):
        # The 2.0.0 schema names the array "instantActions" (2.1 renamed it "actions"): 2.0 vehicles get
        # both, which is valid against either schema.
        actions = cast(InstantActions, message)
        actions["instantActions"] = actions["actions"]
    problems = vda.problems(topic, message, v["release"])
    if problems:
        raise ValueError(f"built an invalid {topic} for {v['robot_id']}: {'; '.join(problems)}")
    return records.output(records.OUTBOUND, outbound(v["robot_id"], v["prefix"], topic, message))


def _instant(v: VehicleState, action_type: str, action_id: str, at: int,
             params: Mapping[str, str] | None = None) -> Output:  # fmt: skip
    act: Action = {
        "actionType": action_type,
        "actionId": action_id,
        "blockingType": "NONE" if v["major"] == "3" else "HARD",
    }
    if params:
        act["actionParameters"] = [{"key": k, "value": val} for k, val in params.items()]
    return send(v, "instantActions", {"actions": [act]}, at)


def _model(v: VehicleState, site_id: str | None, maps: MapLookup) -> SiteModel:
    model = maps(v["tenant_id"], site_id or v["site_id"])
    if model is None:
        raise RejectedRecord(f"no map of site {site_id or v['site_id']!r} is known: cannot build an order")
    return model


def _route(decision: Decision) -> list[str]:
    return [str(w["node_id"]) for w in decision.get("route") or ()]


def _task_stops(
    order_id: str, assign: Decision, goal: str, config: VdaConfig
) -> list[tuple[str, list[Action]]]:
    """An ASSIGN's stops: pick at its task's pickup node, drop at its drop-off node (dispatch copies them
    from the task's spec), each with its labels as action parameters; else just the route's goal."""
    labels = assign.get("labels") or {}
    params = {"stationType": labels.get("stationType", config.station_type),
              "loadType": labels.get("loadType", config.load_type)}  # fmt: skip
    if labels.get("loadId"):
        params["loadId"] = labels["loadId"]
    stops: list[tuple[str, list[Action]]] = []
    pickup, dropoff = assign.get("pickup_node"), assign.get("dropoff_node")
    if pickup:
        stops.append((pickup, [ords.action(order_id, 0, "pick", params)]))
    if dropoff:
        stops.append((dropoff, [ords.action(order_id, 1, "drop", params)]))
    return stops or [(goal, [])]


def _vehicle_index(v: VehicleState, order: ords.Order) -> int:
    rep = v.get("report")
    if not rep or rep["order_id"] != order["order_id"]:
        return 0
    return ords.current_index(order, rep["last_node"], rep["last_seq"])


def _active(order: ords.Order | None) -> bool:
    return order is not None and order["status"] in ("open", "cancelling")


# ------------------------------------------------------------------------------------------ decisions
def on_decision(
    v: VehicleState, orders: Orders, decision: Decision, at: int, maps: MapLookup, config: VdaConfig
) -> list[Output]:
    """Apply one decision about this vehicle (it is known: the caller checked)."""
    decision_id = str(decision["decision_id"])
    if decision_id in v["decisions"]:
        return []  # the same decision again (a replay): it was applied
    v["decisions"] = [*v["decisions"][-(_MAX_REMEMBERED - 1) :], decision_id]
    kind = decision["kind"]
    out: list[Output] = []
    if kind in ("ASSIGN", "CHARGE"):
        model = _model(v, decision.get("site_id"), maps)
        route = _route(decision)
        if not route:
            raise RejectedRecord(f"{kind} {decision_id} has an empty route")
        if kind == "ASSIGN":
            stops = _task_stops(decision_id, decision, route[-1], config)
        else:
            stops = [(route[-1], [ords.action(decision_id, 0, "startCharging")])]
        order = ords.new_order(
            order_id=decision_id,
            kind="task" if kind == "ASSIGN" else "charge",
            route=route,
            stops=stops,
            release_all=not config.await_grants,
            model=model,
            task_id=decision.get("task_id") if kind == "ASSIGN" else None,
            decision_id=decision_id,
        )
        _start(v, orders, order, at, out)
    elif kind == "UNASSIGN":
        task_id = decision.get("task_id")
        pending = orders.get("pending")
        if pending is not None and pending.get("task_id") == task_id:
            orders["pending"] = None
        current = orders.get("current")
        if current is not None and current["status"] == "open" and current.get("task_id") == task_id:
            _cancel(v, current, at, out)
    elif kind == "GRANT":
        _grant(v, orders, decision, at, maps, out)
    elif kind in ("HOLD", "RESUME", "REROUTE"):
        current = orders.get("current")
        if current is not None and current["status"] == "open":
            if kind == "HOLD":
                _hold(v, current, _route(decision), at, out)
            elif kind == "RESUME":
                current["hold"] = None
                _unpause(v, at, out)
            else:
                _reroute(v, orders, current, decision, at, maps, config, out)
    else:
        return out
    _pump(v, orders, at, maps, config, out, trigger="decision")
    return out


def _start(v: VehicleState, orders: Orders, order: ords.Order, at: int, out: list[Output]) -> None:
    current = orders.get("current")
    if _active(current):
        assert current is not None
        if current["status"] == "open":
            _cancel(v, current, at, out)
        orders["pending"] = order
    else:
        orders["current"], orders["pending"] = order, None


def _cancel(v: VehicleState, order: ords.Order, at: int, out: list[Output]) -> None:
    if order["update_id"] < 0:
        order["status"] = "cancelled"  # never sent
        return
    order["status"] = "cancelling"
    order["cancel_action"] = cancel = f"{order['order_id']}:cancelOrder"
    order["sent_at"] = at
    params = {"orderId": order["order_id"]} if v["major"] == "3" else None
    out.append(_instant(v, "cancelOrder", cancel, at, params))


def _pause(v: VehicleState, at: int, out: list[Output]) -> None:
    if not v.get("paused_by_us"):
        v["paused_by_us"] = True
        out.append(_instant(v, "startPause", f"pause:{v['hid'].get('instantActions', -1) + 1}", at))


def _unpause(v: VehicleState, at: int, out: list[Output]) -> None:
    if v.get("paused_by_us"):
        v["paused_by_us"] = False
        out.append(_instant(v, "stopPause", f"resume:{v['hid'].get('instantActions', -1) + 1}", at))


def _hold(v: VehicleState, order: ords.Order, route: list[str], at: int, out: list[Output]) -> None:
    """Stop at the last node of ``route`` (the way to it, next node first), or where it stands."""
    if not route:
        _pause(v, at, out)
        return
    nodes, here = order["nodes"], _vehicle_index(v, order)
    index = None
    for skipped in range(len(route)):  # the vehicle may have passed nodes of the route since
        rest = route[skipped:]
        if nodes[here + 1 : here + 1 + len(rest)] == rest:
            index = here + len(rest)
            break
    if index is None:
        index = next((i for i in range(here, len(nodes)) if nodes[i] == route[-1]), None)
    if index is None:
        _pause(v, at, out)
        return
    order["hold"] = index
    if index < len(order["base"]) - 1:  # already released beyond it: stop now
        _pause(v, at, out)


def _reroute(v: VehicleState, orders: Orders, order: ords.Order, decision: Decision, at: int,
             maps: MapLookup, config: VdaConfig, out: list[Output]) -> None:  # fmt: skip
    route = _route(decision)
    if not route:
        return
    model = _model(v, decision.get("site_id"), maps)
    order["hold"] = None
    _unpause(v, at, out)
    try:
        ords.apply_grant(order, route, len(route) if not config.await_grants else 1,
                         _vehicle_index(v, order), model)  # fmt: skip
        return
    except RejectedRecord:
        pass
    # The new way leaves the released base: cancel, then a new order along it with the stops left.
    rep = v.get("report")
    done = (rep.get("actions") if rep else None) or {}
    stops = [(s["node"], s["actions"]) for s in order["stops"]
             if not s["actions"] or any(done.get(a["actionId"]) != "FINISHED" for a in s["actions"])]  # fmt: skip
    fresh = ords.new_order(
        order_id=str(decision["decision_id"]),
        kind=order["kind"],
        route=route,
        stops=stops or [(route[-1], [])],
        release_all=not config.await_grants,
        model=model,
        task_id=order.get("task_id"),
        decision_id=str(decision["decision_id"]),
    )
    _start(v, orders, fresh, at, out)


def _grant(v: VehicleState, orders: Orders, decision: Decision, at: int, maps: MapLookup,
           out: list[Output]) -> None:  # fmt: skip
    plan_id, plan_seq = decision.get("plan_id"), decision.get("plan_seq")
    granted = decision.get("granted")
    route = _route(decision)
    if plan_id is None or plan_seq is None or granted is None or not route:
        raise RejectedRecord("GRANT without plan_id, plan_seq, granted or route")
    model = _model(v, decision.get("site_id"), maps)
    target = orders.get("pending") or orders.get("current")
    if target is not None and target["status"] != "open":
        target = None
    plans: list[str] = v.setdefault("plans", [])
    if target is not None and target.get("plan_id") == plan_id:
        applied = target["plan_seq"]
        assert applied is not None  # set together with plan_id
        if int(plan_seq) <= applied:
            raise RejectedRecord(
                f"stale GRANT: plan {plan_id} seq {plan_seq} after seq {target['plan_seq']} was applied"
            )
    elif plan_id in plans:
        raise RejectedRecord(f"stale GRANT: plan {plan_id} was superseded by a later plan")
    if target is None:
        target = ords.new_order(order_id=str(plan_id), kind="move", route=route, stops=[(route[-1], [])],
                                release_all=False, model=model, decision_id=str(decision["decision_id"]))  # fmt: skip
        _start(v, orders, target, at, out)
    ords.apply_grant(target, route, int(granted), _vehicle_index(v, target), model)
    target["plan_id"], target["plan_seq"] = plan_id, int(plan_seq)
    if plan_id not in plans:
        v["plans"] = [*plans[-15:], plan_id]


# --------------------------------------------------------------------------------------------- sending
def _stitch_actions(v: VehicleState) -> bool:
    """Whether an update repeats the stitching node's actions. 2.1 (§6.6.2) says the stitching node is sent
    unchanged and the vehicle keeps the first order's instructions; 3.0 (§6.1.2) says its actions are sent
    again and not executed again. The 2.0 reference implementation (vda-5050-lib) instead adds a stitching
    node's actions to the decision point's, so 2.0 vehicles get the stitching node without actions."""
    return not str(v["version"]).startswith("2.0.")


def _max_nodes(v: VehicleState) -> int | None:
    limits = v.get("limits")
    return limits.get("max_nodes") if limits else None


def _send_order(v: VehicleState, order: ords.Order, at: int, model: SiteModel, config: VdaConfig,
                from_update: int | None = None) -> Output:  # fmt: skip
    body = ords.issue(order, model=model, map_id=config.map_id(model.site_id), major=v["major"],
                      max_nodes=_max_nodes(v), from_update=from_update,
                      stitch_actions=_stitch_actions(v))  # fmt: skip
    order["sent_at"] = at
    return send(v, "order", body, at)


def _resend_order(v: VehicleState, order: ords.Order, at: int, model: SiteModel, config: VdaConfig) -> Output:
    body = ords.body(order, order["update_id"], model=model, map_id=config.map_id(model.site_id),
                     major=v["major"], max_nodes=_max_nodes(v),
                     stitch_actions=_stitch_actions(v))  # fmt: skip
    order["sent_at"] = at
    return send(v, "order", body, at)


def _pump(v: VehicleState, orders: Orders, at: int, maps: MapLookup, config: VdaConfig, out: list[Output],
          trigger: str) -> None:  # fmt: skip
    """Send what is due: the pending order once the vehicle is free, the current order's first message,
    and its next update when there is more to release (after a state only once the previous update was
    acknowledged, so a long route goes out in acknowledged pieces)."""
    current = orders.get("current")
    if not _active(current) and orders.get("pending") is not None:
        current = orders["current"] = orders["pending"]
        orders["pending"] = None
    if current is None or current["status"] != "open":
        return
    model = maps(v["tenant_id"], v["site_id"])
    if model is None:
        return
    rep = v.get("report")
    if current["update_id"] < 0:
        if v.get("online") is False:
            return
        if rep is not None and not rep["idle"]:
            return  # VDA 5050 accepts a new order only from an idle vehicle: wait for it
        if rep is not None and rep["charging"]:
            asked = v.get("stop_charging_at")
            if asked is None or at - int(asked) >= config.resend_after_ms:
                v["stop_charging_at"] = at
                out.append(_instant(v, "stopCharging", f"{current['order_id']}:stopCharging", at))
            return
        if rep is not None and rep["last_node"]:
            ords.start_from(current, rep["last_node"], model)
        out.append(_send_order(v, current, at, model, config))
        return
    if ords.needs_update(current) and (trigger == "decision" or current["acked"] >= current["update_id"]):
        out.append(_send_order(v, current, at, model, config))


# ----------------------------------------------------------------------------------------- observation
def _rejection(order: ords.Order, rep: Report) -> str | None:
    """The vehicle's words when it reports that it rejected this order's latest message."""
    for error_type, level, refs, description in rep["errors"]:
        if refs.get("orderId") != order["order_id"]:
            continue
        if error_type.replace("_", "").lower() not in REJECTIONS:
            continue
        update = refs.get("orderUpdateId")
        if update is not None and update.isdigit() and int(update) < order["update_id"]:
            continue  # about an older update sent again: the vehicle keeps the newer one
        return f"{error_type} ({level}){': ' + description if description else ''}"
    return None


def _observe(v: VehicleState, order: ords.Order, rep: Report, at: int, out: list[Output]) -> None:
    ours = rep["order_id"] == order["order_id"]
    if ours:
        order["acked"] = max(int(order["acked"]), rep["update_id"])
    if order["status"] == "cancelling":
        cancel_id = order["cancel_action"]
        cancel = rep["actions"].get(cancel_id) if cancel_id is not None else None
        if cancel in _TERMINAL or not ours or rep["idle"]:
            order["status"] = "cancelled"
        return
    if order["status"] != "open" or order["update_id"] < 0:
        return
    action_ids = [a["actionId"] for s in order["stops"] for a in s["actions"]]
    rejected = _rejection(order, rep)
    failed = next((a for a in action_ids if ours and rep["actions"].get(a) == "FAILED"), None)
    if rejected or failed:
        order["status"] = "failed"
        why = f"rejected order {order['order_id']} update {order['update_id']}: {rejected}" if rejected \
            else f"action {failed} FAILED"  # fmt: skip
        subject = order.get("task_id") or v["robot_id"]
        out.append(records.output(records.ALERTS, records.alert(
            v, kind="TASK_FAILED", subject=subject, at=at,
            message=f"vehicle {v['manufacturer']}/{v['serial']} ({v['robot_id']}) {why}")))  # fmt: skip
        return
    complete = (
        ours
        and rep["update_id"] == order["update_id"]
        and len(order["base"]) == len(order["nodes"])
        and not rep["nodes"]
        and rep["last_seq"] == 2 * (len(order["nodes"]) - 1)
        and all(rep["actions"].get(a) == "FINISHED" for a in action_ids)
    )
    if complete:
        order["status"] = "done"


def _reconcile(v: VehicleState, order: ords.Order, rep: Report, at: int, maps: MapLookup,
               config: VdaConfig, out: list[Output]) -> None:  # fmt: skip
    """Send again what the vehicle evidently did not get (MQTT QoS 0 loses messages)."""
    if (
        v.get("online") is False
        or order["sent_at"] is None
        or at - int(order["sent_at"]) < config.resend_after_ms
    ):
        return
    ours = rep["order_id"] == order["order_id"]
    if order["status"] == "cancelling":
        cancel = order["cancel_action"]
        if ours and not rep["idle"] and cancel not in rep["actions"]:
            assert cancel is not None  # set with the status by _cancel
            order["sent_at"] = at
            params = {"orderId": order["order_id"]} if v["major"] == "3" else None
            out.append(_instant(v, "cancelOrder", cancel, at, params))
        return
    if order["status"] != "open" or order["update_id"] < 0:
        return
    model = maps(v["tenant_id"], v["site_id"])
    if model is None:
        return
    if ours and order["acked"] < order["update_id"]:
        if order["acked"] == order["update_id"] - 1:
            out.append(_resend_order(v, order, at, model, config))  # the same update: idempotent
        else:  # it missed several: one update stitched onto the last one it has
            out.append(_send_order(v, order, at, model, config, from_update=int(order["acked"])))
    elif not ours and order["acked"] < 0 and rep["idle"]:
        if order["update_id"] == 0:
            out.append(_resend_order(v, order, at, model, config))
        else:  # updates were issued on top of an order it never got: issue it afresh under a new id
            order["order_id"] = f"{order['decision_id'] or order['order_id']}.r{order['update_id']}"
            order.update({"base": [], "base_edges": [], "bases": {}, "starts": {}, "update_id": -1})
            out.append(_send_order(v, order, at, model, config))


def on_state(v: VehicleState, orders: Orders, rep: Report, at: int, maps: MapLookup,
             config: VdaConfig) -> tuple[tuple[str | None, str], list[Output]]:  # fmt: skip
    """Follow the vehicle's report: acknowledgements, rejections, completion, cancels, re-sends, the next
    order. Returns the task id and phase its telemetry reports, and what to send."""
    out: list[Output] = []
    current = orders.get("current")
    task: tuple[str | None, str] = (None, "NONE")
    if current is not None:
        _observe(v, current, rep, at, out)
        _reconcile(v, current, rep, at, maps, config, out)
        task = _phase(current, rep)
        finished = current["status"] in ("done", "failed", "cancelled")
        reported = current.get("task_id") is None or current.get("phase") in ("COMPLETED", "FAILED")
        if finished and (reported or current["status"] == "cancelled"):
            orders["current"] = None
    _pump(v, orders, at, maps, config, out, trigger="state")
    return task, out


def _phase(order: ords.Order, rep: Report) -> tuple[str | None, str]:
    """The task phase a state reports for the order's task (once COMPLETED or FAILED, then nothing)."""
    task_id = order.get("task_id")
    if task_id is None or order.get("phase") in ("COMPLETED", "FAILED"):
        return None, "NONE"
    status = order["status"]
    if status == "done":
        phase = "COMPLETED"
    elif status == "failed":
        phase = "FAILED"
    elif status == "open" and rep["order_id"] == order["order_id"]:
        phase = "STARTED" if order.get("phase") is None else "IN_PROGRESS"
    else:
        return None, "NONE"
    order["phase"] = phase
    return task_id, phase
