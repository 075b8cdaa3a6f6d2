"""The report page: every chart of `retail_segments.report.figures`, one HTML file.

``python -m retail_segments report [--warehouse PATH] [--out PATH]`` (``make report``) reads the
serving copy read-only (`retail_segments.report.data`) and writes one self-contained HTML file:
the plotly.js bundle of the installed plotly package is inlined once in the head, and each chart
is a div drawn by ``Plotly.newPlot`` from its figure's JSON. Nothing is fetched (no CDN, no
MathJax, no fonts), so the file works offline.

`report_sections` builds every chart from the frames; `render_report` assembles the page (a pure
function of the data); `write_report` loads, renders and writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pandas as pd
import plotly
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from retail_segments.report import figures
from retail_segments.report.data import ReportData, load_report_data
from retail_segments.report.figures import SCHEME_TITLES

# Plotly's modebar and interactions, minus the logo link and the lasso and box selections.
PLOTLY_CONFIG: dict[str, object] = {
    "displaylogo": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d"],
}
INTERACTION_NOTE = (
    "Hover a bar, point or cell for its figures. Drag on a chart to zoom, double-click to reset."
    " Click a legend entry to hide that segment, double-click to show it alone."
)


@dataclass(frozen=True)
class Chart:
    """One chart of the page: the id of its div, its figure and a caption under it."""

    chart_id: str
    figure: go.Figure
    caption: str = ""


@dataclass(frozen=True)
class Section:
    """A titled section: an introduction, its charts, then any further HTML (tables, notes)."""

    title: str
    charts: list[Chart] = field(default_factory=list)
    intro: str = ""
    html: str = ""


def write_report(warehouse: Path, out: Path) -> Path:
    """Render the report of a warehouse into one HTML file.

    Parameters
    ----------
    warehouse : Path
        The serving copy (or a build warehouse), opened read-only.
    out : Path
        The HTML file to write (directories are created).

    Returns
    -------
    Path
        out.
    """
    data = load_report_data(warehouse)
    html = render_report(data, generated_at=datetime.now(UTC))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def report_sections(frames: dict[str, pd.DataFrame]) -> list[Section]:
    """Build every section and chart of the report from the frames of the report's queries.

    Parameters
    ----------
    frames : dict[str, pandas.DataFrame]
        The frames of `retail_segments.report.data.QUERIES`, under the same keys.

    Returns
    -------
    list[Section]
        The sections in page order; chart ids are unique across them.
    """
    summary = frames["segment_summary"]
    migration = frames["migration"]
    profiles = frames["cluster_profiles"]
    # One colour per segment of a stage, shared by its radar, map and share charts.
    colours = {
        stage: figures.segment_colours(
            profiles[(profiles.stage == stage) & (profiles.cluster_id >= 0)]
            .sort_values("cluster_id")
            .segment_name.astype(str)
            .tolist()
        )
        for stage in figures.STAGE_TITLES
    }
    scheme_colours = {"pca_cluster": colours["pca"], "tsne_segment": colours["tsne"]}
    return [
        Section(
            "Exploratory analysis",
            [
                Chart(
                    "revenue_by_month",
                    figures.revenue_by_month_figure(frames["revenue_by_month"]),
                    "December 2011 holds only nine days.",
                ),
                Chart(
                    "revenue_by_country",
                    figures.revenue_by_country_figure(frames["revenue_by_country"]),
                ),
                Chart(
                    "orders_by_weekday",
                    figures.orders_by_weekday_figure(frames["orders_by_weekday"]),
                ),
                Chart("orders_by_hour", figures.orders_by_hour_figure(frames["orders_by_hour"])),
            ],
        ),
        Section(
            "RFM distributions",
            [
                Chart(
                    f"rfm_{measure.removesuffix('_days')}",
                    figures.rfm_distribution_figure(frames["customers"], measure),
                )
                for measure in figures.RFM_MEASURES
            ],
        ),
        Section(
            "Segment sizes and revenue shares",
            [
                Chart(
                    f"segment_shares_{scheme}",
                    figures.segment_shares_figure(summary, scheme, scheme_colours.get(scheme)),
                )
                for scheme in _schemes(summary)
            ],
            intro="Per scheme, each segment's share of the customers beside its share of revenue.",
        ),
        Section(
            "Customer value by segment",
            [
                Chart(
                    f"segment_value_{scheme}",
                    figures.segment_value_figure(summary, scheme, scheme_colours.get(scheme)),
                )
                for scheme in ("tsne_segment", "rfm_score")
                if scheme in set(summary.scheme)
            ],
            intro=(
                "What each segment's customers are worth over the next 12 months (BG/NBD and"
                " Gamma-Gamma, marts.customer_value) and their churn risk; how well the models"
                " predict is in ml.clv_evaluation."
            ),
        ),
        Section(
            "Segment profiles",
            [
                Chart(f"radar_{stage}", figures.radar_figure(profiles, stage, colours[stage]))
                for stage in figures.STAGE_TITLES
            ],
            intro=(
                "Mean recency (days), frequency and monetary of each cluster, min-max scaled"
                " across the stage's clusters (1 = the highest mean; for recency that is the"
                " longest since the last purchase)."
            ),
        ),
        Section(
            "Customer maps",
            [
                Chart(
                    f"map_{stage}",
                    figures.customer_map_figure(frames["embeddings"], stage, colours[stage]),
                )
                for stage in figures.STAGE_TITLES
            ],
            intro="Each point is a customer: hover it to see who it is and its R, F and M.",
        ),
        Section(
            "Choosing the clustering",
            [
                Chart(
                    f"silhouette_{stage}",
                    figures.silhouette_figure(frames["model_selection"], stage),
                )
                for stage in figures.STAGE_TITLES
            ],
        ),
        Section(
            "Segment classifier",
            [
                Chart(
                    "confusion_matrix",
                    figures.confusion_matrix_figure(frames["confusion"], frames["classifier"]),
                )
            ],
        ),
        Section(
            "Segment migration",
            [Chart("segment_migration", figures.migration_figure(migration))]
            if len(migration)
            else [],
            intro=(
                "'new' customers had not bought yet, 'churned' ones had not bought for"
                " var('history_churn_days') days."
                if len(migration)
                else ""
            ),
            html=""
            if len(migration)
            else (
                '<p class="note">The segment history holds one as-of date, so there is no'
                " migration yet: run <code>make backfill</code> to add every month end.</p>"
            ),
        ),
        Section("Segment summary and strategies", html=summary_table(summary)),
    ]


def render_report(data: ReportData, generated_at: datetime) -> str:
    """Assemble the whole HTML document.

    Parameters
    ----------
    data : ReportData
        The frames and build info (`retail_segments.report.data.load_report_data`).
    generated_at : datetime
        When the report is rendered (shown in the header).

    Returns
    -------
    str
        One HTML document: plotly.js inlined once in the head, then the headline and every
        section of `report_sections`.
    """
    sections = report_sections(data.frames)
    body = _section_html(
        Section("Sales at a glance", html=_headline(data.frames, data.build_info, generated_at))
    ) + "".join(_section_html(section) for section in sections)
    title = "Retail customer segments"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style>"
        # As plotly's own HTML export: MathJax (never loaded here) would read this config.
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>"
        f"<script>/* plotly.js from the plotly {plotly.__version__} Python package */\n"
        f"{get_plotlyjs()}</script></head>"
        f'<body><h1>{escape(title)}</h1><p class="meta">{escape(INTERACTION_NOTE)}</p>'
        f"{body}</body></html>\n"
    )


def chart_html(chart: Chart) -> str:
    """Return a chart's figure element: its plot div, the script drawing it and the caption."""
    plot = pio.to_html(
        chart.figure,
        include_plotlyjs=False,
        include_mathjax=False,
        full_html=False,
        div_id=chart.chart_id,
        config=PLOTLY_CONFIG,
    )
    caption = f"<figcaption>{escape(chart.caption)}</figcaption>" if chart.caption else ""
    chart_id = escape(chart.chart_id)
    return f'<figure class="chart-figure" data-chart="{chart_id}">{plot}{caption}</figure>'


