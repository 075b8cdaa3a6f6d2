"""The scale benchmark's parts: scales, cached raw files, per-build memory, the report and the
pandas baseline (same results as the reference, notebook style)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import zstandard
from dbt_helpers import PROJECT_ROOT, Workspace

from retail_segments_dev import baseline, bench, reference
from retail_segments_dev.bench import BuildMeasurement, NodeTiming
from retail_segments_dev.synthetic import generate_raw_lines, write_raw_file


def _timings() -> list[NodeTiming]:
    rows = [
        ("operation.retail_segments.retail_segments-on-run-start-0", 1.5),
        ("model.retail_segments.stg_online_retail__lines", 0.25),
        ("model.retail_segments.int_sales_lines__screened", 2.0),
        ("model.retail_segments.fct_sales_lines", 1.0),
        ("model.retail_segments.customer_rfm", 0.5),
        ("model.retail_segments.int_customer_rfm__history", 0.75),
        ("model.retail_segments.int_sales_lines__data_window", 0.125),
        ("model.retail_segments.fct_orders", 4.0),
        ("model.retail_segments.ml_segmentation_tsne_fit", 30.0),
        ("test.retail_segments.not_null_fct_sales_lines_customer_id.abc", 0.25),
    ]
    return [NodeTiming(uid, uid.split(".", 1)[0], "success", seconds) for uid, seconds in rows]


def _measurement(scale: int, wall: float, peak: float) -> BuildMeasurement:
    return BuildMeasurement(
        scale=scale,
        raw_path=Path(f"/data/x{scale}.csv.zst"),
        wall_seconds=wall,
        peak_rss_mib=peak,
        timings=_timings(),
        raw_lines=541_909 * scale,
        customers=4_372 * scale,
    )


def test_scales_parse_and_refuse_nonsense() -> None:
    assert bench.parse_scales("1,10,100") == [1, 10, 100]
    for text in ("", "0", "1,x", "-10"):
        with pytest.raises(Exception, match="scales"):
            bench.parse_scales(text)


def test_run_results_are_read_slowest_first(tmp_path: Path) -> None:
    results = [
        {"unique_id": timing.unique_id, "status": "success", "execution_time": timing.seconds}
        for timing in _timings()
    ]
    path = tmp_path / "run_results.json"
    path.write_text(json.dumps({"results": results}))
    timings = bench.read_run_results(path)
    assert timings[0].name == "ml_segmentation_tsne_fit"
    assert [t.seconds for t in timings] == sorted((t.seconds for t in timings), reverse=True)
    assert {t.resource_type for t in timings} == {"operation", "model", "test"}


def test_cleaning_time_sums_the_models_the_baseline_replaces() -> None:
    # staging, screened, the fact, the RFM history and customer_rfm; not the data window
    assert bench.cleaning_seconds(_timings()) == 0.25 + 2.0 + 1.0 + 0.5 + 0.75
    models = {path.stem for path in (PROJECT_ROOT / "models").rglob("*.sql")}
    assert set(bench.CLEANING_MODELS) <= models
    assert bench.hook_seconds(_timings()) == 1.5


def test_synthetic_files_are_generated_once_then_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "scaled_customers", lambda scale: 40)
    path = bench.raw_file_for_scale(10, tmp_path, {})
    assert path == tmp_path / "synthetic-x10-seed0.csv.zst"
    assert list(tmp_path.iterdir()) == [path]  # no partial file left behind
    written = path.stat().st_mtime_ns
    assert bench.raw_file_for_scale(10, tmp_path, {}) == path
    assert path.stat().st_mtime_ns == written


def test_scale_one_is_the_real_file(tmp_path: Path) -> None:
    real = tmp_path / "real.csv.zst"
    real.write_bytes(b"x")
    assert bench.raw_file_for_scale(1, tmp_path / "unused", {"RETAIL_RAW_PATH": str(real)}) == real


def test_peak_memory_is_measured_per_child(tmp_path: Path) -> None:
    allocate = "import time; block = b'x' * (300 * 2**20); time.sleep(0.1)"
    code, _, big = bench.run_measured(
        [sys.executable, "-c", allocate], {"PATH": ""}, tmp_path / "a.log"
    )
    assert code == 0
    code, _, small = bench.run_measured(
        [sys.executable, "-c", "pass"], {"PATH": ""}, tmp_path / "b.log"
    )
    assert code == 0
    assert big >= 300
    assert small < 100  # not the running maximum over all children
    failed, _, _ = bench.run_measured(
        [sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "c.log"
    )
    assert failed == 3


def test_report_and_targets_say_what_was_met() -> None:
    report = bench.format_report(_measurement(10, 120.0, 900.0))
    assert "5,419,090 raw lines" in report
    assert "SQL read + cleaning + RFM models, summed: 4.5 s" in report
    assert "ml_segmentation_tsne_fit" in report
    assert "not_null" not in report
    targets = bench.format_targets([_measurement(1, 45.0, 800.0), _measurement(100, 700.0, 6000.0)])
    assert "1x build under 60 s: met" in targets
    assert "100x under 600 s: MISSED" in targets
    assert "peak under 8192 MiB: met" in targets
    comparison = bench.format_baseline(_measurement(1, 45.0, 800.0), 760.0)
    assert "4.50 s -> 169x faster (target >= 100x: met)" in comparison


def test_main_builds_every_scale_and_times_the_baseline_where_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built, timed = [], []
    monkeypatch.setattr(bench, "raw_file_for_scale", lambda scale, data_dir, environ: Path("f"))
    monkeypatch.setattr(
        bench,
        "run_build_benchmark",
        lambda work_dir, dbt_args, raw_path, scale: (
            built.append(scale) or _measurement(scale, 10.0 * scale, 500.0)
        ),
    )
    monkeypatch.setattr(bench, "time_baseline", lambda raw_path: timed.append(raw_path) or 400.0)
    assert bench.main(["--scales", "1,10", "--work-dir", str(tmp_path)]) == 0
    assert built == [1, 10]
    assert timed == [Path("f")]
    output = capsys.readouterr().out
    assert "== scale 10x" in output
    assert "pandas baseline" in output


def test_the_notebook_baseline_equals_the_reference(synthetic_raw: Path) -> None:
    raw = reference.read_raw(synthetic_raw)
    expected = reference.clean(raw)
    actual = baseline.clean(raw)
    pd.testing.assert_frame_equal(actual, expected)
    _, rfm = baseline.clean_and_rfm(synthetic_raw)
    pd.testing.assert_frame_equal(rfm, reference.rfm(expected))


def _spark(scale: int, wall: float) -> bench.SparkMeasurement:
    return bench.SparkMeasurement(
        scale=scale,
        raw_path=Path(f"/data/x{scale}.csv.zst"),
        wall_seconds=wall,
        jvm_peak_mib=900.0,
        python_peak_mib=700.0,
        timings=_timings(),
        raw_lines=541_909 * scale,
    )


def test_the_engines_table_puts_duckdb_and_spark_side_by_side() -> None:
    table = bench.format_engines(
        [_measurement(1, 40.0, 1500.0)], [_spark(1, 200.0), _spark(10, 900.0)]
    )
    rows = table.splitlines()
    assert "DuckDB s" in rows[0] and "JVM MiB" in rows[0] and "Python MiB" in rows[0]
    assert rows[1].split() == ["1x", "541,909", "|", "40.0", "1500", "|", "200.0", "900", "700"]
    assert rows[2].split() == ["10x", "5,419,090", "|", "-", "-", "|", "900.0", "900", "700"]
    report = bench.format_spark_report(_spark(10, 900.0))
    assert "Spark, scale 10x" in report and "peak JVM" in report and "900.0 s" in report


def test_process_tree_peaks_sees_a_python_child(tmp_path: Path) -> None:
    """The sampler finds a child process's memory under its kind (here a Python child holding
    about 200 MiB), not under the other."""
    import subprocess
    import time

    ready = tmp_path / "ready"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, pathlib; data = bytearray(200 * 2**20);"
            " pathlib.Path(sys.argv[1]).touch(); time.sleep(30)",
            str(ready),
        ]
    )
    try:
        while not ready.exists():
            time.sleep(0.05)
        peaks = bench.ProcessTreePeaks()
        peaks.sample(child.pid)
    finally:
        child.kill()
        child.wait()
    assert peaks.python_mib > 190
    assert peaks.jvm_mib == 0.0


@pytest.mark.dbt
def test_the_engine_comparison_finds_a_changed_row(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    """`make bench`'s Spark-against-DuckDB check: two copies of one build are equal; a copy with
    one value changed in one mart is not, and the table is named."""
    duck, spark = tmp_path / "duck", tmp_path / "spark"
    for side in (duck, spark):
        (side / "target").mkdir(parents=True)
        shutil.copyfile(synthetic_build.warehouse, side / "bench.duckdb")
        shutil.copyfile(
            synthetic_build.root / "target" / "manifest.json", side / "target" / "manifest.json"
        )
    bench.serving_compare.published_serving(
        spark / "bench.duckdb", spark / "target" / "manifest.json", synthetic_raw, spark / "serving"
    )
    report = bench.compare_engines(duck, spark, synthetic_raw)
    assert "equal: " in report and "DIFFERENT" not in report, report
    assert f"{len(reference.read_raw(synthetic_raw)):,} raw lines" in report

    served = spark / "serving" / "retail_segments_serving.duckdb"
    served.chmod(0o644)
    with duckdb.connect(str(served)) as connection:
        connection.execute(
            "update marts.customer_rfm set monetary = monetary * 1.001"
            " where customer_id = (select min(customer_id) from marts.customer_rfm)"
        )
    changed = bench.compare_engines(duck, spark, synthetic_raw)
    assert "DIFFERENT" in changed and "marts.customer_rfm row" in changed, changed


def _zst_lines(path: Path) -> list[bytes]:
    with path.open("rb") as handle:
        reader = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True)
        return reader.read().splitlines(keepends=True)


def test_the_incremental_check_cuts_the_file_before_its_last_day(tmp_path: Path) -> None:
    """make bench's Spark incremental check loads a file without its last day, then that day as
    a daily file: together the two files hold every line as written, in the file's order."""
    lines = generate_raw_lines(n_customers=60, seed=3).sort_values("InvoiceDate", kind="stable")
    raw = write_raw_file(lines, tmp_path / "raw.csv.zst")
    history, day_file = bench.split_last_day(raw, tmp_path / "split")
    last = lines.InvoiceDate.max().date()
    assert day_file.name == f"{last}.csv.zst"
    original = _zst_lines(raw)
    before, day = _zst_lines(history), _zst_lines(day_file)
    assert before[0] == day[0] == original[0]  # the header in both
    assert before + day[1:] == original
    assert len(day) - 1 == int((lines.InvoiceDate.dt.date == last).sum()) > 0
    # a line of an earlier day after the last day's first line: the order could not be kept
    shuffled = pd.concat([lines.iloc[-1:], lines.iloc[:-1]])
    with pytest.raises(ValueError, match=f"the lines of {last} are not the file's last lines"):
        bench.split_last_day(write_raw_file(shuffled, tmp_path / "bad.csv.zst"), tmp_path / "x")
