"""The Spark input checks on small files, against DuckDB's, without a Spark build: one local
SparkSession in this process lands each file with `SparkLander` and the DuckDB lander lands the
same file (QA's findings on the Spark input checks: #11, #12, #16, #17).

Deselect locally with ``-m 'not spark'``."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from retail_segments.ops.inputs import InputError, LandedFile, land_file, scratch_connection

pytest.importorskip("pyspark", reason="the spark extras are not installed (pip install '.[spark]')")

pytestmark = [pytest.mark.spark]

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
GOOD = "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom\n"


def line(description: str = "X", date: str = "12/1/2010 8:26", quantity: str = "6") -> str:
    return f"536366,85123A,{description},{quantity},{date},2.55,17850,United Kingdom\n"


@pytest.fixture(scope="module")
def spark_session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from retail_segments.spark.session import create_session

    root = tmp_path_factory.mktemp("spark_inputs")
    return create_session(root, {"RETAIL_SPARK_DRIVER_MEMORY": "1g"})


def _land(session: Any, path: Path, engine: str) -> LandedFile | InputError:
    from retail_segments.spark.inputs import SparkLander

    lander = SparkLander(session) if engine == "spark" else None
    try:
        return land_file(path, path.parent / f"cache-{engine}", lander, allow_empty=True)
    except InputError as error:
        return error


def _both(session: Any, tmp_path: Path, text: str, name: str = "raw") -> tuple[Path, Any, Any]:
    """The file holding text (latin-1) and what each engine makes of it."""
    path = tmp_path / name / "raw.csv"
    path.parent.mkdir()
    path.write_bytes(text.encode("latin-1"))
    return path, _land(session, path, "duckdb"), _land(session, path, "spark")


def _rows(landed: LandedFile) -> list[tuple]:
    with scratch_connection() as connection:
        return connection.execute(
            "select file_row_number, InvoiceNo, StockCode, Description, Quantity,"
            " cast(InvoiceDate as timestamp), UnitPrice, CustomerID, Country"
            " from read_parquet($p) order by file_row_number",
            {"p": str(landed.parquet)},
        ).fetchall()


def test_a_mistyped_date_is_refused_as_on_duckdb_not_a_traceback(
    spark_session: Any, tmp_path: Path
) -> None:
    """#11: '20111' was a Spark timestamp of the year 20111, which collecting the first and last
    date turned into Python's 'year 20111 is out of range'."""
    _path, duck, spark = _both(spark_session, tmp_path, HEADER + GOOD + line(date="20111") + GOOD)
    assert isinstance(duck, InputError) and isinstance(spark, InputError)
    assert str(spark) == str(duck)
    assert "(first on line 3 of the file: '20111')" in str(spark)


def test_the_year_0000_is_refused_naming_its_line(spark_session: Any, tmp_path: Path) -> None:
    """No year 0000 is written in a real export (nor fits a Python datetime: it was a traceback on
    both engines); both refuse it with the same message."""
    _path, duck, spark = _both(spark_session, tmp_path, HEADER + GOOD + line(date="1/1/0000 0:00"))
    for refused in (duck, spark):
        assert isinstance(refused, InputError)
        assert "column InvoiceDate: 1 value(s) are before the year 1" in str(refused)
        assert "(first on line 3 of the file: '1/1/0000 0:00')" in str(refused)


INSIDE = ['"WHITE\nHEART, ""big"""', '"WHITE\r\nHEART"', '"WHITE\rHEART"']


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf-file", "crlf-file"])
def test_quoted_fields_with_line_breaks_land_as_on_duckdb(
    spark_session: Any, tmp_path: Path, newline: str
) -> None:
    """#12 (and the CR cases of #11): a record spans lines; a field keeps its LF, CRLF or CR as
    written, in a file with LF or CRLF line ends (which are not part of the last column)."""
    records = [HEADER, GOOD, *(line(inside) for inside in INSIDE), GOOD]
    text = "".join(record.removesuffix("\n") + newline for record in records)
    _path, duck, spark = _both(spark_session, tmp_path, text)
    assert isinstance(duck, LandedFile), duck
    assert isinstance(spark, LandedFile), spark
    assert _rows(spark) == _rows(duck)
    lantern = "WHITE METAL LANTERN"
    descriptions = [inside[1:-1].replace('""', '"') for inside in INSIDE]
    assert [row[3] for row in _rows(spark)] == [lantern, *descriptions, lantern]
    assert {row[8] for row in _rows(spark)} == {"United Kingdom"}
    assert (
        (spark.n_rows, spark.first_invoice_at)
        == (duck.n_rows, duck.first_invoice_at)
        == (
            5,
            datetime(2010, 12, 1, 8, 26),
        )
    )


