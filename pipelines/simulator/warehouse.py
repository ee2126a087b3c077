"""A deterministic sample warehouse: a SiteMap dict (docs/records.md) for the simulator and demos.

Layout (metres, y up)::

    DROP     DROP     DROP     ...            outbound docks (y=33), spurs off the north cross-aisle
    X--------X--------X--------X ... X---E    north cross-aisle (y=30)          E: east corridor,
    |        |        |        |     |   E-C                                      chargers C (x+3)
    A        A        A        A     A   E-C  aisles: AISLE nodes every 3 m
    X--------X--------X--------X ... X---E    middle cross-aisle (y=15)
    A        A        A        A     A   E-C
    X--------X--------X--------X ... X---E    south cross-aisle (y=0)
  P-W  PICK     PICK     PICK                 W: west corridor (nodes every 1.5 m), parking P on both
                                              sides; inbound docks (y=-3) off the south cross-aisle

The seed picks which two aisle halves are one-way (one northbound, one southbound) and where the
NO_GO zone sits (inside a rack block, so it covers no lane). Everything else is fixed, so the same
arguments always give the same map, event id included.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from .ids import SeededUuid7

__all__ = ["DEMO_EPOCH_MS", "demo_site"]

DEMO_EPOCH_MS = 1_735_689_600_000
"""2025-01-01T00:00:00Z: the default `occurred_at` of the demo map, so the map is reproducible."""

_AISLE_PITCH = 4.0
_FIRST_AISLE_X = 6.0
_ROWS = (0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0, 21.0, 24.0, 27.0, 30.0)
_CROSS = {0.0: "S", 15.0: "M", 30.0: "N"}
_CORRIDOR_STEP = 1.5
_SPUR_SPEED = 0.6
_MIN_AISLES = 4


def _aisle_node(aisle: int, y: float) -> str:
    if y in _CROSS:
        return f"X{aisle:02d}-{_CROSS[y]}"
    return f"A{aisle:02d}-{_ROWS.index(y):02d}"


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.lanes: list[dict[str, Any]] = []

    def node(self, node_id: str, x: float, y: float, kind: str, name: str | None = None) -> str:
        self.nodes.append({"id": node_id, "x": float(x), "y": float(y), "kind": kind, "name": name})
        return node_id

    def lane(self, a: str, b: str, *, one_way: bool = False, speed_limit: float | None = None) -> None:
        self.lanes.append(
            {
                "id": f"{a}__{b}",
                "from_node": a,
                "to_node": b,
                "bidirectional": not one_way,
                "speed_limit": speed_limit,
            }
        )


def demo_site(
    site_id: str = "demo",
    tenant_id: str = "acme",
    seed: int = 0,
    *,
    aisles: int = 10,
    parking_spots: int = 30,
    chargers: int = 8,
    occurred_at: int = DEMO_EPOCH_MS,
) -> dict[str, Any]:
    """A SiteMap dict of a warehouse with `aisles` parallel aisles (10 give 190 nodes).

    Parking spots (at most 39) line the west corridor, chargers (at most 11) the east corridor.
    Lane lengths are the Euclidean distances of their end nodes; spur lanes to docks, parking spots
    and chargers carry a 0.6 m/s speed limit.
    """
    if aisles < _MIN_AISLES:
        raise ValueError(f"aisles must be >= {_MIN_AISLES}, got {aisles}")
    rng = random.Random(f"demo_site:{seed}")
    b = _Builder()
    xs = [_FIRST_AISLE_X + _AISLE_PITCH * i for i in range(aisles)]

    # Aisles and the three cross-aisles.
    one_way_north, one_way_south = rng.sample(range(aisles), 2)
    for i, x in enumerate(xs):
        for y in _ROWS:
            kind = "WAYPOINT" if y in _CROSS else "AISLE"
            b.node(
                _aisle_node(i, y), x, y, kind, None if y in _CROSS else f"Aisle {i + 1} bay {_ROWS.index(y)}"
            )
        for y0, y1 in itertools.pairwise(_ROWS):
            lower, upper = _aisle_node(i, y0), _aisle_node(i, y1)
            if i == one_way_north and y1 <= 15.0:
                b.lane(lower, upper, one_way=True)
            elif i == one_way_south and y0 >= 15.0:
                b.lane(upper, lower, one_way=True)
            else:
                b.lane(lower, upper)
    for i in range(aisles - 1):
        for y in _CROSS:
            b.lane(_aisle_node(i, y), _aisle_node(i + 1, y))

    # West corridor with parking on both sides (east side skips the cross-aisle rows).
    west = [
        b.node(f"W{k:02d}", 0.0, k * _CORRIDOR_STEP, "WAYPOINT") for k in range(int(30 / _CORRIDOR_STEP) + 1)
    ]
    for w0, w1 in itertools.pairwise(west):
        b.lane(w0, w1)
    for k, w in enumerate(west):
        if k * _CORRIDOR_STEP in _CROSS:
            b.lane(w, _aisle_node(0, k * _CORRIDOR_STEP))
    slots = [(-2.5, k) for k in range(len(west))]
    slots += [(2.5, k) for k in range(len(west)) if k * _CORRIDOR_STEP not in _CROSS]
    if not 0 <= parking_spots <= len(slots):
        raise ValueError(f"parking_spots must be within 0..{len(slots)}, got {parking_spots}")
    for n, (dx, k) in enumerate(slots[:parking_spots], start=1):
        spot = b.node(f"P{n:02d}", dx, k * _CORRIDOR_STEP, "PARKING", f"Parking {n}")
        b.lane(west[k], spot, speed_limit=_SPUR_SPEED)

    # East corridor with chargers.
    x_east = xs[-1] + _AISLE_PITCH
    east = [b.node(f"E{k:02d}", x_east, y, "WAYPOINT") for k, y in enumerate(_ROWS)]
    for e0, e1 in itertools.pairwise(east):
        b.lane(e0, e1)
    for k, y in enumerate(_ROWS):
        if y in _CROSS:
            b.lane(_aisle_node(aisles - 1, y), east[k])
    charger_rows = [k for k, y in enumerate(_ROWS) if y not in _CROSS] + [
        k for k, y in enumerate(_ROWS) if y in _CROSS
    ]
    if not 0 <= chargers <= len(charger_rows):
        raise ValueError(f"chargers must be within 0..{len(charger_rows)}, got {chargers}")
    charger_list = []
    for n, k in enumerate(sorted(charger_rows[:chargers]), start=1):
        node = b.node(f"C{n:02d}", x_east + 3.0, _ROWS[k], "CHARGER", f"Charger {n}")
        b.lane(east[k], node, speed_limit=_SPUR_SPEED)
        charger_list.append({"id": f"CHG{n:02d}", "node_id": node})

    # Inbound docks (PICKUP) south, outbound docks (DROPOFF) north, alternating aisles.
    for n, i in enumerate(range(0, aisles, 2), start=1):
        dock = b.node(f"PICK{n}", xs[i], -3.0, "PICKUP", f"Inbound dock {n}")
        b.lane(_aisle_node(i, 0.0), dock, speed_limit=_SPUR_SPEED)
    for n, i in enumerate(range(1, aisles, 2), start=1):
        dock = b.node(f"DROP{n}", xs[i], 33.0, "DROPOFF", f"Outbound dock {n}")
        b.lane(_aisle_node(i, 30.0), dock, speed_limit=_SPUR_SPEED)

    # A NO_GO zone inside a rack block between two aisles: it touches no lane.
    block = rng.randrange(aisles - 1)
    y_lo, y_hi = (4.0, 11.0) if rng.random() < 0.5 else (19.0, 26.0)
    x_lo, x_hi = xs[block] + 1.0, xs[block] + _AISLE_PITCH - 1.0
    zone = {
        "id": "NOGO-1",
        "kind": "NO_GO",
        "polygon": [
            {"x": x_lo, "y": y_lo},
            {"x": x_hi, "y": y_lo},
            {"x": x_hi, "y": y_hi},
            {"x": x_lo, "y": y_hi},
        ],
    }

    return {
        "event_id": SeededUuid7(f"site:{tenant_id}:{site_id}:{seed}")(occurred_at),
        "tenant_id": tenant_id,
        "site_id": site_id,
        "occurred_at": occurred_at,
        "version": 1,
        "name": f"{site_id} demo warehouse",
        "nodes": b.nodes,
        "lanes": b.lanes,
        "zones": [zone],
        "chargers": charger_list,
    }
