"""Plane geometry of the monitor: how far a pose is from a lane. (The no-go polygon tests are the site
graph's, in ``schemas.geometry``: ``point_in_polygon`` / ``segment_hits_polygon``.)"""

from __future__ import annotations

import math

__all__ = ["Point", "distance_to_segment"]

Point = tuple[float, float]


def distance_to_segment(p: Point, a: Point, b: Point) -> float:
    """The distance from ``p`` to the segment ``a``-``b``."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / length2))
    return math.hypot(p[0] - (ax + t * dx), p[1] - (ay + t * dy))
