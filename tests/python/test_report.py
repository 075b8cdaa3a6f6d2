"""The HTML report: each figure function on small frames, and the report of a synthetic build
rendered in headless Chromium (every chart drawn, hover, zoom and legend working, no request
but the file itself; a screenshot kept in artifacts/report.png)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from browser import open_page
from dbt_helpers import PROJECT_ROOT, Workspace
from plotly.offline import get_plotlyjs

from retail_segments import report
from retail_segments.ops import publish
from retail_segments.report import figures, page

ARTIFACTS = PROJECT_ROOT / "artifacts"


# --- figure functions on small frames -------------------------------------------------------


def _summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "scheme": ["tsne_segment", "rfm_score", "rfm_score", "rfm_score"],
            "segment_name": ["loyal", "champions", "lost <old>", "new"],
            "segment_rank": [1, 1, 2, 3],
            "n_customers": [10, 4, 5, 1],
            "customer_share": [1.0, 0.4, 0.5, 0.1],
            "revenue": [100.0, 90.0, 8.0, 2.0],
            "revenue_share": [1.0, 0.9, 0.08, 0.02],
            "avg_order_value": [10.0, 30.0, 5.0, 2.0],
            "mean_recency_days": [5.0, 3.0, 300.0, 4.0],
            "mean_frequency": [2.0, 3.0, 1.0, 1.0],
            "mean_monetary": [10.0, 22.5, 1.6, 2.0],
            "median_recency_days": [5.0, 3.0, 300.0, 4.0],
            "median_frequency": [2.0, 3.0, 1.0, 1.0],
            "median_monetary": [10.0, 22.5, 1.6, 2.0],
            "total_clv_12m": [500.0, 300.0, 4.0, 60.0],
            "mean_clv_12m": [50.0, 75.0, 0.8, 60.0],
            "mean_prob_no_purchase_90d": [0.2, 0.1, 0.95, 0.6],
            "strategy": ["keep", "reward", "let go", "welcome"],
        }
    )


def _embeddings() -> pd.DataFrame:
    """Twelve customers: five in cluster 0, four in cluster 1, three noise (DBSCAN -1)."""
    rng = np.random.default_rng(3)
    cluster = np.array([0] * 5 + [1] * 4 + [-1] * 3)
    names = np.array(["loyal"] * 5 + ["lost"] * 4 + [None] * 3, dtype=object)
    return pd.DataFrame(
        {
            "customer_id": np.arange(12346, 12358),
            "pca_1": rng.normal(size=12),
            "pca_2": rng.normal(size=12),
            "tsne_1": rng.normal(size=12),
            "tsne_2": rng.normal(size=12),
            "pca_cluster_id": cluster,
            "tsne_cluster_id": cluster[::-1],
            "pca_segment_name": names,
            "tsne_segment_name": names[::-1],
            "recency_days": np.arange(12) * 10,
            "frequency": np.arange(12) + 1,
            "monetary": np.arange(12) * 100.0 + 0.4,
        }
    )


def test_revenue_by_month_is_one_bar_per_month_with_its_figures_in_the_hover() -> None:
    months = pd.DataFrame(
        {
            "month_start": pd.to_datetime(["2011-01-01", "2011-02-01"]),
            "n_orders": [10, 20],
            "n_customers": [5, 8],
            "revenue": [1000.0, 2500.0],
            "avg_order_value": [100.0, 125.0],
        }
    )
    figure = figures.revenue_by_month_figure(months)
    (bar,) = figure.data
    assert isinstance(bar, go.Bar)
    assert list(bar.y) == [1000.0, 2500.0]
    assert np.asarray(bar.customdata)[:, 0].tolist() == [10, 20]
    assert "orders %{customdata[0]" in bar.hovertemplate
    assert "£3,500 over 2 months" in figure.layout.title.subtitle.text


def test_revenue_by_country_keeps_the_top_countries_most_revenue_on_top() -> None:
    countries = pd.DataFrame(
        {
            "country": ["A", "B", "C"],
            "revenue": [50.0, 300.0, 10.0],
            "revenue_share": [50 / 360, 300 / 360, 10 / 360],
            "n_orders": [5, 30, 1],
            "n_customers": [2, 9, 1],
        }
    )
    (bar,) = figures.revenue_by_country_figure(countries, top=2).data
    assert bar.orientation == "h"
    assert list(bar.y) == ["A", "B"]  # plotly draws the last category on top
    assert list(bar.x) == [50.0, 300.0]
    assert list(bar.text) == ["13.9%", "83.3%"]


def test_orders_by_weekday_and_hour_draw_one_bar_per_row() -> None:
    weekdays = pd.DataFrame(
        {
            "weekday_name": ["Monday", "Sunday"],
            "n_orders": [12, 7],
            "mean_daily_orders": [3.0, 1.75],
            "revenue_share": [0.6, 0.4],
        }
    )
    hours = pd.DataFrame(
        {
            "hour_of_day": [8, 9, 10],
            "n_orders": [1, 5, 3],
            "mean_daily_orders": [0.1, 0.5, 0.3],
            "revenue": [10.0, 50.0, 30.0],
        }
    )
    (weekday_bar,) = figures.orders_by_weekday_figure(weekdays).data
    (hour_bar,) = figures.orders_by_hour_figure(hours).data
    assert list(weekday_bar.x) == ["Monday", "Sunday"] and list(weekday_bar.y) == [12, 7]
    assert list(hour_bar.x) == [8, 9, 10] and list(hour_bar.y) == [1, 5, 3]


@pytest.mark.parametrize("measure", ["recency_days", "frequency", "monetary"])
def test_rfm_distribution_counts_every_customer_but_the_outliers(measure: str) -> None:
    customers = pd.DataFrame(
        {
            "recency_days": [1, 5, 9, 30, 200, 365],
            "frequency": [1, 1, 2, 3, 3, 40],
            "monetary": [10.0, 20.0, 25.0, 80.0, 90.0, 9000.0],
            "is_outlier": [False, False, False, False, False, True],
        }
    )
    figure = figures.rfm_distribution_figure(customers, measure, bins=4)
    (bar,) = figure.data
    assert sum(bar.y) == 5
    assert "5 customers; left out as outliers" in figure.layout.title.subtitle.text
    assert figure.layout.title.subtitle.text.endswith("percentile): 1")
    if measure == "frequency":
        assert list(bar.x) == [1, 2, 3] and list(bar.y) == [2, 1, 2]
    else:
        assert len(bar.x) == 4


def test_segment_shares_draw_one_trace_per_segment_with_its_figures() -> None:
    figure = figures.segment_shares_figure(_summary(), "rfm_score", colours={"lost <old>": "#123"})
    assert [trace.name for trace in figure.data] == ["champions", "lost <old>", "new"]
    assert all(isinstance(trace, go.Bar) for trace in figure.data)
    assert figure.layout.barmode == "stack"
    champions, lost, new = figure.data
    assert list(champions.x) == [40.0, 90.0] and list(champions.y) == ["customers", "revenue"]
    assert "customers 4 (40.0%)" in champions.hovertemplate
    assert "revenue £90 (90.0%)" in champions.hovertemplate
    assert "<b>lost &lt;old&gt;</b>" in lost.hovertemplate
    assert lost.marker.color == "#123"
    assert len({champions.marker.color, lost.marker.color, new.marker.color}) == 3
    assert figure.layout.legend.traceorder == "normal"


def test_segment_value_is_one_bar_per_segment_by_value_with_churn_risk() -> None:
    figure = figures.segment_value_figure(_summary(), "rfm_score", colours={"new": "#123"})
    assert [trace.name for trace in figure.data] == ["champions", "new", "lost <old>"]
    champions, new, lost = figure.data
    assert list(champions.x) == [300.0] and list(champions.y) == ["champions"]
    assert "12-month CLV £300 (£75 per customer)" in champions.hovertemplate
    assert "no purchase in 90 days 95%" in lost.hovertemplate
    assert list(lost.text) == ["churn risk 95%"]
    assert new.marker.color == "#123"
    assert "£364 in all" in figure.layout.title.subtitle.text


def test_segment_colours_keep_given_ones_and_grey_the_unclustered() -> None:
    colours = figures.segment_colours(
        ["a", "b", "not clustered", "noise", "c"], given={"b": figures.PALETTE[0]}
    )
    assert colours["b"] == figures.PALETTE[0]
    assert colours["a"] == figures.PALETTE[1] and colours["c"] == figures.PALETTE[2]
    assert colours["not clustered"] == colours["noise"] == figures.GREY


def test_min_max_scale_maps_each_column_to_the_unit_interval() -> None:
    frame = pd.DataFrame({"r": [10.0, 30.0, 20.0], "f": [2.0, 2.0, 2.0]})
    scaled = figures.min_max_scale(frame, ["r", "f"])
    assert scaled.r.tolist() == [0.0, 1.0, 0.5]
    assert scaled.f.tolist() == [0.5, 0.5, 0.5]
    assert frame.r.tolist() == [10.0, 30.0, 20.0]


def test_radar_draws_one_closed_polygon_per_cluster_without_noise() -> None:
    profiles = pd.DataFrame(
        {
            "stage": ["tsne", "tsne", "tsne", "pca"],
            "cluster_id": [1, 0, -1, 0],
            "segment_name": ["lost", "loyal", None, "other"],
            "n_customers": [40, 10, 3, 50],
            "mean_recency_days": [300.0, 10.0, 50.0, 1.0],
            "mean_frequency": [1.0, 8.0, 2.0, 1.0],
            "mean_monetary": [100.0, 5000.0, 70.0, 1.0],
        }
    )
    figure = figures.radar_figure(profiles, "tsne")
    assert [trace.name for trace in figure.data] == ["loyal", "lost"]
    loyal, lost = figure.data
    assert isinstance(loyal, go.Scatterpolar) and loyal.fill == "toself"
    assert list(loyal.r) == [0.0, 1.0, 1.0, 0.0] and list(lost.r) == [1.0, 0.0, 0.0, 1.0]
    assert loyal.theta[0] == loyal.theta[-1] == "Recency"
    assert "customers 10" in loyal.hovertemplate and "£5,000" in loyal.hovertemplate


def test_customer_map_draws_one_trace_per_segment_and_names_the_customer() -> None:
    embeddings = _embeddings()
    figure = figures.customer_map_figure(embeddings, "pca")
    assert [trace.name for trace in figure.data] == ["loyal", "lost", "noise"]
    assert all(isinstance(trace, go.Scatter) and trace.mode == "markers" for trace in figure.data)
    loyal, lost, noise = figure.data
    assert noise.marker.color == figures.GREY
    assert np.asarray(loyal.customdata)[:, 0].tolist() == list(range(12346, 12351))
    assert np.asarray(noise.customdata)[:, 0].tolist() == [12355, 12356, 12357]
    for trace in figure.data:
        assert "customer %{customdata[0]" in trace.hovertemplate
        assert f"segment {trace.name}" in trace.hovertemplate
        assert "R %{customdata[1]" in trace.hovertemplate
    assert np.asarray(lost.x).tolist() == pytest.approx(embeddings.pca_1[5:9].tolist(), abs=1e-6)
    assert figure.layout.dragmode == "zoom"
    assert "12 clustered customers" in figure.layout.title.subtitle.text


def test_customer_map_samples_large_maps_and_says_so() -> None:
    embeddings = _embeddings()
    first = figures.customer_map_figure(embeddings, "tsne", max_points=5, seed=1)
    again = figures.customer_map_figure(embeddings, "tsne", max_points=5, seed=1)
    shown = np.concatenate([np.asarray(trace.customdata)[:, 0] for trace in first.data])
    assert len(shown) == 5 and set(shown) <= set(embeddings.customer_id)
    assert [list(t.x) for t in first.data] == [list(t.x) for t in again.data]
    assert "a random sample of 5 of the 12 clustered customers" in first.layout.title.subtitle.text


def test_customer_map_keeps_large_customer_ids_exact() -> None:
    embeddings = _embeddings().assign(customer_id=np.arange(12) + 2**40)
    figure = figures.customer_map_figure(embeddings, "pca")
    ids = np.concatenate([np.asarray(trace.customdata)[:, 0] for trace in figure.data])
    assert sorted(ids.astype(np.int64)) == list(np.arange(12) + 2**40)


def _selection() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "stage": ["tsne"] * 5 + ["pca"],
            "algorithm": ["kmeans", "kmeans", "kmeans", "agglomerative", "dbscan", "kmeans"],
            "n_clusters": [2, 3, 4, 3, 40, 2],
            "silhouette": [0.4, 0.5, 0.45, 0.3, -0.2, 0.9],
            "calinski_harabasz": [100.0, 120.0, 110.0, 90.0, 5.0, 1.0],
            "davies_bouldin": [0.8, 0.6, 0.7, 0.9, 2.0, 0.1],
            "is_selected": [False, True, False, False, False, True],
            "selection_reason": ["lower", "highest silhouette", "lower", "lower", "outside", "x"],
        }
    )


def test_silhouette_draws_a_line_per_algorithm_and_stars_the_selected_model() -> None:
    figure = figures.silhouette_figure(_selection(), "tsne")
    assert [trace.name for trace in figure.data] == [
        "agglomerative",
        "dbscan",
        "kmeans",
        "selected",
    ]
    kmeans, selected = figure.data[2], figure.data[3]
    assert list(kmeans.x) == [2, 3, 4] and list(kmeans.y) == [0.4, 0.5, 0.45]
    assert list(selected.x) == [3] and selected.marker.symbol == "star"
    assert "Davies-Bouldin" in kmeans.hovertemplate
    subtitle = figure.layout.title.subtitle.text
    assert "selected: kmeans with 3 clusters (silhouette 0.500" in subtitle
    # DBSCAN's 40 clusters would squash the curves: the axes fit the grid and say so.
    assert tuple(figure.layout.xaxis.range) == (1.5, 4.5)
    assert figure.layout.yaxis.range[0] > -0.2
    assert "off the axes (autoscale to see): dbscan with 40 clusters" in subtitle


def test_confusion_matrix_is_square_over_every_segment_seen() -> None:
    confusion = pd.DataFrame(
        {
            "actual_segment": ["a", "a", "b"],
            "predicted_segment": ["a", "c", "b"],
            "n_customers": [5, 1, 4],
        }
    )
    classifier = pd.DataFrame({"model": ["rf"], "test_accuracy": [0.9], "cv_accuracy": [0.8]})
    figure = figures.confusion_matrix_figure(confusion, classifier)
    (heatmap,) = figure.data
    assert isinstance(heatmap, go.Heatmap)
    assert list(heatmap.x) == list(heatmap.y) == ["a", "b", "c"]
    assert np.asarray(heatmap.z).tolist() == [[5, 0, 1], [0, 4, 0], [0, 0, 0]]
    assert np.asarray(heatmap.customdata)[0].tolist() == pytest.approx([5 / 6, 0, 1 / 6])
    assert "rf: test accuracy 0.900" in figure.layout.title.subtitle.text


def test_migration_heat_map_counts_every_move() -> None:
    migration = pd.DataFrame(
        {
            "from_as_of": pd.Timestamp("2011-11-01"),
            "to_as_of": pd.Timestamp("2011-12-01"),
            "from_segment": ["loyal", "loyal", "new", "lost"],
            "to_segment": ["loyal", "at risk", "loyal", "churned"],
            "n_customers": [40, 7, 3, 2],
        }
    )
    figure = figures.migration_figure(migration)
    (heatmap,) = figure.data
    z = pd.DataFrame(np.asarray(heatmap.z), index=list(heatmap.y), columns=list(heatmap.x))
    assert z.loc["loyal", "loyal"] == 40 and z.loc["loyal", "at risk"] == 7
    assert z.loc["new", "loyal"] == 3 and z.loc["lost", "churned"] == 2
    assert z.to_numpy().sum() == 52
    assert "2011-11-01" in heatmap.hovertemplate and "2011-12-01" in heatmap.hovertemplate


def test_migration_without_a_second_date_is_a_note_not_a_chart() -> None:
    empty = pd.DataFrame(
        columns=["from_as_of", "to_as_of", "from_segment", "to_segment", "n_customers"]
    )
    with pytest.raises(ValueError, match="one as-of date"):
        figures.migration_figure(empty)


def test_summary_table_lists_every_segment_under_its_scheme() -> None:
    html = page.summary_table(_summary())
    assert html.index("RFM-score segments") < html.index("champions") < html.index("lost &lt;old")
    assert html.index("lost &lt;old") < html.index("Part II segments") < html.index(">loyal<")
    assert "90.0%" in html and ">reward<" in html


def test_a_file_that_is_not_a_warehouse_gets_a_message(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(report.ReportDataError, match=r"empty\.duckdb is not a retail-segments"):
        report.load_report_data(empty)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            "delete from marts.eda_revenue_by_month",
            "holds no rows for the report's revenue_by_month",
        ),
        (
            "alter table marts.segment_summary drop column revenue_share",
            "lacks a column the report draws from marts.segment_summary"
            ' (Binder Error: ... "revenue_share"',
        ),
        (
            "alter table ml.customer_embeddings drop column tsne_2",
            "lacks a column the report draws from ml.customer_embeddings, marts.customer_segments"
            ' (Binder Error: ... "tsne_2"',
        ),
        (
            "alter table marts.segment_migration drop column to_segment",
            "lacks a column the report draws from marts.segment_migration"
            ' (Binder Error: ... "to_segment"',
        ),
        ("delete from serving.build_info", None),  # the page says only where it was read from
    ],
)
def test_an_edited_serving_copy_gets_a_message_not_a_traceback(
    edit: str, message: str | None, synthetic_build: Workspace, tmp_path: Path
) -> None:
    """A copy edited by hand (or of another version): a table without rows or without a column
    the charts draw is named, before any chart is drawn (the migration's columns too, though a
    single as-of date draws no migration); an empty build record is left out, as a build
    warehouse's is."""
    copy = tmp_path / "copy.duckdb"
    shutil.copyfile(synthetic_build.warehouse, copy)
    with duckdb.connect(str(copy)) as connection:
        connection.execute("create schema if not exists serving")
        connection.execute("create table if not exists serving.build_info (build_id varchar)")
        connection.execute(edit)
    if message is None:
        assert (
            "an unpublished warehouse" in report.write_report(copy, tmp_path / "r.html").read_text()
        )
        return
    # DuckDB's words for the column differ by query ("Referenced column ...", "Table ... does
    # not have a column named ..."): "..." stands for them
    pattern = ".*".join(re.escape(part) for part in message.split("..."))
    with pytest.raises(report.ReportDataError, match=pattern):
        report.write_report(copy, tmp_path / "r.html")


