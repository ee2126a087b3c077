"""Plane geometry of site maps: points in polygons (the edge counts as inside), segments entering them,
and every point and segment of a map against a list of polygons at once."""

from __future__ import annotations

import numpy as np
import pytest

from schemas.geometry import first_polygon_hits, point_in_polygon, segment_hits_polygon

SQUARE = [(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (0.0, 2.0)]


@pytest.mark.parametrize(
    ("point", "inside"), [((1, 1), True), ((3, 1), False), ((0, 1), True), ((2, 2), True), ((-0.1, 1), False)]
)
def test_point_in_polygon_counts_the_edge_as_inside(point: tuple[float, float], inside: bool) -> None:
    assert point_in_polygon(point, SQUARE) is inside


def test_polygon_tests_on_concave_and_degenerate_polygons() -> None:
    u_shape = [(0, 0), (3, 0), (3, 3), (2, 3), (2, 1), (1, 1), (1, 3), (0, 3)]
    assert point_in_polygon((0.5, 2), u_shape)
    assert not point_in_polygon((1.5, 2), u_shape)  # in the notch
    assert segment_hits_polygon((-1, 1), (3, 1), SQUARE)  # crossing with both ends outside
    assert not segment_hits_polygon((-1, 3), (3, 3), SQUARE)
    assert not segment_hits_polygon((0, 0), (1, 1), [(5, 5), (6, 5)])  # degenerate polygon


def test_first_polygon_hits_gives_each_point_and_segment_the_first_polygon_it_is_in() -> None:
    xy = np.array([(1.0, 1.0), (-1.0, 1.0), (3.0, 1.0), (5.0, 5.0)])
    segments = (np.array([1, 2, 3], dtype=np.int64), np.array([2, 3, 3], dtype=np.int64))
    polygons = [("line", [(0.0, 0.0), (9.0, 9.0)]), ("square", SQUARE), ("again", SQUARE)]
    points, hits = first_polygon_hits(xy, segments, polygons)
    assert points == {0: "square"}  # the two-corner "line" holds nothing; "again" comes second
    assert hits == {0: "square"}  # (-1, 1)-(3, 1) crosses the square with both ends outside
    empty = np.empty((0, 2))
    assert first_polygon_hits(empty, (np.empty(0, np.int64), np.empty(0, np.int64)), polygons) == ({}, {})
