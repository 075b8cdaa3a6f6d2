"""Benchmark: ``python -m retail_segments_dev.bench`` (``make bench``, ``make bench-scale``).

For every scale of ``--scales`` (default ``1``) builds the warehouse from scratch in a fresh
temporary directory (so nothing of yours is touched), as ``make build`` does: ``prepare`` (check
and land the inputs, `retail_segments.ops.preflight`) and then ``dbt build``, and prints the wall
time of each and of the whole build, the peak resident memory of each process (``ru_maxrss`` from
``wait4`` in a small wrapper process, so every build is measured on its own; `run_measured`) and
the time of every model from dbt's ``run_results.json``. Scale 1 is the real file (found like
``make build`` finds it); scale N > 1 is a synthetic file with N times its customers
(`retail_segments_dev.synthetic`), generated once into ``--data-dir`` and reused.

For every scale of ``--baseline-scales`` (default ``1``; the notebook baseline is quadratic, so
hours at 10x) it also runs the pandas baseline of the study's cleaning and RFM
(`retail_segments_dev.baseline`) on the same file and prints how many times faster the SQL cleaning
and RFM models were. Figures are printed, never asserted.

For every scale of ``--spark-scales`` (``make bench``: 1 and 10) it also runs the whole build on
a local Spark session, ``python -m retail_segments build --target spark`` (`run_spark_benchmark`),
and prints its wall time and the peak memory of its JVM (in local mode the driver and the
executor are one JVM) and of its Python processes (the launcher, which holds dbt and the fits, and
the workers of the distributed scoring), sampled from ``/proc`` (`ProcessTreePeaks`); then one
table with DuckDB's and Spark's figures side by side (`format_engines`).
With ``--spark-incremental`` (``make bench``) it loads the real file as daily files arrive, on
Spark and on DuckDB: the file without its last trading day first, then that day as a daily file
(merged into the loaded lines by the incremental models), and compares the two serving copies
(`run_spark_incremental_check`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd
import zstandard

from retail_segments.ml.classifier import train_segment_classifier
from retail_segments.ops import publish
from retail_segments.ops.dbt_runner import dbt_executable
from retail_segments.ops.paths import (
    RAW_PATH_ENV,
    RawDataNotFoundError,
    find_project_root,
    resolve_raw_path,
    warehouse_path,
)
from retail_segments_dev import baseline, serving_compare
from retail_segments_dev.synthetic import iter_raw_chunks, scaled_customers, write_raw_file

DEFAULT_DATA_DIR = Path("data") / "bench"  # relative to the project
SYNTHETIC_SEED = 0
# The targets on the 2-core, 24 GiB machine.
TARGET_1X_SECONDS = 60.0
TARGET_100X_SECONDS = 600.0
TARGET_100X_PEAK_MIB = 8 * 1024.0
TARGET_BASELINE_RATIO = 100.0
# The SQL models that do what the pandas baseline does: read the file (staging), clean it (steps
# 1-3 and the fact), RFM (computed as known at rfm_as_of in the history model, which needs the
# returns' dates; customer_rfm selects its rows). A test checks that each names a model.
CLEANING_MODELS: tuple[str, ...] = (
    "stg_online_retail__lines",
    "stg_online_retail__incoming_lines",
    "int_sales_lines__screened",
    "int_sales_lines__cancellations_matched",
    "fct_sales_lines",
    "int_sales_lines__returns_dated",
    "int_customer_rfm__history",
    "customer_rfm",
)


@dataclass(frozen=True)
class NodeTiming:
    """One executed dbt node from run_results.json."""

    unique_id: str
    resource_type: str
    status: str
    seconds: float

    @property
    def name(self) -> str:
        """The node's name (last part of its unique id)."""
        return self.unique_id.split(".")[-1]


