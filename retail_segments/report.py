"""The visual report: one self-contained HTML file drawn from the warehouse.

``python -m retail_segments report [--warehouse PATH] [--out PATH]`` (``make report``) reads the
serving copy (read-only) and writes HTML whose charts are inline SVG (`retail_segments.charts`):
no script, style sheet or font is fetched, so the file works offline. A small inline script only
checks, once the page is laid out, that every chart drew its marks, and records the result in
``data-drawn-marks`` attributes (what the browser test reads).

`load_report_data` runs the queries; `render_report` is a pure function of the frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from retail_segments import charts

SCHEME_TITLES: dict[str, str] = {
    "rfm_score": "RFM-score segments",
    "pca_cluster": "Part I clusters (PCA)",
    "tsne_segment": "Part II segments (t-SNE)",
    "interest_category": "Interest categories",
}
STAGE_TITLES: dict[str, str] = {"pca": "part I (PCA)", "tsne": "part II (t-SNE)"}
NOISE_LABEL = "noise"
TOP_COUNTRIES = 12
HISTOGRAM_BINS = 30

QUERIES: dict[str, str] = {
    "revenue_by_month": "select * from marts.eda_revenue_by_month order by month_start",
    "revenue_by_country": "select * from marts.eda_revenue_by_country order by revenue desc",
    "orders_by_weekday": "select * from marts.eda_orders_by_weekday order by iso_weekday",
    "orders_by_hour": "select * from marts.eda_orders_by_hour order by hour_of_day",
    "customers": (
        "select customer_id, recency_days, frequency, monetary, is_outlier"
        " from marts.customer_segments"
    ),
    "segment_summary": "select * from marts.segment_summary order by scheme, segment_rank",
    "cluster_profiles": "select * from ml.cluster_profiles order by stage, cluster_id",
    "embeddings": "select * from ml.customer_embeddings order by customer_id",
    "model_selection": (
        "select * from ml.cluster_model_selection order by stage, algorithm, n_clusters"
    ),
    "confusion": "select * from ml.classifier_confusion_matrix",
    "classifier": "select * from ml.classifier_metrics where is_selected",
    "migration": (
        "select * from marts.segment_migration"
        " where to_as_of = (select max(to_as_of) from marts.segment_migration)"
    ),
}


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows: one frame per query in `QUERIES`, plus the serving copy's
    build info (empty when the file read is not a published serving copy)."""

    frames: dict[str, pd.DataFrame]
    build_info: dict[str, object]


