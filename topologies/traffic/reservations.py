"""The space-time reservation table: who occupies which node or lane when, indexed by node and by lane.

A robot's *plan* is a list of ``(node_id, eta_ms)``. Each waypoint reserves its node for
``[eta - margin, eta + dwell + margin]``; each consecutive pair reserves the lane between them for the
traversal ``[eta_from, eta_to]`` in that direction. A plan may end *open*: its last node is then held
until further notice (the end of a route, where a robot stands until it gets a new one; a HOLD; an
OFFLINE or ERROR robot), ``end = OPEN``. A plan whose start time is uncertain (a robot told to RESUME
starts when the decision reaches it) is reserved with a ``spread``: every window is that much longer.

The table keeps one interval list per node and per lane plus each robot's own list, so replacing one
robot's plan costs O(plan length x reservations on those nodes/lanes), independent of the fleet size.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from topologies.traffic.config import TrafficConfig
from topologies.traffic.graph import SiteView

__all__ = ["OPEN", "Plan", "Reservation", "ReservationTable", "plan_reservations"]

#: End of an open reservation (a robot that stays where it is until told otherwise).
OPEN = 1 << 62

Plan = Sequence[tuple[str, int]]


class Reservation:
    """One robot's claim on a node (``lane`` False) or a lane driven ``frm`` → ``to`` over [start, end).

    ``idx`` is the plan index of the node (of the lane's entry node). Compared by identity. A ``booking``
    is a node on the rest of the way of a robot held on its way: only robots that have not set off yet
    take it into account, so that they do not keep it waiting by taking its way (or its goal) meanwhile.
    """

    __slots__ = ("booking", "end", "frm", "idx", "key", "lane", "robot_id", "start", "to")

    def __init__(
        self,
        robot_id: str,
        key: str,
        lane: bool,
        start: int,
        end: int,
        frm: str,
        to: str,
        idx: int,
        booking: bool = False,
    ) -> None:
        self.robot_id = robot_id
        self.key = key
        self.lane = lane
        self.start = start
        self.end = end
        self.frm = frm
        self.to = to
        self.idx = idx
        self.booking = booking

    @property
    def open(self) -> bool:
        return self.end >= OPEN

    def __repr__(self) -> str:
        what = f"lane {self.key} {self.frm}->{self.to}" if self.lane else f"node {self.key}"
        end = "open" if self.open else self.end
        return f"Reservation({self.robot_id} {what} [{self.start}, {end}) #{self.idx})"


def plan_reservations(
    robot_id: str,
    plan: Plan,
    model: SiteView | None,
    config: TrafficConfig,
    *,
    open_end: bool = False,
    spread: int = 0,
    stay: int = 0,
) -> list[Reservation]:
    """The reservations of ``plan`` (lanes only where the site graph has a lane between the nodes);
    with ``spread`` every window ends that much later (the plan may start up to ``spread`` ms late); the
    last node is held ``stay`` ms longer (or until further notice with ``open_end``)."""
    out: list[Reservation] = []
    margin, dwell = config.node_margin_ms, config.dwell_ms
    last = len(plan) - 1
    lane_of = model.lane_id if model is not None else _no_lane
    for i, (node, eta) in enumerate(plan):
        end = eta + dwell + margin + spread
        if i == last:
            end = OPEN if open_end else end + stay
        out.append(Reservation(robot_id, node, False, eta - margin, end, node, node, i))
        if i < last:
            nxt, nxt_eta = plan[i + 1]
            lane_id = lane_of(node, nxt)
            if lane_id is not None:
                lane_end = max(nxt_eta, eta + 1) + spread
                out.append(Reservation(robot_id, lane_id, True, eta, lane_end, node, nxt, i))
    return out


def _no_lane(_u: str, _v: str) -> None:
    return None


class ReservationTable:
    """Reservations indexed by node, by lane and by robot; bookings in an index of their own (only
    robots that have not set off look at them)."""

    __slots__ = ("booked", "by_lane", "by_node", "by_robot")

    def __init__(self) -> None:
        self.by_node: dict[str, list[Reservation]] = {}
        self.by_lane: dict[str, list[Reservation]] = {}
        self.by_robot: dict[str, list[Reservation]] = {}
        self.booked: dict[str, list[Reservation]] = {}

    def _index(self, res: Reservation) -> dict[str, list[Reservation]]:
        return self.booked if res.booking else self.by_lane if res.lane else self.by_node

    def booked_on(self, node_id: str) -> list[Reservation]:
        """The bookings of a node (``Reservation.booking``)."""
        return self.booked.get(node_id, [])

    def at(self, res: Reservation) -> list[Reservation]:
        """The reservations on the same node or lane as ``res`` (all robots, ``res`` included if stored)."""
        return (self.by_lane if res.lane else self.by_node).get(res.key, [])

    def on_node(self, node_id: str) -> list[Reservation]:
        return self.by_node.get(node_id, [])

    def of(self, robot_id: str) -> list[Reservation]:
        return self.by_robot.get(robot_id, [])

    def remove(self, robot_id: str) -> None:
        for res in self.by_robot.pop(robot_id, ()):
            index = self._index(res)
            bucket = index[res.key]
            for i, other in enumerate(bucket):
                if other is res:
                    del bucket[i]
                    break
            if not bucket:
                del index[res.key]

    def replace(self, robot_id: str, reservations: Iterable[Reservation]) -> None:
        self.remove(robot_id)
        mine = list(reservations)
        if not mine:
            return
        self.by_robot[robot_id] = mine
        for res in mine:
            self._index(res).setdefault(res.key, []).append(res)

    def __len__(self) -> int:
        return sum(len(v) for v in self.by_robot.values())
