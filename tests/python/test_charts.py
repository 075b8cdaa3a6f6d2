"""The hand-drawn SVG charts: scales and ticks, and that each chart draws one mark per datum."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from retail_segments import charts

SVG = "{http://www.w3.org/2000/svg}"


def _marks(svg: str) -> list[ET.Element]:
    """Parse svg (must be well-formed XML) and return its data marks."""
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("class") == "chart"
    return [element for element in root.iter() if element.get("class") == "mark"]


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 100, [0, 20, 40, 60, 80, 100]),
        (0, 87_000, [0, 20_000, 40_000, 60_000, 80_000, 100_000]),
        (0.37, 0.49, [0.35, 0.375, 0.4, 0.425, 0.45, 0.475, 0.5]),
        (-0.06, 0.52, [-0.2, 0, 0.2, 0.4, 0.6]),
        (5, 5, [5, 5.2, 5.4, 5.6, 5.8, 6]),
    ],
)
def test_nice_ticks_are_round_and_cover_the_range(
    low: float, high: float, expected: list[float]
) -> None:
    ticks = charts.nice_ticks(low, high)
    assert ticks == pytest.approx(expected)
    assert ticks[0] <= low and ticks[-1] >= high


def test_linear_scale_maps_ends_and_handles_a_constant_domain() -> None:
    scale = charts.linear_scale((0, 10), (300, 100))
    assert (scale(0), scale(5), scale(10)) == (300, 200, 100)
    assert charts.linear_scale((3, 3), (0, 50))(3) == 25


@pytest.mark.parametrize(
    ("value", "text"),
    [(1_234_567, "1.23M"), (35_000, "35k"), (1_500, "1,500"), (7, "7"), (0.25, "0.25")],
)
def test_format_number(value: float, text: str) -> None:
    assert charts.format_number(value) == text


def test_column_chart_draws_one_bar_per_category_with_height_by_value() -> None:
    svg = charts.column_chart("c", "title", ["a", "b", "c"], [10, 20, 0], "orders")
    bars = _marks(svg)
    assert len(bars) == 3
    heights = [float(bar.get("height")) for bar in bars]
    assert heights[1] == pytest.approx(2 * heights[0])
    assert 'data-chart="c"' in svg


def test_bar_chart_draws_every_series_and_a_legend() -> None:
    svg = charts.bar_chart(
        "b", "t", ["x", "y"], {"customers": [40.0, 60.0], "revenue": [90.0, 10.0]}, "%"
    )
    bars = _marks(svg)
    assert len(bars) == 4
    assert {bar.get("fill") for bar in bars} == {charts.colour(0), charts.colour(1)}
    assert ">customers<" in svg and ">revenue<" in svg


def test_line_chart_draws_a_line_per_series_and_a_marker_per_point() -> None:
    svg = charts.line_chart(
        "l", "t", {"kmeans": ([2, 3, 4], [0.4, 0.5, 0.45]), "dbscan": ([3], [0.1])}, "k", "s"
    )
    marks = _marks(svg)
    assert sum(mark.tag == f"{SVG}polyline" for mark in marks) == 1
    assert sum(mark.tag == f"{SVG}circle" for mark in marks) == 4


def test_scatter_chart_colours_follow_the_given_group_order() -> None:
    svg = charts.scatter_chart(
        "s", "t", [0, 1, 2], [0, 1, 2], ["lost", "loyal", "lost"], ("x", "y"), ["loyal", "lost"]
    )
    points = _marks(svg)
    assert [point.get("fill") for point in points] == [
        charts.colour(1),
        charts.colour(0),
        charts.colour(1),
    ]


def test_radar_chart_puts_a_value_of_one_on_the_rim() -> None:
    svg = charts.radar_chart("r", "t", ["R", "F", "M"], {"all": [1, 1, 1], "none": [0, 0, 0]})
    full, empty = _marks(svg)
    corners = [tuple(map(float, corner.split(","))) for corner in full.get("points").split()]
    centre = [tuple(map(float, corner.split(","))) for corner in empty.get("points").split()]
    assert len(set(centre)) == 1
    cx, cy = centre[0]
    radii = [((x - cx) ** 2 + (y - cy) ** 2) ** 0.5 for x, y in corners]
    assert radii == pytest.approx([130.0] * 3, abs=0.1)


def test_heatmap_shades_the_largest_cell_darkest() -> None:
    svg = charts.heatmap_chart("h", "t", ["a", "b"], ["a", "b"], [[9, 1], [0, 5]], ("r", "c"))
    cells = _marks(svg)
    assert len(cells) == 4
    assert cells[0].get("fill") == "#08306b"
    assert cells[2].get("fill") == "#ffffff"


def test_histogram_counts_every_value() -> None:
    values = [1, 2, 2, 3, 3, 3, 10]
    svg = charts.histogram_chart("h", "t", values, bins=3, x_label="x")
    titles = [bar.find(f"{SVG}title").text for bar in _marks(svg)]
    assert sum(int(title.rsplit(":", 1)[1]) for title in titles) == len(values)


def test_labels_are_escaped() -> None:
    svg = charts.column_chart("c", "<b>", ["a & b"], [1], "x")
    _marks(svg)
    assert "a &amp; b" in svg and "<b>" not in svg
