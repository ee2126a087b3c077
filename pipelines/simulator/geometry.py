"""Plane geometry for site maps: distances, headings, and polygon tests (metres, map frame)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "Point",
    "distance",
    "heading",
    "point_in_polygon",
    "segment_intersects_polygon",
    "segments_intersect",
]

Point = tuple[float, float]

_EPS = 1e-9


def distance(a: Point, b: Point) -> float:
    """Euclidean distance between two points."""
    return math.hypot(b[0] - a[0], b[1] - a[1])


def heading(a: Point, b: Point) -> float:
    """Heading in radians of the direction a -> b (0 = +x, counter-clockwise)."""
    return math.atan2(b[1] - a[1], b[0] - a[0])


def _orientation(p: Point, q: Point, r: Point) -> float:
    return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """Whether r, known to be collinear with p-q, lies on the segment p-q."""
    return (
        min(p[0], q[0]) - _EPS <= r[0] <= max(p[0], q[0]) + _EPS
        and min(p[1], q[1]) - _EPS <= r[1] <= max(p[1], q[1]) + _EPS
    )


def segments_intersect(a1: Point, a2: Point, b1: Point, b2: Point) -> bool:
    """Whether the closed segments a1-a2 and b1-b2 share at least one point."""
    d1 = _orientation(b1, b2, a1)
    d2 = _orientation(b1, b2, a2)
    d3 = _orientation(a1, a2, b1)
    d4 = _orientation(a1, a2, b2)
    if ((d1 > _EPS and d2 < -_EPS) or (d1 < -_EPS and d2 > _EPS)) and (
        (d3 > _EPS and d4 < -_EPS) or (d3 < -_EPS and d4 > _EPS)
    ):
        return True
    return (
        (abs(d1) <= _EPS and _on_segment(b1, b2, a1))
        or (abs(d2) <= _EPS and _on_segment(b1, b2, a2))
        or (abs(d3) <= _EPS and _on_segment(a1, a2, b1))
        or (abs(d4) <= _EPS and _on_segment(a1, a2, b2))
    )


def point_in_polygon(point: Point, polygon: Sequence[Point]) -> bool:
    """Ray-casting test; points on the boundary count as inside."""
    n = len(polygon)
    if n < 3:
        return False
    for i in range(n):
        p, q = polygon[i], polygon[(i + 1) % n]
        if abs(_orientation(p, q, point)) <= _EPS and _on_segment(p, q, point):
            return True
    x, y = point
    inside = False
    for i in range(n):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < x_cross:
                inside = not inside
    return inside


def segment_intersects_polygon(a: Point, b: Point, polygon: Sequence[Point]) -> bool:
    """Whether any point of the segment a-b lies inside or on the polygon."""
    if point_in_polygon(a, polygon) or point_in_polygon(b, polygon):
        return True
    n = len(polygon)
    return any(segments_intersect(a, b, polygon[i], polygon[(i + 1) % n]) for i in range(n))