def load_report_data(warehouse: Path) -> ReportData:
    """Open warehouse read-only and run every query of the report in one connection."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        frames = {name: connection.sql(sql).df() for name, sql in QUERIES.items()}
        has_build_info = connection.sql(
            "select count(*) from information_schema.tables"
            " where table_schema = 'serving' and table_name = 'build_info'"
        ).fetchall()[0][0]
        build_info = (
            connection.sql("select * from serving.build_info").df().iloc[0].to_dict()
            if has_build_info
            else {}
        )
    return ReportData(frames, build_info)


def write_report(warehouse: Path, out: Path) -> Path:
    """Render the report of warehouse into the HTML file out (directories created); return out."""
    html = render_report(load_report_data(warehouse), generated_at=datetime.now(UTC))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def render_report(data: ReportData, generated_at: datetime) -> str:
    """Return the whole HTML document for data."""
    frames = data.frames
    sections = [
        _section("Sales at a glance", _headline(frames, data.build_info, generated_at)),
        _section("Exploratory analysis", "".join(eda_figures(frames))),
        _section("RFM distributions", "".join(rfm_figures(frames["customers"]))),
        _section(
            "Segment sizes and revenue shares",
            "".join(share_figures(frames["segment_summary"])),
        ),
        _section("Segment profiles", "".join(radar_figures(frames["cluster_profiles"]))),
        _section("Customer maps", "".join(map_figures(frames["embeddings"]))),
        _section("Choosing the clustering", "".join(silhouette_figures(frames["model_selection"]))),
        _section("Segment classifier", confusion_figure(frames["confusion"], frames["classifier"])),
        _section("Segment migration", migration_figure(frames["migration"])),
        _section("Segment summary and strategies", summary_table(frames["segment_summary"])),
    ]
    return _page("Retail customer segments", "".join(sections))


def eda_figures(frames: dict[str, pd.DataFrame]) -> list[str]:
    """Revenue by month and by country, orders by weekday and by hour."""
    months = frames["revenue_by_month"]
    countries = frames["revenue_by_country"].head(TOP_COUNTRIES)
    weekdays = frames["orders_by_weekday"]
    hours = frames["orders_by_hour"]
    return [
        _figure(
            charts.column_chart(
                "revenue_by_month",
                "Revenue by month",
                [f"{m:%b %y}" for m in pd.to_datetime(months.month_start)],
                months.revenue.tolist(),
                "revenue (£)",
            ),
            "Revenue by month (net of returns). December 2011 holds only nine days.",
        ),
        _figure(
            charts.bar_chart(
                "revenue_by_country",
                "Revenue by country",
                countries.country.tolist(),
                {"revenue": countries.revenue.tolist()},
                "revenue (£)",
            ),
            f"Revenue of the {len(countries)} countries with the most revenue.",
        ),
        _figure(
            charts.column_chart(
                "orders_by_weekday",
                "Orders by weekday",
                [name[:3] for name in weekdays.weekday_name],
                weekdays.n_orders.tolist(),
                "orders",
            ),
            "Orders by weekday (the shop takes no orders on Saturdays).",
        ),
        _figure(
            charts.column_chart(
                "orders_by_hour",
                "Orders by hour of day",
                [str(hour) for hour in hours.hour_of_day],
                hours.n_orders.tolist(),
                "orders",
            ),
            "Orders by hour of the invoice time.",
        ),
    ]


def rfm_figures(customers: pd.DataFrame) -> list[str]:
    """Histograms of recency, frequency and monetary over the customers that are not outliers."""
    regular = customers[~customers.is_outlier.astype(bool)]
    caption = (
        f"{len(regular):,} customers; the {len(customers) - len(regular):,} outliers (frequency or"
        " monetary above the 95th percentile) are left out so the bulk is visible."
    )
    order_bins = np.arange(0.5, regular.frequency.max() + 1.5) if len(regular) else HISTOGRAM_BINS
    specs = [
        ("rfm_recency", "recency_days", "Recency", "days since the last purchase", HISTOGRAM_BINS),
        ("rfm_frequency", "frequency", "Frequency", "orders (one bar per count)", order_bins),
        ("rfm_monetary", "monetary", "Monetary", "revenue (£)", HISTOGRAM_BINS),
    ]
    return [
        _figure(
            charts.histogram_chart(
                chart_id, f"{title} distribution", regular[column].tolist(), bins, label
            ),
            f"{title}: {caption}",
        )
        for chart_id, column, title, label, bins in specs
    ]


def share_figures(summary: pd.DataFrame) -> list[str]:
    """Per scheme, each segment's share of customers beside its share of revenue."""
    figures = []
    for scheme in _schemes(summary):
        rows = summary[summary.scheme == scheme].sort_values("segment_rank")
        figures.append(
            _figure(
                charts.bar_chart(
                    f"segment_shares_{scheme}",
                    f"{SCHEME_TITLES.get(scheme, scheme)}: customers and revenue",
                    rows.segment_name.tolist(),
                    {
                        "% of customers": (rows.customer_share * 100).tolist(),
                        "% of revenue": (rows.revenue_share * 100).tolist(),
                    },
                    "% of the scheme's customers / revenue",
                ),
                f"{SCHEME_TITLES.get(scheme, scheme)}: share of customers and of revenue per"
                " segment, most revenue first.",
            )
        )
    return figures