def test_a_bad_value_after_a_multi_line_field_is_named_by_its_line(
    spark_session: Any, tmp_path: Path
) -> None:
    """A record that spans lines moves the later records' lines: the message names the line in
    the file (5 here), not the record's number plus one."""
    text = HEADER + line('"WHITE\nHEART"') + GOOD + line(quantity="6.5")
    _path, _duck, spark = _both(spark_session, tmp_path, text)
    assert isinstance(spark, InputError)
    assert "column Quantity: 1 value(s) are empty or not an integer" in str(spark)
    assert "(first on line 5 of the file: '6.5')" in str(spark)


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (line('"WHITE "HEART""') + GOOD, '536366,85123A,"WHITE "HEART""'),
        (line('"OPEN') + GOOD + GOOD + line('"CLOSED"') + GOOD, '536366,85123A,"OPEN,6'),
    ],
    ids=["quote-not-doubled", "quote-not-closed"],
)
def test_malformed_quoting_is_refused_with_its_line_and_no_stack_trace(
    spark_session: Any, tmp_path: Path, capfd: pytest.CaptureFixture[str], bad: str, shown: str
) -> None:
    """Read as one multi-line record, a quote left open would swallow the lines up to the next
    quote; refused instead, as on DuckDB, at the line where the record starts."""
    path, duck, spark = _both(spark_session, tmp_path, HEADER + GOOD + bad)
    assert isinstance(duck, InputError) and "CSV Error on Line: 3" in str(duck)
    assert isinstance(spark, InputError)
    assert str(spark).startswith(f"Raw data file '{path}' is not a well-formed CSV")
    assert "a quoted field is not closed, or a quote inside it is not doubled" in str(spark)
    assert f"Line 3: '{shown}" in str(spark) and "Fix:" in str(spark)
    assert "Exception in task" not in capfd.readouterr().err


def test_a_file_mixing_crlf_and_lf_line_ends_lands_as_its_lf_version(
    spark_session: Any, tmp_path: Path
) -> None:
    """#16: DuckDB refuses such a file ("the CSV Parser state machine reached an invalid state");
    Spark lands it with the values of the same file with LF line ends (which DuckDB lands)."""
    lf = HEADER + GOOD + line() + line('"A\r\nB"') + GOOD
    mixed = HEADER.replace("\n", "\r\n") + GOOD + line().replace("\n", "\r\n")
    mixed += line('"A\r\nB"') + GOOD.replace("\n", "\r\n")
    (tmp_path / "lf.csv").write_bytes(lf.encode("latin-1"))
    duck_lf = land_file(tmp_path / "lf.csv", tmp_path / "cache-lf")
    _path, _duck, spark = _both(spark_session, tmp_path, mixed)
    assert isinstance(spark, LandedFile), spark
    assert _rows(spark) == _rows(duck_lf)


def test_the_hour_24_is_refused_naming_its_line_and_value(
    spark_session: Any, tmp_path: Path
) -> None:
    """#17: '2010-12-01 24:00' is not a time as written. Spark refuses it like every date that
    does not parse; DuckDB (whose cast would read it as the next day's 0:00) by its own check."""
    _path, duck, spark = _both(spark_session, tmp_path, HEADER + line(date="2010-12-01 24:00"))
    assert isinstance(spark, InputError)
    assert "column InvoiceDate: 1 value(s) are empty or do not parse as M/D/YYYY H:MM" in str(spark)
    assert isinstance(duck, InputError)
    assert "column InvoiceDate: 1 value(s) have the hour 24" in str(duck)
    for refused in (duck, spark):
        assert "(first on line 2 of the file: '2010-12-01 24:00')" in str(refused)
