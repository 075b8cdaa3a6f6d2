"""The HTML report: pure rendering on small frames, and the real report of a synthetic build
rendered in headless Chromium (every chart present and drawn; a screenshot kept in artifacts/)."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from browser import dump_dom, screenshot
from dbt_helpers import Workspace

from retail_segments import publish, report
from retail_segments.paths import PROJECT_ROOT

ARTIFACTS = PROJECT_ROOT / "artifacts"


def test_min_max_scale_maps_each_column_to_the_unit_interval() -> None:
    frame = pd.DataFrame({"r": [10.0, 30.0, 20.0], "f": [2.0, 2.0, 2.0]})
    scaled = report.min_max_scale(frame, ["r", "f"])
    assert scaled.r.tolist() == [0.0, 1.0, 0.5]
    assert scaled.f.tolist() == [0.5, 0.5, 0.5]
    assert frame.r.tolist() == [10.0, 30.0, 20.0]


def test_confusion_matrix_is_square_over_every_segment_seen() -> None:
    confusion = pd.DataFrame(
        {
            "actual_segment": ["a", "a", "b"],
            "predicted_segment": ["a", "c", "b"],
            "n_customers": [5, 1, 4],
        }
    )
    html = report.confusion_figure(confusion, pd.DataFrame())
    assert html.count('class="mark"') == 9
    assert ">5<" in html and ">4<" in html


def test_summary_table_lists_every_segment_under_its_scheme() -> None:
    summary = pd.DataFrame(
        {
            "scheme": ["tsne_segment", "rfm_score", "rfm_score"],
            "segment_name": ["loyal", "champions", "lost <old>"],
            "segment_rank": [1, 1, 2],
            "n_customers": [10, 4, 6],
            "customer_share": [1.0, 0.4, 0.6],
            "revenue": [100.0, 90.0, 10.0],
            "revenue_share": [1.0, 0.9, 0.1],
            "avg_order_value": [10.0, 30.0, 5.0],
            "mean_recency_days": [5.0, 3.0, 300.0],
            "mean_frequency": [2.0, 3.0, 1.0],
            "mean_monetary": [10.0, 22.5, 1.7],
            "median_recency_days": [5.0, 3.0, 300.0],
            "median_frequency": [2.0, 3.0, 1.0],
            "median_monetary": [10.0, 22.5, 1.7],
            "strategy": ["keep", "reward", "let go"],
        }
    )
    html = report.summary_table(summary)
    assert html.index("RFM-score segments") < html.index("champions") < html.index("lost &lt;old")
    assert html.index("lost &lt;old") < html.index("Part II segments") < html.index(">loyal<")
    assert "90.0%" in html and ">reward<" in html


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
        "radar_pca",
        "radar_tsne",
        "map_pca",
        "map_tsne",
        "silhouette_pca",
        "silhouette_tsne",
        "confusion_matrix",
        *(["segment_migration"] if n_migrations else []),
    }


def _marks_per_chart(html: str) -> dict[str, int]:
    """Count the data marks of each chart in the HTML as written."""
    charts = re.findall(r'<svg class="chart" data-chart="([^"]+)".*?</svg>', html, flags=re.S)
    bodies = re.split(r'<svg class="chart" data-chart="[^"]+"', html)[1:]
    return {chart: body.count('class="mark"') for chart, body in zip(charts, bodies, strict=True)}


@pytest.mark.dbt
def test_report_is_self_contained(report_file: Path, synthetic_build: Workspace) -> None:
    html = report_file.read_text()
    assert set(_marks_per_chart(html)) == _expected_chart_ids(synthetic_build)
    assert not re.search(r"\b(src|href)\s*=", html)
    assert "@import" not in html and "url(" not in html
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg\")", html)


@pytest.mark.dbt
def test_every_chart_is_drawn_in_chromium(report_file: Path, synthetic_build: Workspace) -> None:
    marks_written = _marks_per_chart(report_file.read_text())
    dom = dump_dom(report_file.as_uri())
    drawn = dict(
        re.findall(r'<svg class="chart" data-chart="([^"]+)"[^>]*?data-drawn-marks="(\d+)"', dom)
    )
    assert set(drawn) == _expected_chart_ids(synthetic_build)
    for chart, n_marks in marks_written.items():
        assert n_marks > 0, chart
        assert int(drawn[chart]) == n_marks, f"{chart}: {drawn[chart]} of {n_marks} marks drawn"
    charts_total = re.search(r'data-charts="(\d+)"', dom)
    charts_drawn = re.search(r'data-charts-drawn="(\d+)"', dom)
    assert charts_total and charts_drawn
    assert charts_total.group(1) == charts_drawn.group(1) == str(len(marks_written))

    summary_rows = synthetic_build.query("select scheme, segment_name from marts.segment_summary")
    body = re.search(r'<table class="summary".*?<tbody>(.*?)</tbody>', dom, flags=re.S)
    assert body is not None
    assert body.group(1).count("<tr>") == len(summary_rows)

    shot = screenshot(report_file.as_uri(), ARTIFACTS / "report.png", window=(1400, 7000))
    assert shot.stat().st_size > 50_000


@pytest.mark.dbt
def test_report_command_writes_the_report(synthetic_build: Workspace, tmp_path: Path) -> None:
    from retail_segments.cli import main

    out = tmp_path / "out" / "report.html"
    assert main(["report", "--warehouse", str(synthetic_build.warehouse), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert main(["report", "--warehouse", str(tmp_path / "missing.duckdb")]) == 2


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
    html = report.migration_figure(migration)
    assert 'data-chart="segment_migration"' in html
    for count in (40, 7, 3, 2):
        assert f">{count}<" in html
    assert "2011-11-01" in html and "2011-12-01" in html


def test_migration_note_when_the_history_has_one_date() -> None:
    empty = pd.DataFrame(
        columns=["from_as_of", "to_as_of", "from_segment", "to_segment", "n_customers"]
    )
    html = report.migration_figure(empty)
    assert "make backfill" in html and "<svg" not in html