@dataclass(frozen=True)
class BuildMeasurement:
    """One measured ``dbt build``: its raw file, wall seconds, peak RSS and node timings."""

    scale: int
    raw_path: Path
    wall_seconds: float
    peak_rss_mib: float
    timings: list[NodeTiming]
    raw_lines: int | None
    customers: int | None
    prepare_seconds: float = 0.0
    prepare_peak_mib: float = 0.0

    @property
    def total_seconds(self) -> float:
        """What ``make build`` takes: prepare (inputs checked and landed) plus ``dbt build``."""
        return self.prepare_seconds + self.wall_seconds

    @property
    def peak_mib(self) -> float:
        """The larger of the two processes' peaks (they run one after the other)."""
        return max(self.peak_rss_mib, self.prepare_peak_mib)


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


def cleaning_seconds(timings: Sequence[NodeTiming]) -> float:
    """Summed time of the SQL models that read, clean and compute RFM (the baseline's work):
    `CLEANING_MODELS`."""
    return sum(
        timing.seconds
        for timing in timings
        if timing.resource_type == "model" and timing.name in CLEANING_MODELS
    )


def hook_seconds(timings: Sequence[NodeTiming]) -> float:
    """Summed time of the project hooks (the raw-file validation before anything is built)."""
    return sum(timing.seconds for timing in timings if timing.resource_type == "operation")


def parse_scales(text: str) -> list[int]:
    """Parse ``"1,10,100"`` into ``[1, 10, 100]``; every scale must be a positive integer."""
    try:
        scales = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"scales must be integers, got {text!r}") from error
    if not scales or min(scales) < 1:
        raise argparse.ArgumentTypeError(f"scales must be positive integers, got {text!r}")
    return scales


def raw_file_for_scale(scale: int, data_dir: Path, environ: Mapping[str, str]) -> Path:
    """The raw file of a scale: the real file for 1, else the cached synthetic file
    ``<data_dir>/synthetic-x<scale>-seed0.csv.zst``, generated first when it is missing (written
    under a temporary name and renamed, so an interrupted run leaves no partial file)."""
    if scale == 1:
        return resolve_raw_path(find_project_root(), environ)
    path = data_dir / f"synthetic-x{scale}-seed{SYNTHETIC_SEED}.csv.zst"
    if not path.exists():
        n_customers = scaled_customers(scale)
        print(f"generating {path} ({n_customers:,} customers) ...", flush=True)
        partial = path.with_name(f"partial-{path.name}")
        write_raw_file(iter_raw_chunks(n_customers, SYNTHETIC_SEED), partial)
        partial.replace(path)
    return path


# Runs argv[2:] as its child and writes that child's peak RSS (KiB) to argv[1]. The measured
# command is forked from this small process: a child forked from the benchmark itself would carry
# the benchmark's own peak into its ru_maxrss (Linux keeps the pre-exec high-water mark).
_MEASURE_CHILD = """\
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_measured(
    command: Sequence[str], env: Mapping[str, str], log_path: Path
) -> tuple[int, float, float]:
    """Run a command with its output in ``log_path``; return its exit code, wall seconds and
    peak resident memory in MiB: ``ru_maxrss`` of that process (and of the children it waited
    for), taken by a minimal wrapper process, so each command is measured on its own."""
    rss_path = log_path.with_suffix(".maxrss")
    started = time.perf_counter()
    with log_path.open("w") as log:
        finished = subprocess.run(
            [sys.executable, "-c", _MEASURE_CHILD, str(rss_path), *command],
            cwd=find_project_root(),
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    wall = time.perf_counter() - started
    return finished.returncode, wall, int(rss_path.read_text()) / 1024


def _raw_size(warehouse: Path) -> tuple[int | None, int | None]:
    """Lines and customers of the raw file, from the built warehouse's raw profile."""
    try:
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            query = "select n_rows, n_customers from marts.eda_raw_profile"
            rows = connection.sql(query).fetchall()
    except duckdb.Error:
        return None, None
    return (int(rows[0][0]), int(rows[0][1])) if rows else (None, None)


