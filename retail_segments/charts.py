"""Charts as self-contained SVG strings, drawn by hand (no JavaScript, no fonts, no downloads).

Every function takes plain sequences (already aggregated) and returns one ``<svg>`` element
carrying ``class="chart"`` and ``data-chart="<chart_id>"``; the marks that encode data (bars,
points, lines, polygons, cells) carry ``class="mark"``, so a browser test can check that each
chart really drew something. Categorical colours follow `PALETTE` in series order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

# Tableau 10: distinguishable categorical colours.
PALETTE: tuple[str, ...] = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
AXIS_COLOUR = "#555"
GRID_COLOUR = "#e3e3e3"
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
LEGEND_WIDTH = 150


@dataclass(frozen=True)
class Frame:
    """An SVG canvas and the margins around its plotting area, in pixels."""

    width: int = 640
    height: int = 300
    left: int = 64
    right: int = 16
    top: int = 16
    bottom: int = 40

    @property
    def inner_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_height(self) -> float:
        return self.height - self.top - self.bottom


def colour(index: int) -> str:
    """Return the palette colour of the index-th series (cycling)."""
    return PALETTE[index % len(PALETTE)]


def linear_scale(
    domain: tuple[float, float], pixels: tuple[float, float]
) -> Callable[[float], float]:
    """Return a function mapping domain linearly onto pixels (a zero-width domain maps to the
    middle of pixels)."""
    (d0, d1), (p0, p1) = domain, pixels
    if d1 == d0:
        return lambda _value: (p0 + p1) / 2
    return lambda value: p0 + (value - d0) * (p1 - p0) / (d1 - d0)


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Return about count round tick values (steps of 1, 2, 2.5 or 5 times a power of ten) that
    cover [low, high]."""
    if high < low:
        low, high = high, low
    if high == low:
        high = low + 1
    raw_step = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw_step)
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    n_steps = round((stop - start) / step)
    return [round(start + i * step, 10) for i in range(n_steps + 1)]


def format_number(value: float) -> str:
    """Format a tick or label compactly: 1.2M, 35k, 0.25, 7."""
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 100 or float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _text(x: float, y: float, label: str, anchor: str = "middle", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {FONT} fill="#333"{extra}>'
        f"{escape(label)}</text>"
    )


def _svg(chart_id: str, title: str, frame: Frame, body: Sequence[str]) -> str:
    return (
        f'<svg class="chart" data-chart="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg"'
        f' viewBox="0 0 {frame.width} {frame.height}" width="{frame.width}"'
        f' height="{frame.height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _value_axis(
    frame: Frame, ticks: Sequence[float], scale: Callable[[float], float], label: str
) -> list[str]:
    """Horizontal grid lines with tick labels on the left, and the axis title."""
    parts = []
    for tick in ticks:
        y = scale(tick)
        parts.append(
            f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y:.1f}"'
            f' y2="{y:.1f}" stroke="{GRID_COLOUR}"/>'
        )
        parts.append(_text(frame.left - 6, y + 4, format_number(tick), anchor="end"))
    middle = frame.top + frame.inner_height / 2
    parts.append(_text(14, middle, label, extra=f' transform="rotate(-90 14 {middle:.1f})"'))
    return parts


def _x_axis_line(frame: Frame) -> str:
    y = frame.height - frame.bottom
    return (
        f'<line x1="{frame.left}" x2="{frame.width - frame.right}" y1="{y}" y2="{y}"'
        f' stroke="{AXIS_COLOUR}"/>'
    )


def _legend(frame: Frame, names: Sequence[str]) -> list[str]:
    """Colour keys for the series, stacked in the right margin."""
    x = frame.width - frame.right + 12
    parts = []
    for index, name in enumerate(names):
        y = frame.top + 4 + index * 18
        parts.append(
            f'<rect x="{x}" y="{y}" width="12" height="12" fill="{colour(index)}" rx="2"/>'
        )
        parts.append(_text(x + 18, y + 10, name, anchor="start"))
    return parts


