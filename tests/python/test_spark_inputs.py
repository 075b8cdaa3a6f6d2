"""The Spark input checks on small files, against DuckDB's, without a Spark build: one local
SparkSession in this process lands each file with `SparkLander` and the DuckDB lander lands the
same file (QA's findings on the Spark input checks: #11, #12, #16, #17).

Deselect locally with ``-m 'not spark'``."""

from __future__ import annotations

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
    """No year 0000 is written in a real export (nor fits a Python datetime: it was a traceback);
    DuckDB lands it as 1 BC."""
    _path, _duck, spark = _both(spark_session, tmp_path, HEADER + GOOD + line(date="1/1/0000 0:00"))
    assert isinstance(spark, InputError)
    assert "column InvoiceDate: 1 value(s) are empty or do not parse" in str(spark)
    assert "(first on line 3 of the file: '1/1/0000 0:00')" in str(spark)
