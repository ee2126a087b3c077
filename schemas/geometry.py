"""Plane geometry of site maps, in map metres: whether a point lies in a polygon, whether a segment enters
one, and both at once for every node and lane of a map against a list of polygons (the site graph's no-go
zones, :mod:`schemas.sitegraph`). Points on a polygon's edge count as inside, within a tolerance of 1e-9.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

__all__ = ["Point", "first_polygon_hits", "point_in_polygon", "segment_hits_polygon", "segments_intersect"]

Point = tuple[float, float]

K = TypeVar("K")

#: How far (m) outside a zone's bounding box a node or lane may be and still be tested against the zone
#: (well above the tolerance of the polygon tests and coordinate rounding).
_BOX_MARGIN_M = 1e-6


def first_polygon_hits(
    xy: np.ndarray, segments: tuple[np.ndarray, np.ndarray], polygons: Sequence[tuple[K, Sequence[Point]]]
) -> tuple[dict[int, K], dict[int, K]]:
    """The points (rows of ``xy``) inside, and the segments (``xy[a[k]]``-``xy[b[k]]`` for ``(a, b) =
    segments``) entering, each of ``polygons``, as point or segment index -> the key of the polygon (one in
    several: the first in order). A polygon with fewer than 3 corners holds nothing. Only what lies within a
    polygon's bounding box is tested against it."""
    points: dict[int, K] = {}
    hits: dict[int, K] = {}
    us, vs = segments
    for key, polygon in polygons:
        if len(polygon) < 3:
            continue
        px, py = [p[0] for p in polygon], [p[1] for p in polygon]
        lo_x, hi_x = min(px) - _BOX_MARGIN_M, max(px) + _BOX_MARGIN_M
        lo_y, hi_y = min(py) - _BOX_MARGIN_M, max(py) + _BOX_MARGIN_M
        if len(xy):
            x, y = xy[:, 0], xy[:, 1]
            near = (x >= lo_x) & (x <= hi_x) & (y >= lo_y) & (y <= hi_y)
            for i in np.flatnonzero(near).tolist():
                if point_in_polygon((float(x[i]), float(y[i])), polygon):
                    points.setdefault(i, key)
        if len(us):
            ax, ay, bx, by = xy[us, 0], xy[us, 1], xy[vs, 0], xy[vs, 1]
            near = (
                (np.maximum(ax, bx) >= lo_x)
                & (np.minimum(ax, bx) <= hi_x)
                & (np.maximum(ay, by) >= lo_y)
                & (np.minimum(ay, by) <= hi_y)
            )
            for k in np.flatnonzero(near).tolist():
                a = (float(ax[k]), float(ay[k]))
                b = (float(bx[k]), float(by[k]))
                if segment_hits_polygon(a, b, polygon):
                    hits.setdefault(k, key)
    return points, hits


def point_in_polygon(p: Point, polygon: Sequence[Point]) -> bool:
    """Whether ``p`` lies inside ``polygon`` (even-odd rule; points on an edge count as inside)."""
    n = len(polygon)
    if n < 3:
        return False
    x, y = p
    inside = False
    for i in range(n):
        ax, ay = polygon[i]
        bx, by = polygon[(i + 1) % n]
        if _on_segment(p, (ax, ay), (bx, by)):
            return True
        if (ay > y) != (by > y) and x < (bx - ax) * (y - ay) / (by - ay) + ax:
            inside = not inside
    return inside


def segment_hits_polygon(a: Point, b: Point, polygon: Sequence[Point]) -> bool:
    """Whether the segment ``a``-``b`` enters ``polygon`` (an end inside, or crossing an edge)."""
    if len(polygon) < 3:
        return False
    if point_in_polygon(a, polygon) or point_in_polygon(b, polygon):
        return True
    n = len(polygon)
    return any(segments_intersect(a, b, polygon[i], polygon[(i + 1) % n]) for i in range(n))


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _on_segment(p: Point, a: Point, b: Point, eps: float = 1e-9) -> bool:
    if abs(_cross(a, b, p)) > eps:
        return False
    return (
        min(a[0], b[0]) - eps <= p[0] <= max(a[0], b[0]) + eps
        and min(a[1], b[1]) - eps <= p[1] <= max(a[1], b[1]) + eps
    )


def segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    """Whether segments p1-p2 and q1-q2 cross or touch (an end on the other segment, within 1e-9)."""
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    if ((d1 > 0 > d2) or (d1 < 0 < d2)) and ((d3 > 0 > d4) or (d3 < 0 < d4)):
        return True
    return (
        _on_segment(p1, q1, q2)
        or _on_segment(p2, q1, q2)
        or _on_segment(q1, p1, p2)
        or _on_segment(q2, p1, p2)
    )