def column_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    values: Sequence[float],
    value_label: str,
    frame: Frame | None = None,
) -> str:
    """Vertical bars, one per category (in the given order), on a value axis from 0."""
    frame = frame or Frame()
    ticks = nice_ticks(min(0.0, *values), max(0.0, *values))
    y = linear_scale((ticks[0], ticks[-1]), (frame.height - frame.bottom, frame.top))
    slot = frame.inner_width / max(len(categories), 1)
    body = _value_axis(frame, ticks, y, value_label)
    for index, (category, value) in enumerate(zip(categories, values, strict=True)):
        x = frame.left + index * slot + slot * 0.15
        top, base = sorted((y(value), y(0.0)))
        body.append(
            f'<rect class="mark" x="{x:.1f}" y="{top:.1f}" width="{slot * 0.7:.1f}"'
            f' height="{max(base - top, 0.5):.1f}" fill="{colour(0)}">'
            f"<title>{escape(category)}: {format_number(value)}</title></rect>"
        )
        body.append(_text(x + slot * 0.35, frame.height - frame.bottom + 16, category))
    body.append(_x_axis_line(frame))
    return _svg(chart_id, title, frame, body)


def bar_chart(
    chart_id: str,
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    value_label: str,
    label_width: int = 170,
) -> str:
    """Horizontal bars grouped by category (top to bottom in the given order), one bar per
    series; a legend when there is more than one series."""
    with_legend = len(series) > 1
    band = 14 * len(series) + 10
    frame = Frame(
        width=640 + (LEGEND_WIDTH if with_legend else 0),
        height=int(36 + 16 + band * len(categories)),
        left=label_width,
        right=16 + (LEGEND_WIDTH if with_legend else 0),
        top=16,
        bottom=36,
    )
    all_values = [v for values in series.values() for v in values]
    ticks = nice_ticks(min(0.0, *all_values), max(0.0, *all_values))
    x = linear_scale((ticks[0], ticks[-1]), (frame.left, frame.width - frame.right))
    body = []
    for tick in ticks:
        body.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{frame.top}"'
            f' y2="{frame.height - frame.bottom}" stroke="{GRID_COLOUR}"/>'
        )
        body.append(_text(x(tick), frame.height - frame.bottom + 14, format_number(tick)))
    body.append(_text(frame.left + frame.inner_width / 2, frame.height - 6, value_label))
    for row, category in enumerate(categories):
        band_top = frame.top + row * band + 5
        body.append(
            _text(frame.left - 6, band_top + band / 2 + 2, _shorten(category, 28), anchor="end")
        )
        for index, (name, values) in enumerate(series.items()):
            value = values[row]
            left, right = sorted((x(0.0), x(value)))
            body.append(
                f'<rect class="mark" x="{left:.1f}" y="{band_top + index * 14:.1f}"'
                f' width="{max(right - left, 0.5):.1f}" height="12" fill="{colour(index)}">'
                f"<title>{escape(category)} / {escape(name)}: {format_number(value)}</title></rect>"
            )
    if with_legend:
        body += _legend(frame, list(series))
    return _svg(chart_id, title, frame, body)


def line_chart(
    chart_id: str,
    title: str,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    x_label: str,
    y_label: str,
) -> str:
    """One line with point markers per series of (x values, y values); a series with a single
    point shows as its marker. The y axis spans the data (not forced to 0)."""
    frame = Frame(width=640 + LEGEND_WIDTH, right=16 + LEGEND_WIDTH)
    xs = [v for xs_, _ in series.values() for v in xs_]
    ys = [v for _, ys_ in series.values() for v in ys_]
    x_ticks = nice_ticks(min(xs), max(xs), count=min(8, max(len(set(xs)) - 1, 1)))
    y_ticks = nice_ticks(min(ys), max(ys))
    x = linear_scale((x_ticks[0], x_ticks[-1]), (frame.left + 8, frame.width - frame.right - 8))
    y = linear_scale((y_ticks[0], y_ticks[-1]), (frame.height - frame.bottom, frame.top))
    body = _value_axis(frame, y_ticks, y, y_label)
    for tick in x_ticks:
        body.append(_text(x(tick), frame.height - frame.bottom + 16, format_number(tick)))
    body.append(_text(frame.left + frame.inner_width / 2, frame.height - 6, x_label))
    body.append(_x_axis_line(frame))
    for index, (name, (xs_, ys_)) in enumerate(series.items()):
        points = sorted(zip(xs_, ys_, strict=True))
        path = " ".join(f"{x(px):.1f},{y(py):.1f}" for px, py in points)
        if len(points) > 1:
            body.append(
                f'<polyline class="mark" points="{path}" fill="none" stroke="{colour(index)}"'
                f' stroke-width="2"/>'
            )
        for px, py in points:
            body.append(
                f'<circle class="mark" cx="{x(px):.1f}" cy="{y(py):.1f}" r="3.5"'
                f' fill="{colour(index)}"><title>{escape(name)} {format_number(px)}:'
                f" {py:.3f}</title></circle>"
            )
    body += _legend(frame, list(series))
    return _svg(chart_id, title, frame, body)