def min_max_scale(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Scale each column to [0, 1] over the rows (min to 0, max to 1; a constant column to 0.5)."""
    scaled = frame.copy()
    for column in columns:
        low, high = frame[column].min(), frame[column].max()
        scaled[column] = 0.5 if high == low else (frame[column] - low) / (high - low)
    return scaled


def radar_figures(profiles: pd.DataFrame) -> list[str]:
    """Per clustering stage, a radar chart of each cluster's mean R, F and M, min-max scaled
    across the stage's clusters (DBSCAN noise left out)."""
    columns = ["mean_recency_days", "mean_frequency", "mean_monetary"]
    figures = []
    for stage in ("pca", "tsne"):
        clusters = profiles[(profiles.stage == stage) & (profiles.cluster_id >= 0)]
        scaled = min_max_scale(clusters, columns)
        series = {
            row.segment_name: [getattr(row, column) for column in columns]
            for row in scaled.itertuples()
        }
        figures.append(
            _figure(
                charts.radar_chart(
                    f"radar_{stage}",
                    f"Segment profiles, {STAGE_TITLES[stage]}",
                    ["Recency", "Frequency", "Monetary"],
                    series,
                ),
                f"Mean recency (days), frequency and monetary of each {STAGE_TITLES[stage]}"
                " cluster, min-max scaled across the clusters (1 = the highest mean; for recency"
                " that is the longest since the last purchase).",
            )
        )
    return figures


def map_figures(embeddings: pd.DataFrame) -> list[str]:
    """The PCA and t-SNE maps of the clustered customers, coloured by segment."""
    figures = []
    for stage, (x_column, y_column), axis_labels in (
        ("pca", ("pca_1", "pca_2"), ("principal component 1", "principal component 2")),
        ("tsne", ("tsne_1", "tsne_2"), ("t-SNE 1", "t-SNE 2")),
    ):
        names = embeddings[f"{stage}_segment_name"].fillna(NOISE_LABEL)
        order = (
            embeddings.assign(name=names)
            .sort_values(f"{stage}_cluster_id")
            .drop_duplicates("name")
            .name.tolist()
        )
        figures.append(
            _figure(
                charts.scatter_chart(
                    f"map_{stage}",
                    f"Customer map, {STAGE_TITLES[stage]}",
                    embeddings[x_column].tolist(),
                    embeddings[y_column].tolist(),
                    names.tolist(),
                    axis_labels,
                    group_order=[name for name in order if name != NOISE_LABEL],
                ),
                f"{len(embeddings):,} clustered customers in the {STAGE_TITLES[stage]} embedding,"
                " coloured by segment.",
            )
        )
    return figures


def silhouette_figures(selection: pd.DataFrame) -> list[str]:
    """Per stage, silhouette against the number of clusters, one line per algorithm."""
    figures = []
    for stage in ("pca", "tsne"):
        rows = selection[(selection.stage == stage) & selection.silhouette.notna()]
        series = {
            algorithm: (group.n_clusters.tolist(), group.silhouette.tolist())
            for algorithm, group in rows.groupby("algorithm", sort=True)
        }
        chosen = selection[(selection.stage == stage) & selection.is_selected].iloc[0]
        figures.append(
            _figure(
                charts.line_chart(
                    f"silhouette_{stage}",
                    f"Silhouette by number of clusters, {STAGE_TITLES[stage]}",
                    series,
                    "number of clusters",
                    "silhouette",
                ),
                f"Selected: {chosen.algorithm} with {chosen.n_clusters} clusters"
                f" (silhouette {chosen.silhouette:.3f}; {chosen.selection_reason}).",
            )
        )
    return figures


def confusion_figure(confusion: pd.DataFrame, classifier: pd.DataFrame) -> str:
    """The classifier's confusion matrix on the test split (actual rows, predicted columns)."""
    matrix = confusion.pivot_table(
        index="actual_segment", columns="predicted_segment", values="n_customers", fill_value=0
    )
    labels = sorted(set(matrix.index) | set(matrix.columns))
    matrix = matrix.reindex(index=labels, columns=labels, fill_value=0)
    caption = "Test split of the part II segment classifier."
    if len(classifier):
        best = classifier.iloc[0]
        caption = (
            f"Test split of the part II segment classifier ({best.model}: test accuracy"
            f" {best.test_accuracy:.3f}, cross-validated {best.cv_accuracy:.3f})."
        )
    return _figure(
        charts.heatmap_chart(
            "confusion_matrix",
            "Classifier confusion matrix",
            labels,
            labels,
            matrix.to_numpy().tolist(),
            ("actual", "predicted"),
        ),
        caption,
    )


def migration_figure(migration: pd.DataFrame) -> str:
    """Customers moving between segments from one as-of date to the next (the latest pair in
    marts.segment_migration), as a transition heat map; a note when the history has one date."""
    if migration.empty:
        return (
            '<p class="note">The segment history holds one as-of date, so there is no migration'
            " yet: run <code>make backfill</code> to add every month end.</p>"
        )
    matrix = migration.pivot_table(
        index="from_segment",
        columns="to_segment",
        values="n_customers",
        aggfunc="sum",
        fill_value=0,
    )
    from_as_of, to_as_of = migration.from_as_of.iloc[0], migration.to_as_of.iloc[0]
    return _figure(
        charts.heatmap_chart(
            "segment_migration",
            "Segment migration",
            [str(label) for label in matrix.index],
            [str(label) for label in matrix.columns],
            matrix.to_numpy().tolist(),
            (f"segment at {from_as_of:%Y-%m-%d}", f"segment at {to_as_of:%Y-%m-%d}"),
        ),
        f"Customers by segment at {from_as_of:%Y-%m-%d} (rows) and at {to_as_of:%Y-%m-%d}"
        " (columns); 'new' customers had not bought yet, 'churned' ones had not bought for"
        " var('history_churn_days') days.",
    )


def summary_table(summary: pd.DataFrame) -> str:
    """The segment summary as an HTML table, grouped by scheme, with strategies."""
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
        for row in summary[summary.scheme == scheme].sort_values("segment_rank").itertuples():
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
        f" {pd.Timestamp(build_info['built_at']):%Y-%m-%d %H:%M} UTC"
        if build_info
        else "an unpublished warehouse"
    )
    return (
        f'<div class="tiles">{tiles}</div>'
        f'<p class="meta">From {build}; rendered {generated_at:%Y-%m-%d %H:%M} UTC.</p>'
    )


