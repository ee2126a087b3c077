"""Plane geometry of the simulated robots: distances and headings (metres, map frame). The polygon tests
(no-go zones) are the site graph's (``schemas.sitegraph``)."""

from __future__ import annotations

import math

__all__ = ["Point", "distance", "heading"]

Point = tuple[float, float]


def distance(a: Point, b: Point) -> float:
    """Euclidean distance between two points."""
    return math.hypot(b[0] - a[0], b[1] - a[1])


def heading(a: Point, b: Point) -> float:
    """Heading in radians of the direction a -> b (0 = +x, counter-clockwise)."""
    return math.atan2(b[1] - a[1], b[0] - a[0])
