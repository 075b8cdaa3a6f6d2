"""Benchmark: ``python -m retail_segments bench`` (``make bench``).

Builds the warehouse from scratch in a temporary directory (so nothing of yours is touched) and
prints the wall time of the whole ``dbt build``, the peak resident memory of the dbt process, and
the time of every model from dbt's ``run_results.json``. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from retail_segments.classifier import train_segment_classifier
from retail_segments.dbt_runner import dbt_environment, run_dbt
from retail_segments.paths import RawDataNotFoundError, warehouse_path


@dataclass(frozen=True)
class NodeTiming:
    """One executed dbt node from run_results.json."""

    unique_id: str
    resource_type: str
    status: str
    seconds: float


def read_run_results(path: Path) -> list[NodeTiming]:
    """Parse dbt's run_results.json into node timings, slowest first."""
    results = json.loads(path.read_text())["results"]
    timings = [
        NodeTiming(
            unique_id=result["unique_id"],
            resource_type=result["unique_id"].split(".", 1)[0],
            status=str(result["status"]),
            seconds=float(result["execution_time"]),
        )
        for result in results
    ]
    return sorted(timings, key=lambda timing: timing.seconds, reverse=True)


def format_report(wall_seconds: float, peak_rss_mib: float, timings: list[NodeTiming]) -> str:
    """Render the benchmark figures as a plain-text table."""
    models = [t for t in timings if t.resource_type == "model"]
    tests = [t for t in timings if t.resource_type in ("test", "unit_test")]
    lines = [
        f"whole dbt build (wall):        {wall_seconds:8.1f} s",
        f"peak resident memory (dbt):    {peak_rss_mib:8.0f} MiB",
        f"models: {len(models)}, summed {sum(t.seconds for t in models):.1f} s; "
        f"tests: {len(tests)}, summed {sum(t.seconds for t in tests):.1f} s",
        "",
        f"{'model':<60} {'seconds':>8}  status",
    ]
    lines += [f"{t.unique_id.split('.')[-1]:<60} {t.seconds:8.2f}  {t.status}" for t in models]
    return "\n".join(lines)


def run_build_benchmark(
    work_dir: Path, dbt_args: list[str]
) -> tuple[float, float, list[NodeTiming]]:
    """Run ``dbt build`` into a fresh warehouse under work_dir; return wall seconds, peak RSS in
    MiB of the dbt child, and node timings. Raises RuntimeError if the build fails."""
    env = dbt_environment({**os.environ, "RETAIL_DUCKDB_PATH": str(work_dir / "bench.duckdb")})
    target = work_dir / "target"
    started = time.perf_counter()
    finished = run_dbt(
        ["build", "--target-path", str(target), "--log-path", str(work_dir / "logs"), *dbt_args],
        env,
        capture=True,
    )
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"dbt build failed during the benchmark:\n{finished.stdout[-4000:]}")
    peak_rss_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, peak_rss_mib, read_run_results(target / "run_results.json")


def compare_classifier_searches(warehouse: Path) -> pd.DataFrame:
    """Train the part III classifier with the fast default search and with the study's full grids
    on a built warehouse's RFM and part II segments; return one row per search mode with the
    selected model, its CV and test accuracy and the wall time of the whole search."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rfm = connection.sql(
            "select customer_id, recency_days, frequency, monetary from marts.customer_rfm"
        ).df()
        segments = connection.sql(
            "select customer_id, tsne_segment_name from ml.customer_embeddings"
        ).df()
    rows = []
    for search in ("fast", "full"):
        started = time.perf_counter()
        result = train_segment_classifier(
            rfm, segments, {"search": search}, segment_column="tsne_segment_name"
        )
        seconds = time.perf_counter() - started
        selected = result.metrics.loc[result.metrics["is_selected"]].iloc[0]
        rows.append(
            {
                "search": search,
                "model": selected["model"],
                "best_params": selected["best_params"],
                "cv_accuracy": selected["cv_accuracy"],
                "test_accuracy": selected["test_accuracy"],
                "seconds": seconds,
            }
        )
    return pd.DataFrame(rows)


def format_classifier_comparison(comparison: pd.DataFrame) -> str:
    """Render the fast-vs-full comparison, with the gap in test accuracy points."""
    by_search = comparison.set_index("search")
    gap = 100 * (by_search.at["full", "test_accuracy"] - by_search.at["fast", "test_accuracy"])
    lines = [f"{'search':<6} {'model':<24} {'cv acc':>7} {'test acc':>8} {'seconds':>8}  params"]
    lines += [
        f"{row.search:<6} {row.model:<24} {row.cv_accuracy:7.4f} {row.test_accuracy:8.4f} "
        f"{row.seconds:8.1f}  {row.best_params}"
        for row in comparison.itertuples()
    ]
    lines.append(f"full minus fast, test accuracy: {gap:+.2f} points (target: within 0.5)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="retail-segments bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--classifier-searches",
        action="store_true",
        help="instead of building, compare the fast classifier search with the study's full grids"
        " on the built warehouse (RETAIL_DUCKDB_PATH or the default); takes many minutes",
    )
    parser.add_argument("dbt_args", nargs=argparse.REMAINDER, help="extra arguments for dbt build")
    args = parser.parse_args(argv)
    if args.classifier_searches:
        print(format_classifier_comparison(compare_classifier_searches(warehouse_path())))
        return 0
    try:
        with tempfile.TemporaryDirectory(prefix="retail-bench-") as tmp:
            wall, peak, timings = run_build_benchmark(Path(tmp), args.dbt_args)
    except RawDataNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(format_report(wall, peak, timings))
    return 0