def _figure(svg: str, caption: str) -> str:
    return f'<figure class="chart-figure">{svg}<figcaption>{escape(caption)}</figcaption></figure>'


def _section(title: str, content: str) -> str:
    return f'<section><h2>{escape(title)}</h2><div class="charts">{content}</div></section>'


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

# Runs after layout: counts each chart's data marks that have a non-empty box and records it, so
# a headless browser can tell (through the DOM) that every chart was drawn.
DRAW_CHECK_SCRIPT = """
(function () {
  var charts = document.querySelectorAll('svg.chart');
  var drawn = 0;
  charts.forEach(function (svg) {
    var box = svg.getBoundingClientRect();
    var marks = 0;
    svg.querySelectorAll('.mark').forEach(function (mark) {
      var b = mark.getBBox();
      if (b.width > 0 || b.height > 0) { marks += 1; }
    });
    if (box.width === 0 || box.height === 0) { marks = 0; }
    svg.setAttribute('data-drawn-marks', String(marks));
    if (marks > 0) { drawn += 1; }
  });
  document.body.setAttribute('data-charts', String(charts.length));
  document.body.setAttribute('data-charts-drawn', String(drawn));
})();
"""


def _page(title: str, content: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{escape(title)}</h1>{content}"
        f"<script>{DRAW_CHECK_SCRIPT}</script></body></html>\n"
    )
