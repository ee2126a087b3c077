"""Conflict detection over the reservation table: vertex, edge (head-on, swaps), following distance,
no-go-zone entries, and cycles of the wait-for graph (deadlocks).

Every check looks only at the reservations of the nodes and lanes the robot itself reserves, so the
cost of checking one robot does not grow with the fleet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from topologies.traffic.config import TrafficConfig
from topologies.traffic.graph import SiteView
from topologies.traffic.reservations import Reservation, ReservationTable

__all__ = ["Clash", "ZoneHit", "clash_between", "clashes_of", "find_cycle", "zone_hits"]

VERTEX, EDGE, FOLLOWING = "VERTEX", "EDGE", "FOLLOWING"


@dataclass(frozen=True, slots=True)
class Clash:
    """A conflict between ``mine`` (the robot being checked) and ``other`` on one node or lane."""

    kind: str
    mine: Reservation
    other: Reservation
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class ZoneHit:
    """A reservation of a robot inside (node) or across (lane) a NO_GO zone."""

    zone_id: str
    res: Reservation


def clash_between(a: Reservation, b: Reservation, config: TrafficConfig) -> Clash | None:
    """The conflict between two reservations of one node or lane by different robots, if any."""
    overlap = a.start < b.end and b.start < a.end
    if not a.lane:
        if overlap:
            return Clash(VERTEX, a, b, max(a.start, b.start), min(a.end, b.end))
        return None
    if a.frm == b.to and a.to == b.frm and a.frm != a.to:
        if overlap:
            return Clash(EDGE, a, b, max(a.start, b.start), min(a.end, b.end))
        return None
    gap = abs(a.start - b.start)
    overtakes = overlap and (a.start - b.start) * (a.end - b.end) < 0
    if gap < config.min_headway_ms or overtakes:
        first = min(a.start, b.start)
        return Clash(FOLLOWING, a, b, first, max(a.start, b.start) + config.min_headway_ms)
    return None


def clashes_of(
    table: ReservationTable,
    robot_id: str,
    config: TrafficConfig,
    mine: Iterable[Reservation] | None = None,
    *,
    bookings: Callable[[str], bool] | None = None,
) -> list[Clash]:
    """Conflicts of ``robot_id``'s reservations (or of candidate ``mine``) with other robots', by time;
    also with the ways that held robots have booked, of those robots for which ``bookings`` is true."""
    found: list[Clash] = []
    for res in table.of(robot_id) if mine is None else mine:
        if res.booking:
            continue
        for other in table.at(res):
            if other.robot_id == robot_id:
                continue
            clash = clash_between(res, other, config)
            if clash is not None:
                found.append(clash)
        if bookings is not None and not res.lane:
            for other in table.booked_on(res.key):
                if other.robot_id != robot_id and bookings(other.robot_id):
                    clash = clash_between(res, other, config)
                    if clash is not None:
                        found.append(clash)
    found.sort(key=lambda c: (c.start, c.other.robot_id, c.mine.idx))
    return found


def zone_hits(reservations: Iterable[Reservation], model: SiteView | None) -> list[ZoneHit]:
    """The reservations that enter a NO_GO zone, in plan order."""
    if model is None or not (model.nogo_nodes or model.nogo_lanes):
        return []
    hits: list[ZoneHit] = []
    nodes = model.nogo_nodes
    for res in reservations:
        if res.lane and (res.frm in nodes or res.to in nodes):
            continue  # entering or leaving through a no-go node: that node is the hit reported
        zone = (model.nogo_lanes if res.lane else nodes).get(res.key)
        if zone is not None:
            hits.append(ZoneHit(zone, res))
    hits.sort(key=lambda h: (h.res.idx, h.res.lane))
    return hits


def find_cycle(
    waits: Mapping[str, Iterable[str]] | Callable[[str], Iterable[str]], start: str, max_len: int = 16
) -> list[str] | None:
    """A cycle of the wait-for graph through ``start`` of at most ``max_len`` robots, or None.

    ``waits`` gives the robots a robot waits for, as a mapping or a function (evaluated lazily, so a
    search touches only the robots reachable from ``start`` within ``max_len`` hops). Returns the
    cycle's members in wait order, starting at ``start``.
    """
    edges: Callable[[str], Iterable[str]] = (
        waits if callable(waits) else (lambda rid: waits.get(rid, ()))  # type: ignore[union-attr]
    )
    path: list[str] = [start]
    on_path = {start}
    seen: set[str] = set()  # fully explored without hitting the length bound: no cycle through them
    cut = [False]  # per frame: the bound cut the search below it
    iters = [iter(sorted(edges(start)))]
    while iters:
        nxt = next(iters[-1], None)
        if nxt is None:
            iters.pop()
            done = path.pop()
            on_path.discard(done)
            was_cut = cut.pop()
            if was_cut and cut:
                cut[-1] = True
            elif not was_cut:
                seen.add(done)
            continue
        if nxt == start:
            return list(path)
        if nxt in on_path or nxt in seen:
            continue
        if len(path) >= max_len:
            cut[-1] = True
            continue
        path.append(nxt)
        on_path.add(nxt)
        cut.append(False)
        iters.append(iter(sorted(edges(nxt))))
    return None