def summary_table(summary: pd.DataFrame) -> str:
    """The segment summary as an HTML table, grouped by scheme, with strategies.

    Parameters
    ----------
    summary : pandas.DataFrame
        ``marts.segment_summary``: one row per scheme and segment.

    Returns
    -------
    str
        A ``<table id="segment_summary">`` with a heading row per scheme (in `SCHEME_TITLES`
        order) and one row per segment in rank order.
    """
    header = (
        "<tr><th>segment</th><th>customers</th><th>share</th><th>revenue (£)</th>"
        "<th>revenue share</th><th>avg order (£)</th><th>mean R / F / M</th>"
        "<th>median R / F / M</th><th>strategy</th></tr>"
    )
    body = []
    for scheme in _schemes(summary):
        body.append(
            f'<tr class="scheme"><th colspan="9">{escape(SCHEME_TITLES.get(scheme, scheme))}'
            "</th></tr>"
        )
        for row in figures.records(summary[summary.scheme == scheme].sort_values("segment_rank")):
            body.append(
                "<tr>"
                f"<td>{escape(row.segment_name)}</td>"
                f'<td class="n">{row.n_customers:,}</td>'
                f'<td class="n">{row.customer_share:.1%}</td>'
                f'<td class="n">{row.revenue:,.0f}</td>'
                f'<td class="n">{row.revenue_share:.1%}</td>'
                f'<td class="n">{row.avg_order_value:,.0f}</td>'
                f'<td class="n">{row.mean_recency_days:.0f} / {row.mean_frequency:.1f} /'
                f" {row.mean_monetary:,.0f}</td>"
                f'<td class="n">{row.median_recency_days:.0f} / {row.median_frequency:.1f} /'
                f" {row.median_monetary:,.0f}</td>"
                f"<td>{escape(row.strategy)}</td>"
                "</tr>"
            )
    return (
        '<table class="summary" id="segment_summary"><thead>'
        + header
        + "</thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
        + "<p>R = recency in days, F = orders, M = revenue (£), all before the RFM date.</p>"
    )