def run_build_benchmark(
    work_dir: Path, dbt_args: Sequence[str], raw_path: Path | None = None, scale: int = 1
) -> BuildMeasurement:
    """Run ``dbt build`` on ``raw_path`` (default: the file ``make build`` would use) into a fresh
    warehouse under ``work_dir`` and measure it. Raises RuntimeError if the build fails."""
    environ = dict(os.environ)
    environ[RAW_PATH_ENV] = str(raw_path or resolve_raw_path(find_project_root(), environ))
    env = {**environ, "RETAIL_DUCKDB_PATH": str(work_dir / "bench.duckdb")}
    prepare_log = work_dir / "prepare.log"
    code, prepare_wall, prepare_peak = run_measured(
        [sys.executable, "-m", "retail_segments", "prepare"], env, prepare_log
    )
    if code != 0:
        output = prepare_log.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"preparing the inputs failed during the benchmark:\n{output}")
    target = work_dir / "target"
    command = [
        dbt_executable(),
        "build",
        "--target-path",
        str(target),
        "--log-path",
        str(work_dir / "logs"),
        *dbt_args,
        "--project-dir",
        str(find_project_root()),
        "--profiles-dir",
        str(find_project_root()),
    ]
    log_path = work_dir / "dbt-build.log"
    returncode, wall, peak = run_measured(command, env, log_path)
    if returncode != 0:
        output = log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"dbt build failed during the benchmark:\n{output}")
    lines, customers = _raw_size(work_dir / "bench.duckdb")
    return BuildMeasurement(
        scale=scale,
        raw_path=Path(env[RAW_PATH_ENV]),
        wall_seconds=wall,
        peak_rss_mib=peak,
        timings=read_run_results(target / "run_results.json"),
        raw_lines=lines,
        customers=customers,
        prepare_seconds=prepare_wall,
        prepare_peak_mib=prepare_peak,
    )


