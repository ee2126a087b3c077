"""Generated warehouse layouts (SiteMap dicts) for tests and benchmarks, and site maps from files.

:func:`grid_warehouse` draws a shelf-block warehouse on a grid of square cells (``pitch`` metres):

    W W W ... (west edge), E E E ... (east edge): workstations (DROPOFF), one spur per row off the
      corridors: where robots bring what they fetched (goods to person)
    ║ two-lane corridors west and east (one lane each way, crossovers at every row)
    ═ cross-aisles: the first and last row, and one after every ``block_rows`` rows of shelves
    │ one-cell aisles: every third column; between two aisles a block two shelves wide
    pockets: shelf cells opening onto an aisle, every ``pocket_every`` rows: on an aisle's west side
      storage locations (PICKUP: robots fetch from there), on its east side parking (PARKING: robots
      park under the shelves, out of the aisles)
    C chargers: spurs off the south cross-aisle

With ``one_way`` (the default), aisles alternate north- and southbound, cross-aisles east- and
westbound, and each corridor has one lane each way: the street grid most AMR warehouses use, so that
robots meet head-on only in spurs. Every lane is 1 ``pitch`` long; spurs are two-way.

:func:`small_warehouse` is 60 x 35 cells (1,988 nodes), :func:`large_warehouse` 500 x 140 cells (69,008).
:func:`load_site_map` reads a SiteMap from a JSON file (the format of docs/records.md).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from .ids import SeededUuid7
from .warehouse import DEMO_EPOCH_MS

__all__ = ["grid_warehouse", "large_warehouse", "load_site_map", "small_warehouse"]

_REQUIRED = ("site_id", "nodes", "lanes")


def _cell(c: int, r: int) -> str:
    return f"c{c:03d}r{r:03d}"


class _Grid:
    def __init__(self, pitch: float) -> None:
        self.pitch = pitch
        self.nodes: dict[str, dict[str, Any]] = {}
        self.lanes: list[dict[str, Any]] = []
        self._pairs: set[tuple[str, str]] = set()

    def node(self, c: int, r: int, kind: str, node_id: str | None = None, name: str | None = None) -> str:
        nid = node_id or _cell(c, r)
        if nid not in self.nodes:
            self.nodes[nid] = {
                "id": nid,
                "x": round(c * self.pitch, 3),
                "y": round(r * self.pitch, 3),
                "kind": kind,
                "name": name,
            }
        return nid

    def lane(self, a: str, b: str, *, one_way: bool) -> None:
        key = (min(a, b), max(a, b))
        if key in self._pairs:
            return
        self._pairs.add(key)
        self.lanes.append(
            {
                "id": f"{a}-{b}",
                "from_node": a,
                "to_node": b,
                "bidirectional": not one_way,
                "speed_limit": None,
            }
        )


def grid_warehouse(
    *,
    width: int = 60,
    height: int = 35,
    block_rows: int = 8,
    pocket_every: int = 1,
    station_every: int = 1,
    chargers: int = 8,
    one_way: bool = True,
    pitch: float = 1.5,
    site_id: str = "grid",
    tenant_id: str = "acme",
    name: str | None = None,
    occurred_at: int = DEMO_EPOCH_MS,
) -> dict[str, Any]:
    """A SiteMap dict of a shelf-block warehouse ``width`` x ``height`` cells (see the module doc)."""
    if width < 12 or height < 8 or block_rows < 1 or pocket_every < 1 or station_every < 1:
        raise ValueError("need width >= 12, height >= 8 and positive block_rows, pocket_every, station_every")
    g = _Grid(pitch)
    first, last = 1, height - 2  # rows of the outer cross-aisles
    west, east = (1, 2), (width - 3, width - 2)  # corridor columns (southbound lane first)
    inner = range(west[1] + 1, east[0])  # columns between the corridors
    cross = sorted({first, last, *range(first + block_rows + 1, last, block_rows + 1)})
    aisles = [c for c in inner if (c - inner.start) % 3 == 0]
    if aisles and aisles[-1] != inner[-1]:
        aisles.append(inner[-1])  # the last inner column is an aisle too, so no shelf touches the corridor
    aisle_set = set(aisles)

    # Corridors: one lane each way, crossovers at every row.
    for lane_c, northbound in ((west[0], False), (west[1], True), (east[0], False), (east[1], True)):
        for r in range(first, last):
            lo, hi = g.node(lane_c, r, "WAYPOINT"), g.node(lane_c, r + 1, "WAYPOINT")
            if not one_way:
                g.lane(lo, hi, one_way=False)
            elif northbound:
                g.lane(lo, hi, one_way=True)
            else:
                g.lane(hi, lo, one_way=True)
    for a, b in (west, east):
        for r in range(first, last + 1):
            g.lane(_cell(a, r), _cell(b, r), one_way=False)

    # Cross-aisles from corridor to corridor, alternating direction.
    for k, r in enumerate(cross):
        eastbound = k % 2 == 0
        cols = [west[1], *inner, east[0]]
        for c0, c1 in itertools.pairwise(cols):
            west_end = g.node(c0, r, "WAYPOINT")
            east_end = g.node(c1, r, "WAYPOINT")
            if not one_way:
                g.lane(west_end, east_end, one_way=False)
            elif eastbound:
                g.lane(west_end, east_end, one_way=True)
            else:
                g.lane(east_end, west_end, one_way=True)

    # Aisles between the cross-aisles, alternating direction; pockets in the shelves beside them.
    for k, c in enumerate(aisles):
        northbound = k % 2 == 0
        for r in range(first, last):
            lo = g.node(c, r, "WAYPOINT" if r in cross else "AISLE")
            hi = g.node(c, r + 1, "WAYPOINT" if r + 1 in cross else "AISLE")
            if not one_way:
                g.lane(lo, hi, one_way=False)
            elif northbound:
                g.lane(lo, hi, one_way=True)
            else:
                g.lane(hi, lo, one_way=True)
        for r in range(first + 1, last):
            if r in cross or r % pocket_every:
                continue
            for side, kind in ((c - 1, "PICKUP"), (c + 1, "PARKING")):
                # a shelf cell between two aisles is a pocket of the first only: open to both, it would be
                # a passage, and a robot parked there would stand in other robots' way
                if side in inner and side not in aisle_set and _cell(side, r) not in g.nodes:
                    pocket = g.node(side, r, kind, name=f"{kind.title()} {side}/{r}")
                    g.lane(_cell(c, r), pocket, one_way=False)

    # Workstations on the west and east edges, chargers off the south cross-aisle.
    for r in range(first, last + 1, station_every):
        west_station = g.node(0, r, "DROPOFF", node_id=f"WS{r:03d}", name=f"West station {r}")
        g.lane(_cell(west[0], r), west_station, one_way=False)
        east_station = g.node(width - 1, r, "DROPOFF", node_id=f"ES{r:03d}", name=f"East station {r}")
        g.lane(_cell(east[1], r), east_station, one_way=False)
    charger_list = []
    step = max(1, len(aisles) // max(chargers, 1))
    for n, c in enumerate(aisles[::step][:chargers], start=1):
        node = g.node(c, 0, "CHARGER", node_id=f"CHG{n:02d}", name=f"Charger {n}")
        g.lane(_cell(c, first), node, one_way=False)
        charger_list.append({"id": f"CHG{n:02d}", "node_id": node})

    return {
        "event_id": SeededUuid7(f"grid:{tenant_id}:{site_id}:{width}x{height}")(occurred_at),
        "tenant_id": tenant_id,
        "site_id": site_id,
        "occurred_at": occurred_at,
        "version": 1,
        "name": name or f"{width}x{height} grid warehouse",
        "nodes": list(g.nodes.values()),
        "lanes": g.lanes,
        "zones": [],
        "chargers": charger_list,
    }


def small_warehouse(**kwargs: Any) -> dict[str, Any]:
    """60 x 35 cells (1.5 m), cross-aisles every 6 rows: 1,988 nodes, 2,171 lanes, 18 aisles, 66
    workstations, 442 storage and 468 parking pockets."""
    return grid_warehouse(**{"width": 60, "height": 35, "block_rows": 5, "site_id": "small", **kwargs})


def large_warehouse(**kwargs: Any) -> dict[str, Any]:
    """500 x 140 cells (1.5 m), cross-aisles every 9 rows: 69,008 nodes, 71,953 lanes, 166 aisles, 276
    workstations."""
    return grid_warehouse(**{"width": 500, "height": 140, "block_rows": 8, "site_id": "large", **kwargs})


def load_site_map(
    path: str | Path, *, site_id: str | None = None, tenant_id: str | None = None
) -> dict[str, Any]:
    """A SiteMap dict from a JSON file (docs/records.md); ``site_id`` / ``tenant_id`` override the file's.

    Fills what a hand-written map may leave out (``version`` 1, ``event_id``, ``occurred_at``, empty zones
    and chargers) and refuses one without nodes or lanes, naming the missing field.
    """
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a site map is a JSON object")
    missing = [k for k in _REQUIRED if k not in data and not (k == "site_id" and site_id)]
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}")
    data = dict(data)
    if site_id:
        data["site_id"] = site_id
    if tenant_id:
        data["tenant_id"] = tenant_id
    data.setdefault("tenant_id", "acme")
    data.setdefault("version", 1)
    data.setdefault("occurred_at", DEMO_EPOCH_MS)
    data.setdefault("zones", [])
    data.setdefault("chargers", [])
    data.setdefault("name", data["site_id"])
    data.setdefault(
        "event_id", SeededUuid7(f"file:{data['tenant_id']}:{data['site_id']}")(data["occurred_at"])
    )
    return data
