"""Safe publishing end to end: while ``python -m retail_segments build`` rebuilds on another raw
file, a reader process queries the serving copy in a loop and never errors nor sees a mix of two
builds; a build that fails publishes nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import zstandard
from dbt_helpers import Workspace

from retail_segments import publish
from retail_segments.paths import PROJECT_ROOT
from retail_segments.synthetic import RAW_COLUMNS, generate_raw_lines, write_raw_file

pytestmark = pytest.mark.dbt

READER = Path(__file__).with_name("serving_reader.py")
OTHER_SEED = 8


def _table_counts(warehouse: Path) -> dict[str, int]:
    """Row count of every table in schemas marts and ml of a built warehouse."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        tables = connection.sql(
            "select table_schema || '.' || table_name from information_schema.tables"
            " where table_schema in ('marts', 'ml') and table_type = 'BASE TABLE'"
        ).fetchall()
        return {
            name: connection.sql(f"select count(*) from {name}").fetchall()[0][0]
            for (name,) in tables
        }


def _cli_build(
    raw: Path, root: Path, serving: Path, *dbt_args: str
) -> subprocess.CompletedProcess[str]:
    """``python -m retail_segments build [dbt_args]`` into root/warehouse.duckdb, publishing to
    serving."""
    env = {
        **os.environ,
        "RETAIL_RAW_PATH": str(raw),
        "RETAIL_DUCKDB_PATH": str(root / "warehouse.duckdb"),
        publish.SERVING_DIR_ENV: str(serving),
    }
    dirs = ["--target-path", str(root / "target"), "--log-path", str(root / "logs")]
    return subprocess.run(
        [sys.executable, "-m", "retail_segments", "build", *dirs, *dbt_args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def _serving_state(serving: Path) -> tuple[bytes, str]:
    return (serving / publish.SERVING_DB_NAME).read_bytes(), str(
        (serving / publish.PARQUET_DIR_NAME / publish.CURRENT_LINK_NAME).readlink()
    )


def test_a_reader_never_sees_a_half_built_or_mixed_warehouse(
    synthetic_build: Workspace, tmp_path: Path
) -> None:
    serving = tmp_path / "serving"
    first = publish.publish(
        synthetic_build.warehouse,
        serving,
        publish.new_build_info("seed 7", PROJECT_ROOT),
    )
    expected = {first.build_id: _table_counts(synthetic_build.warehouse)}
    other_raw = write_raw_file(
        generate_raw_lines(n_customers=150, seed=OTHER_SEED), tmp_path / "other.csv.zst"
    )
    stop, readings_file = tmp_path / "stop", tmp_path / "readings.jsonl"
    reader = subprocess.Popen(
        [sys.executable, str(READER), str(serving), str(stop), str(readings_file)],
        cwd=PROJECT_ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not readings_file.exists() or not readings_file.read_text().strip():
            assert time.monotonic() < deadline and reader.poll() is None, "reader did not start"
            time.sleep(0.1)
        build_root = tmp_path / "second_build"
        # A real build through the CLI, kept short: the foundation up to customer_rfm, with the
        # tests of those models only.
        result = _cli_build(
            other_raw,
            build_root,
            serving,
            "--select",
            "+customer_rfm",
            "--indirect-selection",
            "cautious",
        )
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
        stop.touch()
        assert reader.wait(timeout=120) == 0
    finally:
        reader.kill()
    second_id = publish.read_current_parquet_dir(serving).name
    assert second_id != first.build_id and f"Published build {second_id}" in result.stdout
    expected[second_id] = _table_counts(build_root / "warehouse.duckdb")
    differing = [
        t
        for t in expected[first.build_id]
        if expected[first.build_id][t] != expected[second_id].get(t)
    ]
    assert "marts.fct_sales_lines" in differing, "the two builds must be told apart by counts"

    readings = [json.loads(line) for line in readings_file.read_text().splitlines()]
    assert [r["error"] for r in readings if "error" in r] == []
    for source in ("duckdb", "parquet"):
        order = []
        for reading in (r for r in readings if r["source"] == source):
            assert len(reading["build_ids"]) == 1, f"{source} mixed builds: {reading['build_ids']}"
            (build_id,) = reading["build_ids"]
            wanted = {
                table: n
                for table, n in expected[build_id].items()
                if source == "duckdb" or table.startswith("marts.")
            }
            assert reading["counts"] == wanted, f"{source} reading of {build_id} does not match it"
            if not order or order[-1] != build_id:
                order.append(build_id)
        assert order == [first.build_id, second_id], f"{source} saw builds in order {order}"
    assert len(readings) > 20


def test_a_failed_build_publishes_nothing(synthetic_build: Workspace, tmp_path: Path) -> None:
    serving = tmp_path / "serving"
    publish.publish(synthetic_build.warehouse, serving, publish.new_build_info("7", PROJECT_ROOT))
    before = _serving_state(serving)
    bad_raw = tmp_path / "header_only.csv.zst"
    bad_raw.write_bytes(
        zstandard.ZstdCompressor().compress((",".join(RAW_COLUMNS) + "\n").encode())
    )

    result = _cli_build(bad_raw, tmp_path / "failed_build", serving)
    assert result.returncode != 0
    assert "holds no data lines" in result.stdout
    assert "nothing was published" in result.stderr
    assert _serving_state(serving) == before
    assert sorted(p.name for p in serving.iterdir()) == ["parquet", publish.SERVING_DB_NAME]
