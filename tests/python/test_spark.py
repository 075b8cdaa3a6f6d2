"""The whole project on a local Spark session, proven equal to the DuckDB build (issue 14).

One Spark build of the synthetic fixture, run as a user runs it (``python -m retail_segments build
--target spark``: its own process, one SparkSession, in-memory catalog), publishes the serving
copy; every published table (the DuckDB serving file's marts and ml tables, and the Parquet file
of every mart) must equal the DuckDB build of the same file (the session's ``synthetic_build``),
published the same way: the same tables, columns, types, constraints and comments, and row for
row the same values, doubles within ``retail_segments_dev.serving_compare.RELATIVE_TOLERANCE``
(sums and averages of doubles add up in another order on Spark, which moves the last bits).

Then, on one SparkSession in this process: a representative subset of the bad-input cases gives
the same errors through the Spark value checks as through DuckDB's (the byte-level checks are the
same Python code on both), the typed landing equals DuckDB's, and dbt on the spark target refuses
to run without prepared inputs.

Deselect locally with ``-m 'not spark'``; ``make test`` runs it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from dbt_helpers import PROJECT_ROOT, Workspace, run_cli
from test_bad_input import CASES, latin1, replace_field, text_of, unquoted_line_number, zstd

from retail_segments.ops import publish
from retail_segments.ops.inputs import InputError, land_file, scratch_connection
from retail_segments_dev.serving_compare import (
    published_serving,
    row_differences,
    serving_constraints,
    serving_differences,
    serving_tables,
)

pytest.importorskip("pyspark", reason="the spark extras are not installed (pip install '.[spark]')")

pytestmark = [pytest.mark.spark, pytest.mark.dbt]

# bad-input cases of test_bad_input checked on Spark: headers and bytes (Python, the same code on
# both engines), every value check, and the CSV structure
SPARK_CASES = [
    "missing_column",
    "truncated_zstd",
    "windows_1252_byte",
    "header_only",
    "non_numeric_quantity",
    "empty_quantity",
    "fractional_quantity",
    "quantity_overflow",
    "price_nan",
    "price_with_too_many_digits",
    "price_out_of_double_range",
    "unparseable_date",
    "two_digit_year",
    "impossible_date",
    "fractional_customer_id",
    "customer_id_overflow",
]
STRUCTURE_CASES = ["line_with_a_missing_field", "unterminated_quote"]


def _published(workspace: Workspace, raw_path: Path) -> Path:
    """The serving directory of the DuckDB build, published as `make build` does."""
    return published_serving(
        workspace.warehouse,
        workspace.root / "target" / "manifest.json",
        raw_path,
        workspace.root / "serving-for-spark-comparison",
    )


def _spark_cli_build(
    workspace: Workspace, raw: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """`build --target spark` (plus args) into workspace, published to its serving/."""
    return run_cli(
        workspace,
        raw,
        "build",
        "--target",
        "spark",
        *args,
        env={
            "RETAIL_SERVING_DIR": str(workspace.root / "serving"),
            "RETAIL_SPARK_DRIVER_MEMORY": "1g",
        },
    )


@pytest.fixture(scope="module")
def spark_build(tmp_path_factory: pytest.TempPathFactory, synthetic_raw: Path) -> Path:
    """The serving directory of the Spark build of the synthetic file."""
    workspace = Workspace(tmp_path_factory.mktemp("spark_build"))
    serving = workspace.root / "serving"
    started = time.monotonic()
    result = _spark_cli_build(workspace, synthetic_raw)
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    print(f"\nSpark build of the synthetic fixture: {seconds:.0f} s")
    return serving


def test_a_selected_spark_build_needs_the_vars_of_the_last_whole_build(
    spark_build: Path, synthetic_raw: Path
) -> None:
    """The Spark launcher records the vars of its whole build that succeeded (as the DuckDB
    build's hooks do) and refuses a selected build with others before dbt runs."""
    before = sorted(path.name for path in spark_build.rglob("*"))
    result = _spark_cli_build(
        Workspace(spark_build.parent),
        synthetic_raw,
        "--select",
        "customer_rfm",
        "--vars",
        "{rfm_as_of: '2011-06-01'}",
    )
    assert result.returncode == 2, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert (
        "the vars differ from the last whole build's (rfm_as_of: '2011-12-10' -> '2011-06-01')"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(path.name for path in spark_build.rglob("*")) == before


def test_spark_publishes_every_table_the_duckdb_build_publishes(
    spark_build: Path, synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    duck = _published(synthetic_build, synthetic_raw) / publish.SERVING_DB_NAME
    spark = spark_build / publish.SERVING_DB_NAME
    duck_tables, spark_tables = serving_tables(duck), serving_tables(spark)
    assert sorted(spark_tables) == sorted(duck_tables)
    assert len(duck_tables) >= 30
    # the same columns in the same order, types, NOT NULL and comments; the same keys
    assert spark_tables == duck_tables
    assert serving_constraints(spark) == serving_constraints(duck)


def test_every_published_table_equals_duckdb_row_for_row(
    spark_build: Path, synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    duck = _published(synthetic_build, synthetic_raw) / publish.SERVING_DB_NAME
    problems, compared = serving_differences(duck, spark_build / publish.SERVING_DB_NAME)
    assert not problems, "\n".join(problems)
    assert compared > 1000


def _parquet_rows(table: Any) -> list[tuple[Any, ...]]:
    columns = [column.to_pylist() for column in table.columns]
    return sorted(zip(*columns, strict=True), key=repr)


def test_every_published_parquet_file_equals_duckdb(
    spark_build: Path, synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    duck_dir = publish.read_current_parquet_dir(_published(synthetic_build, synthetic_raw))
    spark_dir = publish.read_current_parquet_dir(spark_build)
    names = sorted(path.name for path in duck_dir.glob("*.parquet"))
    assert names and names == sorted(path.name for path in spark_dir.glob("*.parquet"))
    problems = []
    for name in names:
        duck_table, spark_table = pq.read_table(duck_dir / name), pq.read_table(spark_dir / name)
        assert spark_table.schema.equals(duck_table.schema, check_metadata=False), name
        field_docs = [field.metadata for field in duck_table.schema]
        assert [field.metadata for field in spark_table.schema] == field_docs, name
        columns = duck_table.column_names
        problems += row_differences(name, _parquet_rows(duck_table), _parquet_rows(spark_table))
        assert columns == spark_table.column_names
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------------------------------------
# the input checks on one SparkSession in this process
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark_session(spark_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A SparkSession in this process (after the build's own process has ended)."""
    from retail_segments.spark.session import create_session

    root = tmp_path_factory.mktemp("spark_session")
    return create_session(root, {"RETAIL_SPARK_DRIVER_MEMORY": "1g"})


def _landing_errors(
    session: Any, path: Path, tmp_path: Path
) -> tuple[InputError | None, InputError | None]:
    from retail_segments.spark.inputs import SparkLander

    errors: list[InputError | None] = []
    for name, lander in (("duckdb", None), ("spark", SparkLander(session))):
        try:
            land_file(path, tmp_path / f"cache-{name}", lander)
        except InputError as error:
            errors.append(error)
        else:
            errors.append(None)
    return errors[0], errors[1]


def _write_case(content: Callable[[str], bytes | None], synthetic_raw: Path, path: Path) -> Path:
    data = content(text_of(synthetic_raw))
    assert data is not None
    path.write_bytes(data)
    return path


def _both_errors(
    name: str, spark_session: Any, synthetic_raw: Path, tmp_path: Path
) -> tuple[Any, Path, Exception, Exception]:
    """The bad-input case, its file and the errors of DuckDB's and Spark's landing of it."""
    case = next(case for case in CASES if case.name == name)
    path = _write_case(case.content, synthetic_raw, tmp_path / f"{name}.csv.zst")
    duck, spark = _landing_errors(spark_session, path, tmp_path)
    assert duck is not None and spark is not None
    return case, path, duck, spark


@pytest.mark.parametrize("name", SPARK_CASES)
def test_a_bad_file_gives_the_same_error_on_spark(
    name: str, spark_session: Any, synthetic_raw: Path, tmp_path: Path
) -> None:
    case, path, duck, spark = _both_errors(name, spark_session, synthetic_raw, tmp_path)
    assert str(spark) == str(duck)
    for phrase in case.phrases:
        assert phrase.replace("{path}", str(path)) in str(spark)


@pytest.mark.parametrize("name", STRUCTURE_CASES)
def test_a_malformed_csv_line_is_refused_on_spark_with_its_line(
    name: str, spark_session: Any, synthetic_raw: Path, tmp_path: Path
) -> None:
    _case, path, duck, spark = _both_errors(name, spark_session, synthetic_raw, tmp_path)
    assert f"Raw data file '{path}' is not a well-formed CSV" in str(spark)
    assert "nothing was built or replaced" in str(spark) and "Fix:" in str(spark)
    # the line Spark names (and shows) is the line DuckDB names
    line = int(str(duck).split("CSV Error on Line: ", 1)[1].split()[0])
    assert f"Line {line}: '{text_of(path).splitlines()[line - 1]}'" in str(spark)


def test_a_line_with_an_extra_field_is_refused_on_spark(
    spark_session: Any, synthetic_raw: Path, tmp_path: Path
) -> None:
    text = text_of(synthetic_raw)
    line = unquoted_line_number(text, 20)
    lines = text.splitlines()
    lines[line - 1] += ",EXTRA"
    path = tmp_path / "extra_field.csv.zst"
    path.write_bytes(zstd(latin1("\n".join(lines) + "\n")))
    duck, spark = _landing_errors(spark_session, path, tmp_path)
    assert duck is not None and "is not a well-formed CSV" in str(duck)
    assert spark is not None and "is not a well-formed CSV" in str(spark)
    assert f"Line {line}: '{lines[line - 1]}'" in str(spark)


def test_the_line_number_of_a_bad_value_is_the_line_in_the_file(
    spark_session: Any, synthetic_raw: Path, tmp_path: Path
) -> None:
    text = text_of(synthetic_raw)
    path = tmp_path / "late.csv.zst"
    path.write_bytes(zstd(latin1(replace_field(text, "Quantity", 15_000, "2.5"))))
    _duck, spark = _landing_errors(spark_session, path, tmp_path)
    line = unquoted_line_number(text, 15_000)
    assert spark is not None
    assert f"(first on line {line} of the file: '2.5')" in str(spark)


def test_spark_lands_the_same_typed_rows_as_duckdb(
    spark_session: Any, synthetic_raw: Path, tmp_path: Path
) -> None:
    from retail_segments.spark.inputs import SparkLander

    duck = land_file(synthetic_raw, tmp_path / "duck")
    spark = land_file(synthetic_raw, tmp_path / "spark", SparkLander(spark_session))
    assert spark.parquet != duck.parquet
    assert (spark.n_rows, spark.first_invoice_at, spark.last_invoice_at) == (
        duck.n_rows,
        duck.first_invoice_at,
        duck.last_invoice_at,
    )
    query = (
        "select file_row_number, InvoiceNo, StockCode, Description, Quantity,"
        " cast(InvoiceDate as timestamp), UnitPrice, CustomerID, Country, source_file,"
        " source_sha256 from read_parquet($p) order by file_row_number"
    )
    with scratch_connection() as connection:
        duck_rows = connection.execute(query, {"p": str(duck.parquet)}).fetchall()
        spark_rows = connection.execute(query, {"p": str(spark.parquet)}).fetchall()
        spark_type = connection.execute(
            "select column_type from (describe select InvoiceDate from read_parquet($p))",
            {"p": str(spark.parquet)},
        ).fetchall()[0][0]
    assert len(duck_rows) == duck.n_rows > 10_000
    assert spark_rows == duck_rows
    # Spark reads it back as its own `timestamp` (UTC), not timestamp_ntz
    assert spark_type == "TIMESTAMP WITH TIME ZONE"
    assert dict(spark_session.read.parquet(str(spark.parquet)).dtypes)["InvoiceDate"] == "timestamp"


def test_a_daily_file_with_only_its_header_lands_as_no_rows_on_spark(
    spark_session: Any, synthetic_raw: Path, tmp_path: Path
) -> None:
    """A day without sales: both engines land the header-only daily file as typed Parquet with no
    rows, which Spark reads beside a daily file with lines (the Spark build's incoming source is
    the folder of both); as the raw file it is refused on both."""
    from retail_segments.spark.inputs import SparkLander

    header = text_of(synthetic_raw).splitlines()[0]
    empty = tmp_path / "2011-12-10.csv"
    empty.write_text(header + "\n", encoding="latin-1")
    lander = SparkLander(spark_session)
    duck = land_file(empty, tmp_path / "duck", allow_empty=True)
    spark = land_file(empty, tmp_path / "spark", lander, allow_empty=True)
    assert (
        (duck.n_rows, duck.first_invoice_at) == (spark.n_rows, spark.first_invoice_at) == (0, None)
    )
    full = land_file(synthetic_raw, tmp_path / "spark", lander)
    folder = tmp_path / "incoming"
    folder.mkdir()
    for landed in (spark, full):
        (folder / landed.parquet.name).symlink_to(landed.parquet)
    both = spark_session.read.parquet(str(folder))
    assert both.count() == full.n_rows
    assert dict(both.dtypes) == dict(spark_session.read.parquet(str(full.parquet)).dtypes)
    assert spark_session.read.parquet(str(spark.parquet)).columns == both.columns
    duck_error, spark_error = _landing_errors(spark_session, empty, tmp_path)
    assert duck_error is not None and spark_error is not None
    assert str(spark_error) == str(duck_error)
    assert "holds no data lines (only a header)" in str(spark_error)


def test_dbt_on_the_spark_target_refuses_unprepared_inputs(
    spark_session: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    from dbt.cli.main import dbtRunner

    monkeypatch.delenv("RETAIL_PREPARED_STAMP", raising=False)
    monkeypatch.setenv("RETAIL_SPARK_DIR", str(tmp_path / "spark"))
    monkeypatch.setenv("DO_NOT_TRACK", "1")
    result = dbtRunner().invoke(
        [
            "run",
            "--target",
            "spark",
            "--select",
            "stg_online_retail__lines",
            "--project-dir",
            str(PROJECT_ROOT),
            "--profiles-dir",
            str(PROJECT_ROOT),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ]
    )
    output = capfd.readouterr().out
    assert not result.success
    assert "The inputs are not prepared for this Spark run" in output
    assert "python -m retail_segments build --target spark" in output
    assert not os.path.exists(tmp_path / "spark" / "tables" / "staging")