@dataclass
class ProcessTreePeaks:
    """Peak resident memory of a process tree, sampled from ``/proc`` every ``interval``
    seconds while it runs: the peak of the summed RSS of its Java processes and of its Python
    processes (each kind summed at a sample, then the largest sum kept). Linux only; a process
    that lives shorter than the interval may be missed."""

    interval: float = 0.2
    jvm_mib: float = 0.0
    python_mib: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    @staticmethod
    def _tree(root: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        tree, pending = [], [root]
        while pending:
            pid = pending.pop()
            tree.append(pid)
            pending.extend(children.get(pid, []))
        return tree

    @staticmethod
    def _rss_and_kind(pid: int) -> tuple[float, str]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return 0.0, ""
        rss = next(
            (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")),
            0,
        )
        kind = "jvm" if name == "java" else "python" if name.startswith("python") else ""
        return rss / 1024, kind

    def sample(self, root: int) -> None:
        """Take one sample of root's tree."""
        sums = {"jvm": 0.0, "python": 0.0, "": 0.0}
        for pid in self._tree(root):
            rss, kind = self._rss_and_kind(pid)
            sums[kind] += rss
        self.jvm_mib = max(self.jvm_mib, sums["jvm"])
        self.python_mib = max(self.python_mib, sums["python"])

    def watch(self, root: int) -> threading.Thread:
        """Sample root's tree in a thread until `stop`."""

        def loop() -> None:
            while not self._stop.is_set():
                self.sample(root)
                self._stop.wait(self.interval)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


@dataclass(frozen=True)
class SparkMeasurement:
    """One measured Spark build (``python -m retail_segments build --target spark``)."""

    scale: int
    raw_path: Path
    wall_seconds: float
    jvm_peak_mib: float
    python_peak_mib: float
    timings: list[NodeTiming]
    raw_lines: int | None


def _build_env(work_dir: Path, raw_path: Path) -> dict[str, str]:
    """The environment of a `python -m retail_segments build` of raw_path whose warehouse,
    serving copy and dbt target and logs are all inside work_dir."""
    return {
        **os.environ,
        RAW_PATH_ENV: str(raw_path),
        "RETAIL_DUCKDB_PATH": str(work_dir / "bench.duckdb"),
        "RETAIL_SERVING_DIR": str(work_dir / "serving"),
        "DBT_TARGET_PATH": str(work_dir / "target"),
        "DBT_LOG_PATH": str(work_dir / "logs"),
    }


def run_spark_benchmark(work_dir: Path, raw_path: Path, scale: int = 1) -> SparkMeasurement:
    """Run the whole Spark build of raw_path into work_dir (tables, landing, serving copy) as
    ``make build TARGET=spark`` does and measure it (wall time, `ProcessTreePeaks`). Raises
    RuntimeError if the build fails."""
    env = _build_env(work_dir, raw_path)
    log_path = work_dir / "spark-build.log"
    peaks = ProcessTreePeaks()
    started = time.perf_counter()
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "retail_segments", "build", "--target", "spark"],
            cwd=find_project_root(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        watcher = peaks.watch(process.pid)
        returncode = process.wait()
        peaks.stop()
        watcher.join()
    wall = time.perf_counter() - started
    if returncode != 0:
        output = log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"the Spark build failed during the benchmark:\n{output}")
    lines, _customers = _raw_size(work_dir / "serving" / "retail_segments_serving.duckdb")
    return SparkMeasurement(
        scale=scale,
        raw_path=raw_path,
        wall_seconds=wall,
        jvm_peak_mib=peaks.jvm_mib,
        python_peak_mib=peaks.python_mib,
        timings=read_run_results(work_dir / "target" / "run_results.json"),
        raw_lines=lines,
    )


def format_spark_report(measurement: SparkMeasurement) -> str:
    """Render one Spark build's figures."""
    models = [t for t in measurement.timings if t.resource_type == "model"]
    slowest = ", ".join(f"{t.name} {t.seconds:.0f}s" for t in models[:5])
    size = f"{measurement.raw_lines:,} raw lines" if measurement.raw_lines else "size unknown"
    return "\n".join(
        [
            f"== Spark, scale {measurement.scale}x: {measurement.raw_path} ({size})",
            f"whole build (session, inputs, dbt build, publish): {measurement.wall_seconds:8.1f} s",
            f"  peak JVM (driver and executor, local mode): {measurement.jvm_peak_mib:.0f} MiB;"
            f" Python (launcher and workers): {measurement.python_peak_mib:.0f} MiB",
            f"models: {len(models)}, summed {sum(t.seconds for t in models):.1f} s;"
            f" slowest: {slowest}",
        ]
    )


def format_engines(
    duckdb_runs: Sequence[BuildMeasurement], spark_runs: Sequence[SparkMeasurement]
) -> str:
    """DuckDB's and Spark's whole-build figures side by side, one row per scale ('-' where an
    engine did not run at that scale)."""
    duck = {m.scale: m for m in duckdb_runs}
    spark = {m.scale: m for m in spark_runs}
    lines = [
        f"{'scale':>5} {'raw lines':>11} | {'DuckDB s':>9} {'peak MiB':>9} |"
        f" {'Spark s':>8} {'JVM MiB':>8} {'Python MiB':>10}"
    ]
    for scale in sorted(set(duck) | set(spark)):
        d, p = duck.get(scale), spark.get(scale)
        raw = (d.raw_lines if d else None) or (p.raw_lines if p else None)
        lines.append(
            f"{scale:>4}x {f'{raw:,}' if raw else '-':>11} | "
            + (f"{d.total_seconds:9.1f} {d.peak_mib:9.0f}" if d else f"{'-':>9} {'-':>9}")
            + " | "
            + (
                f"{p.wall_seconds:8.1f} {p.jvm_peak_mib:8.0f} {p.python_peak_mib:10.0f}"
                if p
                else f"{'-':>8} {'-':>8} {'-':>10}"
            )
        )
    return "\n".join(lines)


def compare_engines(duck_dir: Path, spark_dir: Path, raw_path: Path) -> str:
    """Spark's serving copy of raw_path against DuckDB's build of the same file (published here
    first), table by table and row by row, and the study's headline figures from Spark's copy:
    what `make bench` prints as the proof that the real file gives the same results on Spark."""
    duck = serving_compare.published_serving(
        duck_dir / "bench.duckdb",
        duck_dir / "target" / "manifest.json",
        raw_path,
        duck_dir / "serving",
    )
    duck_db = duck / publish.SERVING_DB_NAME
    spark_db = spark_dir / "serving" / publish.SERVING_DB_NAME
    duck_tables, spark_tables = (
        serving_compare.serving_tables(duck_db),
        serving_compare.serving_tables(spark_db),
    )
    problems, compared = serving_compare.serving_differences(duck_db, spark_db)
    if duck_tables != spark_tables:
        problems.insert(0, "the published tables, columns, types or comments differ")
    with duckdb.connect(str(spark_db), read_only=True) as connection:
        raw_lines, customers = connection.sql(
            "select n_rows, n_customers from marts.eda_raw_profile"
        ).fetchall()[0]
        (clean_lines,) = connection.sql("select count(*) from marts.fct_sales_lines").fetchall()[0]
        rfm, recent = connection.sql(
            "select count(*), count(*) filter (where recency_days <= 200) from marts.customer_rfm"
        ).fetchall()[0]
        segments = connection.sql(
            "select string_agg(segment_name || ' ' || n_customers, ', '"
            " order by n_customers desc) from marts.segment_summary where scheme = 'tsne_segment'"
        ).fetchall()[0][0]
    verdict = (
        f"equal: {len(duck_tables)} published tables with the same columns, types and comments;"
        f" {compared:,} rows equal (doubles within {serving_compare.RELATIVE_TOLERANCE:g} relative)"
        if not problems
        else "DIFFERENT:\n  " + "\n  ".join(problems[:10])
    )
    return "\n".join(
        [
            f"Spark against DuckDB on {raw_path.name}: {verdict}",
            f"  Spark's figures: {raw_lines:,} raw lines, {customers:,} customers,"
            f" {clean_lines:,} clean lines, {rfm:,} RFM customers ({rfm - recent:,} with recency"
            f" over 200 days); segments: {segments}",
        ]
    )


def split_last_day(raw_path: Path, out_dir: Path) -> tuple[Path, Path]:
    """Cut a raw CSV file (plain or ``.zst``) before its last trading day: ``history.csv.zst``
    with every line before that day and ``<YYYY-MM-DD>.csv.zst`` with that day's lines, each with
    the header and every line's bytes as written. The day's lines must be the file's last lines,
    so the two files in arrival order hold the lines in the file's order (ValueError otherwise).
    """
    data = raw_path.read_bytes()
    if raw_path.suffix == ".zst":
        data = _zstd_decompressed(data)
    header, *lines = data.splitlines(keepends=True)
    columns = next(csv.reader([header.decode("latin-1")]))
    at = columns.index("InvoiceDate")
    days = []
    for line in lines:
        stamp = next(csv.reader([line.decode("latin-1")]))[at].split(" ")[0].split("T")[0]
        if "/" in stamp:  # M/D/YYYY, as UCI writes it; else ISO
            month, day, year = (int(part) for part in stamp.split("/"))
            stamp = f"{year:04d}-{month:02d}-{day:02d}"
        days.append(stamp)
    last = max(days)
    first_of_last = days.index(last)
    if any(day != last for day in days[first_of_last:]):
        raise ValueError(f"{raw_path}: the lines of {last} are not the file's last lines")
    out_dir.mkdir(parents=True, exist_ok=True)
    history, day_file = out_dir / "history.csv.zst", out_dir / f"{last}.csv.zst"
    compressor = zstandard.ZstdCompressor(write_checksum=True)
    history.write_bytes(compressor.compress(header + b"".join(lines[:first_of_last])))
    day_file.write_bytes(compressor.compress(header + b"".join(lines[first_of_last:])))
    return history, day_file


def _cli_build(env: Mapping[str, str], log_path: Path, *args: str) -> float:
    """``python -m retail_segments build <args>`` with env, its output to log_path; the wall
    seconds. Raises RuntimeError if the build fails."""
    started = time.perf_counter()
    with log_path.open("w") as log:
        returncode = subprocess.run(
            [sys.executable, "-m", "retail_segments", "build", *args],
            cwd=find_project_root(),
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    if returncode != 0:
        output = log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"a build of the incremental check failed ({log_path}):\n{output}")
    return time.perf_counter() - started


def run_spark_incremental_check(work_dir: Path, raw_path: Path) -> str:
    """Load raw_path as daily files arrive, on Spark and on DuckDB, and compare the serving
    copies: each engine builds the file without its last day (as of that day's midnight), then
    the same with that day as a daily file (as of the default ``rfm_as_of``; the loaded lines
    are kept and the day's lines merged into them). Returns what `make bench` prints: the wall
    time of each Spark build and the comparison's verdict."""
    try:
        history, day_file = split_last_day(raw_path, work_dir / "files")
    except ValueError as error:
        raise RuntimeError(f"the incremental check cannot split the file: {error}") from error
    first_vars = f"{{rfm_as_of: '{day_file.name.removesuffix('.csv.zst')}'}}"
    seconds: dict[str, list[float]] = {}
    for engine in ("spark", "duckdb"):
        root = work_dir / engine
        incoming = root / "incoming"
        incoming.mkdir(parents=True)
        env = _build_env(root, history)
        env["RETAIL_INCOMING_GLOB"] = str(incoming / "*.csv.zst")
        env["RETAIL_SPARK_DIR"] = str(root / "spark")
        target = ["--target", "spark"] if engine == "spark" else []
        first = _cli_build(env, root / "first.log", *target, "--vars", first_vars)
        (incoming / day_file.name).write_bytes(day_file.read_bytes())
        later = _cli_build(env, root / "later.log", *target)
        if "Input changed" in (root / "later.log").read_text(errors="replace"):
            raise RuntimeError(f"the {engine} build with the daily file rebuilt from scratch")
        seconds[engine] = [first, later]
    duck_db = work_dir / "duckdb" / "serving" / publish.SERVING_DB_NAME
    spark_db = work_dir / "spark" / "serving" / publish.SERVING_DB_NAME
    problems, compared = serving_compare.serving_differences(duck_db, spark_db)
    if serving_compare.serving_tables(duck_db) != serving_compare.serving_tables(spark_db):
        problems.insert(0, "the published tables, columns, types or comments differ")
    verdict = (
        f"equal: {compared:,} rows (doubles within {serving_compare.RELATIVE_TOLERANCE:g} relative)"
        if not problems
        else "DIFFERENT:\n  " + "\n  ".join(problems[:10])
    )
    first, later = seconds["spark"]
    return "\n".join(
        [
            f"Spark incremental on {raw_path.name}: without {day_file.name.split('.')[0]}"
            f" {first:.1f} s, then its {_line_count(day_file):,} lines as a daily file"
            f" {later:.1f} s (merged into the loaded lines)",
            f"  against DuckDB loading the same two files the same way: {verdict}",
        ]
    )


def _zstd_decompressed(data: bytes) -> bytes:
    """Every frame of zstd-compressed bytes, decompressed."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    return reader.read()


def _line_count(path: Path) -> int:
    """Data lines of a zstd CSV file (its lines minus the header)."""
    return _zstd_decompressed(path.read_bytes()).count(b"\n") - 1


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def format_report(measurement: BuildMeasurement) -> str:
    """Render one build's figures as a plain-text table."""
    timings = measurement.timings
    models = [t for t in timings if t.resource_type == "model"]
    tests = [t for t in timings if t.resource_type in ("test", "unit_test")]
    size = (
        f"{measurement.raw_lines:,} raw lines, {measurement.customers:,} customers"
        if measurement.raw_lines is not None and measurement.customers is not None
        else "size unknown"
    )
    lines = [
        f"== scale {measurement.scale}x: {measurement.raw_path} ({size})",
        f"whole build (prepare + dbt):   {measurement.total_seconds:8.1f} s",
        f"  prepare (inputs checked and landed): {measurement.prepare_seconds:8.1f} s,"
        f" peak {measurement.prepare_peak_mib:.0f} MiB",
        f"  dbt build (wall):                    {measurement.wall_seconds:8.1f} s,"
        f" peak {measurement.peak_rss_mib:.0f} MiB",
        f"models: {len(models)}, summed {sum(t.seconds for t in models):.1f} s; "
        f"tests: {len(tests)}, summed {sum(t.seconds for t in tests):.1f} s; "
        f"input hooks {hook_seconds(timings):.1f} s",
        f"SQL read + cleaning + RFM models, summed: {cleaning_seconds(timings):.1f} s",
        "",
        f"{'model':<60} {'seconds':>8}  status",
    ]
    lines += [f"{t.name:<60} {t.seconds:8.2f}  {t.status}" for t in models]
    return "\n".join(lines)


def format_targets(measurements: Sequence[BuildMeasurement]) -> str:
    """One summary line per scale, with the issue's targets where they apply."""
    lines = [f"{'scale':>5} {'wall s':>8} {'peak MiB':>9} {'models s':>9}  slowest models"]
    for m in measurements:
        models = [t for t in m.timings if t.resource_type == "model"]
        slowest = ", ".join(f"{t.name} {t.seconds:.0f}s" for t in models[:3])
        lines.append(
            f"{m.scale:>4}x {m.total_seconds:8.1f} {m.peak_mib:9.0f} "
            f"{sum(t.seconds for t in models):9.1f}  {slowest}"
        )
        if m.scale == 1:
            lines.append(
                f"      target: 1x build under {TARGET_1X_SECONDS:.0f} s: "
                f"{_verdict(m.total_seconds < TARGET_1X_SECONDS)}"
            )
        if m.scale == 100:
            lines.append(
                f"      targets: 100x under {TARGET_100X_SECONDS:.0f} s: "
                f"{_verdict(m.total_seconds < TARGET_100X_SECONDS)}; peak under "
                f"{TARGET_100X_PEAK_MIB:.0f} MiB: {_verdict(m.peak_mib < TARGET_100X_PEAK_MIB)}"
            )
    return "\n".join(lines)


def time_baseline(raw_path: Path) -> float:
    """Run the pandas baseline (read, clean, RFM) on a raw file; return its wall seconds."""
    started = time.perf_counter()
    baseline.clean_and_rfm(raw_path)
    return time.perf_counter() - started


def format_baseline(measurement: BuildMeasurement, baseline_seconds: float) -> str:
    """The pandas baseline against the SQL models of the same build."""
    sql = cleaning_seconds(measurement.timings)
    with_hook = sql + hook_seconds(measurement.timings) + measurement.prepare_seconds
    ratio = baseline_seconds / sql
    return "\n".join(
        [
            f"pandas baseline (read + clean + RFM, retail_segments_dev.baseline) at "
            f"{measurement.scale}x: {baseline_seconds:.1f} s",
            f"SQL read + cleaning + RFM models: {sql:.2f} s -> {ratio:.0f}x faster"
            + (
                f" (target >= {TARGET_BASELINE_RATIO:.0f}x: "
                f"{_verdict(ratio >= TARGET_BASELINE_RATIO)})"
                if measurement.scale == 1
                else ""
            ),
            f"including checking and landing the inputs (prepare + hooks): {with_hook:.2f} s -> "
            f"{baseline_seconds / with_hook:.0f}x faster",
        ]
    )


def compare_classifier_searches(warehouse: Path) -> pd.DataFrame:
    """Train the part III classifier with the fast default search and with the study's full grids
    on a built warehouse's RFM and part II segments; return one row per search mode with the
    selected model, its CV and test accuracy and the wall time of the whole search."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        rfm = connection.sql(
            "select customer_id, recency_days, frequency, monetary from marts.customer_rfm"
        ).df()
        segments = connection.sql(
            "select customer_id, tsne_segment_name, is_fit_sample from ml.customer_embeddings"
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m retail_segments_dev.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--scales",
        type=parse_scales,
        default=[1],
        help="comma-separated scale factors to build, e.g. 1,10,100 (default 1: the real file)",
    )
    parser.add_argument(
        "--baseline-scales",
        type=parse_scales,
        default=[1],
        help="scales (among --scales) at which to also time the pandas baseline (default 1)",
    )
    parser.add_argument(
        "--spark-scales",
        type=parse_scales,
        default=[],
        help="scales at which to also build on a local Spark session (make bench: 1,10)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help=f"where synthetic files are generated and reused (default {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="parent of the temporary build directories (default: the system's temp dir)",
    )
    parser.add_argument(
        "--classifier-searches",
        action="store_true",
        help="instead of building, compare the fast classifier search with the study's full grids"
        " on the built warehouse (RETAIL_DUCKDB_PATH or the default); takes many minutes",
    )
    parser.add_argument(
        "--spark-incremental",
        action="store_true",
        help="also load the real file without its last day, then that day as a daily file, on"
        " Spark and on DuckDB, and compare the two (make bench)",
    )
    parser.add_argument("dbt_args", nargs=argparse.REMAINDER, help="extra arguments for dbt build")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.classifier_searches:
        warehouse = warehouse_path(find_project_root())
        print(format_classifier_comparison(compare_classifier_searches(warehouse)))
        return 0
    measurements = []
    spark_runs: list[SparkMeasurement] = []
    data_dir = find_project_root() / args.data_dir
    # the DuckDB build of the real file, kept until Spark's is compared with it
    kept: dict[int, tempfile.TemporaryDirectory[str]] = {}
    try:
        for scale in args.scales:
            raw_path = raw_file_for_scale(scale, data_dir, os.environ)
            tmp = tempfile.TemporaryDirectory(prefix="retail-bench-", dir=args.work_dir)
            try:
                measurement = run_build_benchmark(Path(tmp.name), args.dbt_args, raw_path, scale)
            finally:
                if scale == 1 and 1 in args.spark_scales:
                    kept[scale] = tmp
                else:
                    tmp.cleanup()
            measurements.append(measurement)
            print(format_report(measurement), flush=True)
            if scale in args.baseline_scales:
                print(format_baseline(measurement, time_baseline(raw_path)), flush=True)
            print(flush=True)
        for scale in args.spark_scales:
            raw_path = raw_file_for_scale(scale, data_dir, os.environ)
            with tempfile.TemporaryDirectory(prefix="retail-spark-", dir=args.work_dir) as spark:
                spark_run = run_spark_benchmark(Path(spark), raw_path, scale)
                spark_runs.append(spark_run)
                print(format_spark_report(spark_run), flush=True)
                if scale in kept:
                    duck = Path(kept[scale].name)
                    print(compare_engines(duck, Path(spark), raw_path), flush=True)
            print(flush=True)
        if args.spark_incremental:
            raw_path = raw_file_for_scale(1, data_dir, os.environ)
            with tempfile.TemporaryDirectory(prefix="retail-incr-", dir=args.work_dir) as work:
                print(run_spark_incremental_check(Path(work), raw_path), flush=True)
            print(flush=True)
    except RawDataNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        for tmp in kept.values():
            tmp.cleanup()
    if measurements:
        print(format_targets(measurements))
    if spark_runs:
        print(f"\n{format_engines(measurements, spark_runs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