def scatter_chart(
    chart_id: str,
    title: str,
    x_values: Sequence[float],
    y_values: Sequence[float],
    groups: Sequence[str],
    axis_labels: tuple[str, str],
    group_order: Sequence[str] = (),
) -> str:
    """Points coloured by group, with a legend. Colours follow group_order, then any other group
    in order of first appearance (so a chart can match another chart's colours)."""
    frame = Frame(width=560 + LEGEND_WIDTH, height=420, right=16 + LEGEND_WIDTH)
    x_ticks = nice_ticks(min(x_values), max(x_values))
    y_ticks = nice_ticks(min(y_values), max(y_values))
    x = linear_scale((x_ticks[0], x_ticks[-1]), (frame.left, frame.width - frame.right))
    y = linear_scale((y_ticks[0], y_ticks[-1]), (frame.height - frame.bottom, frame.top))
    names = list(dict.fromkeys([*group_order, *groups]))
    body = _value_axis(frame, y_ticks, y, axis_labels[1])
    for tick in x_ticks:
        body.append(_text(x(tick), frame.height - frame.bottom + 16, format_number(tick)))
    body.append(_text(frame.left + frame.inner_width / 2, frame.height - 6, axis_labels[0]))
    body.append(_x_axis_line(frame))
    for px, py, group in zip(x_values, y_values, groups, strict=True):
        body.append(
            f'<circle class="mark" cx="{x(px):.1f}" cy="{y(py):.1f}" r="2.4"'
            f' fill="{colour(names.index(group))}" fill-opacity="0.7"/>'
        )
    body += _legend(frame, names)
    return _svg(chart_id, title, frame, body)


def radar_chart(
    chart_id: str, title: str, axes: Sequence[str], series: Mapping[str, Sequence[float]]
) -> str:
    """One closed polygon per series over the axes (values already scaled to [0, 1]; 1 at the
    rim), with rings at 0.25 steps and a legend."""
    frame = Frame(width=420 + LEGEND_WIDTH, height=360, right=16 + LEGEND_WIDTH)
    cx, cy, radius = 210.0, 185.0, 130.0
    angles = [-math.pi / 2 + 2 * math.pi * i / len(axes) for i in range(len(axes))]

    def point(angle: float, value: float) -> tuple[float, float]:
        return cx + radius * value * math.cos(angle), cy + radius * value * math.sin(angle)

    def polygon_points(values: Sequence[float]) -> str:
        corners = (point(angle, float(v)) for angle, v in zip(angles, values, strict=True))
        return " ".join(f"{px:.1f},{py:.1f}" for px, py in corners)

    body = []
    for ring in (0.25, 0.5, 0.75, 1.0):
        body.append(
            f'<polygon points="{polygon_points([ring] * len(axes))}" fill="none"'
            f' stroke="{GRID_COLOUR}"/>'
        )
    for angle, name in zip(angles, axes, strict=True):
        rim_x, rim_y = point(angle, 1.0)
        body.append(
            f'<line x1="{cx}" y1="{cy}" x2="{rim_x:.1f}" y2="{rim_y:.1f}" stroke="{GRID_COLOUR}"/>'
        )
        label_x, label_y = point(angle, 1.16)
        body.append(_text(label_x, label_y + 4, name))
    for index, (name, values) in enumerate(series.items()):
        shape = polygon_points(values)
        body.append(
            f'<polygon class="mark" points="{shape}" fill="{colour(index)}" fill-opacity="0.18"'
            f' stroke="{colour(index)}" stroke-width="2"><title>{escape(name)}</title></polygon>'
        )
    body += _legend(frame, list(series))
    return _svg(chart_id, title, frame, body)