def _schemes(summary: pd.DataFrame) -> list[str]:
    """Schemes present, in the order of SCHEME_TITLES (unknown ones last)."""
    present = summary.scheme.unique().tolist()
    known = [scheme for scheme in SCHEME_TITLES if scheme in present]
    return known + sorted(set(present) - set(known))


def _headline(
    frames: dict[str, pd.DataFrame], build_info: dict[str, object], generated_at: datetime
) -> str:
    """Return the tiles of headline figures and the line naming the build and render time."""
    months = frames["revenue_by_month"]
    customers = frames["customers"]
    facts = [
        ("revenue", f"£{months.revenue.sum():,.0f}"),
        ("orders", f"{int(months.n_orders.sum()):,}"),
        ("customers", f"{len(customers):,}"),
        (
            "months",
            f"{pd.Timestamp(months.month_start.min()):%b %Y} to"
            f" {pd.Timestamp(months.month_start.max()):%b %Y}",
        ),
    ]
    tiles = "".join(
        f'<div class="tile"><div class="value">{escape(value)}</div>'
        f'<div class="label">{escape(label)}</div></div>'
        for label, value in facts
    )
    build = (
        f"build {escape(str(build_info['build_id']))}, published"
        f" {pd.Timestamp(str(build_info['built_at'])):%Y-%m-%d %H:%M} UTC"
        if build_info
        else "an unpublished warehouse"
    )
    return (
        f'<div class="tiles">{tiles}</div>'
        f'<p class="meta">From {build}; rendered {generated_at:%Y-%m-%d %H:%M} UTC.</p>'
    )


def _section_html(section: Section) -> str:
    """Return a section's HTML: title, introduction, charts, further HTML."""
    intro = f'<p class="intro">{escape(section.intro)}</p>' if section.intro else ""
    charts = "".join(chart_html(chart) for chart in section.charts)
    charts = f'<div class="charts">{charts}</div>' if charts else ""
    return f"<section><h2>{escape(section.title)}</h2>{intro}{charts}{section.html}</section>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1500px; padding: 24px;
       color: #222; background: #fafafa; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; }
section { margin-bottom: 32px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.chart-figure { margin: 0; background: #fff; border: 1px solid #e5e5e5; padding: 8px; }
figcaption { max-width: 640px; font-size: 13px; color: #555; }
.tiles { display: flex; gap: 16px; flex-wrap: wrap; }
.tile { background: #fff; border: 1px solid #e5e5e5; padding: 12px 20px; min-width: 140px; }
.tile .value { font-size: 24px; font-weight: 600; } .tile .label { color: #666; }
.meta { color: #666; font-size: 13px; }
table.summary { border-collapse: collapse; background: #fff; font-size: 13px; }
table.summary th, table.summary td { border: 1px solid #e5e5e5; padding: 4px 8px;
                                     text-align: left; vertical-align: top; }
table.summary td.n { text-align: right; white-space: nowrap; }
table.summary tr.scheme th { background: #eef2f7; }
"""