# --- the report of the synthetic build in headless Chromium ---------------------------------


@pytest.fixture(scope="module")
def report_file(synthetic_build: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the synthetic build, written by the package as the CLI does."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    return report.write_report(synthetic_build.warehouse, out)


def _expected_chart_ids(synthetic_build: Workspace) -> set[str]:
    n_migrations = synthetic_build.query("select count(*) from marts.segment_migration")[0][0]
    schemes = [
        row[0] for row in synthetic_build.query("select distinct scheme from marts.segment_summary")
    ]
    return {
        "revenue_by_month",
        "revenue_by_country",
        "orders_by_weekday",
        "orders_by_hour",
        "rfm_recency",
        "rfm_frequency",
        "rfm_monetary",
        *(f"segment_shares_{scheme}" for scheme in schemes),
        "segment_value_tsne_segment",
        "segment_value_rfm_score",
        "radar_pca",
        "radar_tsne",
        "map_pca",
        "map_tsne",
        "silhouette_pca",
        "silhouette_tsne",
        "confusion_matrix",
        *(["segment_migration"] if n_migrations else []),
    }


@pytest.mark.dbt
def test_report_inlines_plotly_once_and_references_nothing_outside(
    report_file: Path, synthetic_build: Workspace
) -> None:
    html = report_file.read_text()
    bundle = get_plotlyjs()
    assert html.count(bundle) == 1
    assert html.count("plotly.js v") == 1  # the bundle's banner: no second copy
    rest = html.replace(bundle, "")
    plots = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', rest)
    assert sorted(plots) == sorted(_expected_chart_ids(synthetic_build))
    # one script for the config, one for the bundle, one per chart; none with a source
    assert rest.count("<script") == 2 + len(plots)
    assert not re.search(r"\b(src|href)\s*=", rest)
    assert "<link" not in rest and "@import" not in rest and "url(" not in rest
    assert not re.search(r"https?://", rest)
    assert "MathJax.js" not in html


# Evaluated in the page once it is ready: per plot div, its SVG's size and how many of its
# traces drew a mark with a non-empty box (bars, points, lines, polygons, heat map images).
CHART_PROBE = """
Array.from(document.querySelectorAll('.plotly-graph-div')).map(function (gd) {
  var svg = gd.querySelector('svg.main-svg');
  var box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
  function drawn(mark) { var b = mark.getBBox(); return b.width > 0 || b.height > 0; }
  var traces = Array.from(gd.querySelectorAll('g.trace, g.hm')).filter(function (trace) {
    return Array.from(trace.querySelectorAll('path, image')).some(drawn);
  });
  return {id: gd.id, width: box.width, height: box.height, traces: gd.data.length,
          traces_drawn: traces.length,
          legend_items: gd.querySelectorAll('g.legend g.traces').length};
})
"""
READY = (
    "document.readyState === 'complete' && Array.from("
    "document.querySelectorAll('.plotly-graph-div')).every(gd => gd._fullLayout"
    " && gd.querySelector('svg.main-svg'))"
)


def _centre(chromium_page, selector: str) -> tuple[float, float]:
    box = chromium_page.evaluate(
        f"(function () {{ var b = document.querySelector({selector!r}).getBoundingClientRect();"
        " return [b.x + b.width / 2, b.y + b.height / 2]; })()"
    )
    return box[0], box[1]


@pytest.fixture(scope="module")
def chromium_visit(report_file: Path) -> dict[str, object]:
    """Open the report in Chromium: probe every chart, screenshot it, then hover a customer,
    toggle a segment from the legend and zoom a map, as an analyst would."""
    seen: dict[str, object] = {}
    with open_page(report_file.as_uri()) as chromium_page:
        chromium_page.wait_until(READY)
        seen["charts"] = chromium_page.evaluate(CHART_PROBE)
        seen["dom"] = chromium_page.evaluate("document.documentElement.outerHTML")
        seen["screenshot"] = chromium_page.screenshot(ARTIFACTS / "report.png")

        # hover the first customer of the t-SNE map
        chromium_page.hover(*_centre(chromium_page, "#map_tsne g.trace path.point"))
        chromium_page.wait_until(
            "document.querySelector('#map_tsne .hoverlayer').textContent.length > 0", 10
        )
        seen["hover"] = chromium_page.evaluate(
            "document.querySelector('#map_tsne .hoverlayer').textContent"
        )

        # click the first legend entry of the t-SNE map: that segment is hidden
        chromium_page.click(*_centre(chromium_page, "#map_tsne g.legend rect.legendtoggle"))
        time.sleep(0.8)  # plotly waits out its double-click delay before toggling
        seen["visible"] = chromium_page.evaluate(
            "document.getElementById('map_tsne')._fullData.map(t => t.visible)"
        )

        # drag a box over the middle of the PCA map: it zooms in
        before = chromium_page.evaluate(
            "document.getElementById('map_pca')._fullLayout.xaxis.range"
        )
        x, y = _centre(chromium_page, "#map_pca .nsewdrag")
        chromium_page.drag((x - 60, y - 60), (x + 60, y + 60))
        time.sleep(0.3)
        after = chromium_page.evaluate("document.getElementById('map_pca')._fullLayout.xaxis.range")
        seen["zoom"] = (before, after)
        seen["requests"] = chromium_page.requests
    return seen


@pytest.mark.dbt
def test_every_chart_is_drawn_in_chromium(
    chromium_visit: dict[str, object], synthetic_build: Workspace
) -> None:
    charts = {chart["id"]: chart for chart in chromium_visit["charts"]}
    assert set(charts) == _expected_chart_ids(synthetic_build)
    for chart_id, chart in charts.items():
        assert chart["width"] > 0 and chart["height"] > 0, chart_id
        assert chart["traces"] > 0, chart_id
        assert chart["traces_drawn"] == chart["traces"], chart

    n_segments = synthetic_build.query(
        "select count(distinct coalesce(tsne_segment_name, 'noise')) from ml.customer_embeddings"
    )[0][0]
    assert charts["map_tsne"]["traces"] == charts["map_tsne"]["legend_items"] == n_segments

    summary_rows = synthetic_build.query("select scheme, segment_name from marts.segment_summary")
    body = re.search(r'<table class="summary".*?<tbody>(.*?)</tbody>', chromium_visit["dom"], re.S)
    assert body is not None
    assert body.group(1).count("<tr>") == len(summary_rows)
    assert chromium_visit["screenshot"].stat().st_size > 50_000


@pytest.mark.dbt
def test_the_page_requests_nothing_but_itself(
    chromium_visit: dict[str, object], report_file: Path
) -> None:
    requests = chromium_visit["requests"]
    assert requests[0] == report_file.as_uri()
    # plotly paints heat maps into data: URLs, which are in-memory, not network requests
    assert [url for url in requests[1:] if not url.startswith("data:")] == []


@pytest.mark.dbt
def test_hover_legend_and_zoom_work_in_chromium(
    chromium_visit: dict[str, object], synthetic_build: Workspace
) -> None:
    hover = re.search(
        r"customer (\d+)\s*segment (.+?)\s*R ([\d,]+) days, F ([\d,]+) orders",
        chromium_visit["hover"],
    )
    assert hover is not None, chromium_visit["hover"]
    customer = synthetic_build.frame(
        "select tsne_segment_name, recency_days, frequency from ml.customer_embeddings"
        f" join marts.customer_segments using (customer_id) where customer_id = {hover[1]}"
    )
    assert len(customer) == 1
    assert hover[2] == customer.tsne_segment_name[0]
    assert int(hover[3].replace(",", "")) == customer.recency_days[0]
    assert int(hover[4].replace(",", "")) == customer.frequency[0]
    visible = chromium_visit["visible"]
    assert visible[0] == "legendonly" and all(flag is True for flag in visible[1:])
    (before_low, before_high), (after_low, after_high) = chromium_visit["zoom"]
    assert before_low < after_low < after_high < before_high


@pytest.mark.dbt
def test_report_command_writes_the_report(synthetic_build: Workspace, tmp_path: Path) -> None:
    from retail_segments.ops.cli import main

    out = tmp_path / "out" / "report.html"
    assert main(["report", "--warehouse", str(synthetic_build.warehouse), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")


def test_report_command_names_a_missing_warehouse_and_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The project's serving copy before any build: build first; a path the user gave, in the
    project or outside it: correct the path (outside the project there is no build to run)."""
    from retail_segments.ops.cli import main

    monkeypatch.setenv("RETAIL_DUCKDB_PATH", str(tmp_path / "unbuilt" / "w.duckdb"))
    assert main(["report"]) == 2
    served = tmp_path / "unbuilt" / "serving" / "retail_segments_serving.duckdb"
    message = capsys.readouterr().err
    assert f"error: no warehouse at {served}; nothing was written." in message
    assert "Fix: run `make build` first (it publishes the serving copy)" in message

    missing = tmp_path / "missing.duckdb"
    assert main(["report", "--warehouse", str(missing)]) == 2
    message = capsys.readouterr().err
    assert f"Fix: pass --warehouse the serving copy's file (default {served})." in message
    assert "make build" not in message

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RETAIL_PROJECT_DIR", raising=False)
    out = tmp_path / "report.html"
    assert main(["report", "--warehouse", str(missing), "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert message == (
        f"error: no warehouse at {missing}; nothing was written.\n"
        "  Fix: pass --warehouse the serving copy's file.\n"
    )


@pytest.mark.dbt
def test_report_command_names_an_out_path_it_cannot_write(
    synthetic_build: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--out naming a folder, or a file on a full disk: the path and the fix, no traceback."""
    from retail_segments.ops.cli import main

    warehouse = ["report", "--warehouse", str(synthetic_build.warehouse)]
    assert main([*warehouse, "--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"--out {tmp_path} is a folder" in error
    assert f"such as {tmp_path / 'retail_segments_report.html'}" in error
    assert main([*warehouse, "--out", "/dev/full"]) == 2
    error = capsys.readouterr().err
    assert "cannot be written to /dev/full (No space left on device)" in error
    assert "Fix: give --out a file in a folder you can write" in error
    # nor over a DuckDB database (the warehouse itself, or another)
    assert main([*warehouse, "--out", str(synthetic_build.warehouse)]) == 2
    assert "is a DuckDB database, which the report would overwrite" in capsys.readouterr().err
    other = tmp_path / "other.duckdb"
    duckdb.connect(str(other)).close()
    assert main([*warehouse, "--out", str(other)]) == 2
    assert other.read_bytes()[8:12] == b"DUCK"
    # nor into a serving folder (BI reads it; a publish replaces it): the copy's own folder
    serving = tmp_path / "serving"
    (serving / "parquet" / "current").mkdir(parents=True)
    duckdb.connect(str(serving / "retail_segments_serving.duckdb")).close()
    manifest = serving / "parquet" / "current" / "manifest.json"
    served = ["report", "--warehouse", str(serving / "retail_segments_serving.duckdb")]
    assert main([*served, "--out", str(manifest)]) == 2
    assert f"--out {manifest} is inside the serving folder {serving}" in capsys.readouterr().err
    assert not manifest.exists()
    # nor over a file that holds no HTML page (the raw file, a daily file); an earlier report is
    # replaced
    raw = tmp_path / "raw.csv"
    raw.write_bytes(b"InvoiceNo,StockCode\n536365,85123A\n")
    assert main([*warehouse, "--out", str(raw)]) == 2
    assert f"--out {raw} is a file that holds no HTML page" in capsys.readouterr().err
    assert raw.read_bytes().startswith(b"InvoiceNo")
    earlier = tmp_path / "earlier.html"
    earlier.write_bytes(b"\xef\xbb\xbf\n  <!DOCTYPE html><html></html>")
    assert main([*warehouse, "--out", str(earlier)]) == 0
    assert "plotly" in earlier.read_text(encoding="utf-8").lower()


def test_report_command_names_a_file_that_is_not_a_warehouse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from retail_segments.ops.cli import main

    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    assert main(["report", "--warehouse", str(empty), "--out", str(tmp_path / "r.html")]) == 2
    error = capsys.readouterr().err
    assert "empty.duckdb is not a retail-segments warehouse" in error and "make build" in error
    assert not (tmp_path / "r.html").exists()
    # a file that is no DuckDB database at all
    notes = tmp_path / "notes.json"
    notes.write_text('{"not": "a warehouse"}')
    assert main(["report", "--warehouse", str(notes), "--out", str(tmp_path / "r.html")]) == 2
    assert f"{notes} is not a DuckDB file" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


@pytest.mark.dbt
def test_report_names_the_published_build_it_was_drawn_from(
    synthetic_build: Workspace, report_file: Path, tmp_path: Path
) -> None:
    assert "From an unpublished warehouse" in report_file.read_text()
    info = publish.new_build_info("synthetic.csv.zst", PROJECT_ROOT)
    relations = publish.published_relations(synthetic_build.root / "target" / "manifest.json")
    published = publish.publish(synthetic_build.warehouse, tmp_path / "serving", info, relations)
    html = report.write_report(published.database, tmp_path / "report.html").read_text()
    assert f"From build {info.build_id}, published" in html