def heatmap_chart(
    chart_id: str,
    title: str,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    values: Sequence[Sequence[float]],
    axis_labels: tuple[str, str],
) -> str:
    """A grid of cells shaded by value (white to dark blue), each cell labelled with its value."""
    cell = 56
    frame = Frame(
        width=150 + cell * len(column_labels) + 16,
        height=40 + cell * len(row_labels) + 90,
        left=150,
        right=16,
        top=40,
        bottom=90,
    )
    top_value = max((v for row in values for v in row), default=0) or 1
    body = [_text(frame.left + cell * len(column_labels) / 2, 16, axis_labels[1])]
    for col, name in enumerate(column_labels):
        x = frame.left + col * cell + cell / 2
        y = frame.top + cell * len(row_labels) + 10
        body.append(
            _text(x, y, _shorten(name, 14), anchor="end", extra=f' transform="rotate(-40 {x} {y})"')
        )
    middle = frame.top + cell * len(row_labels) / 2
    body.append(
        _text(14, middle, axis_labels[0], extra=f' transform="rotate(-90 14 {middle:.1f})"')
    )
    for row, name in enumerate(row_labels):
        y = frame.top + row * cell
        body.append(_text(frame.left - 6, y + cell / 2 + 4, _shorten(name, 20), anchor="end"))
        for col, value in enumerate(values[row]):
            share = value / top_value
            fill = _blend("#ffffff", "#08306b", share)
            x = frame.left + col * cell
            body.append(
                f'<rect class="mark" x="{x}" y="{y}" width="{cell - 2}" height="{cell - 2}"'
                f' fill="{fill}" stroke="{GRID_COLOUR}"><title>{escape(name)} →'
                f" {escape(column_labels[col])}: {format_number(value)}</title></rect>"
            )
            text_fill = "#fff" if share > 0.5 else "#333"
            body.append(
                f'<text x="{x + cell / 2 - 1:.1f}" y="{y + cell / 2 + 3:.1f}" text-anchor="middle"'
                f' {FONT} fill="{text_fill}">{format_number(value)}</text>'
            )
    return _svg(chart_id, title, frame, body)


def histogram_chart(
    chart_id: str, title: str, values: Sequence[float], bins: int | Sequence[float], x_label: str
) -> str:
    """Counts of values per bin (a number of equal-width bins, or the bin edges), drawn as
    adjoining bars on a numeric x axis."""
    frame = Frame()
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    x_ticks = nice_ticks(float(edges[0]), float(edges[-1]))
    y_ticks = nice_ticks(0.0, float(counts.max()))
    x = linear_scale((x_ticks[0], x_ticks[-1]), (frame.left, frame.width - frame.right))
    y = linear_scale((0.0, y_ticks[-1]), (frame.height - frame.bottom, frame.top))
    body = _value_axis(frame, y_ticks, y, "customers")
    for tick in x_ticks:
        body.append(_text(x(tick), frame.height - frame.bottom + 16, format_number(tick)))
    body.append(_text(frame.left + frame.inner_width / 2, frame.height - 6, x_label))
    for count, low, high in zip(counts, edges[:-1], edges[1:], strict=True):
        if count == 0:
            continue
        body.append(
            f'<rect class="mark" x="{x(low):.1f}" y="{y(count):.1f}"'
            f' width="{max(x(high) - x(low) - 1, 0.5):.1f}" height="{y(0) - y(count):.1f}"'
            f' fill="{colour(0)}"><title>{format_number(low)} to {format_number(high)}:'
            f" {count}</title></rect>"
        )
    body.append(_x_axis_line(frame))
    return _svg(chart_id, title, frame, body)


def _shorten(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _blend(low: str, high: str, share: float) -> str:
    """Mix two #rrggbb colours: share 0 gives low, 1 gives high."""
    share = min(max(share, 0.0), 1.0)
    channels = [
        round(int(low[i : i + 2], 16) * (1 - share) + int(high[i : i + 2], 16) * share)
        for i in (1, 3, 5)
    ]
    return "#" + "".join(f"{channel:02x}" for channel in channels)
