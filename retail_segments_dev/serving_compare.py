"""Comparing two published serving copies (the DuckDB file of `retail_segments.ops.publish`): the
Spark build's against the DuckDB build's, table by table and row by row
(tests/python/test_spark.py on the synthetic fixture, `make bench` on the real file)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb

from retail_segments.ops import publish
from retail_segments.ops.paths import find_project_root

# Doubles are equal within this relative tolerance: sums and averages of doubles add up in another
# order on Spark, which moves the last bits.
RELATIVE_TOLERANCE = 1e-9


def published_serving(warehouse: Path, manifest: Path, raw_path: Path, serving: Path) -> Path:
    """The serving directory ``serving`` holding a DuckDB warehouse's build of raw_path (its dbt
    manifest declares what is published), published as `make build` does; once, later calls
    reuse it."""
    if not (serving / publish.SERVING_DB_NAME).exists():
        info = publish.new_build_info(str(raw_path), find_project_root())
        publish.publish(warehouse, serving, info, publish.published_relations(manifest))
    return serving


def serving_tables(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the serving file (not the serving schema's stamps): its columns with type,
    nullability and comment."""
    with duckdb.connect(str(database), read_only=True) as connection:
        rows = connection.sql(
            "select schema_name || '.' || table_name, column_name, data_type, is_nullable, comment"
            " from duckdb_columns() where schema_name <> 'serving' and not internal"
            " and database_name = current_database()"
            " order by schema_name, table_name, column_index"
        ).fetchall()
    tables: dict[str, list[tuple[Any, ...]]] = {}
    for table, *column in rows:
        tables.setdefault(table, []).append(tuple(column))
    return tables


def serving_constraints(database: Path) -> set[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return {
            (schema, table, kind, tuple(columns))
            for schema, table, kind, columns in connection.sql(
                "select schema_name, table_name, constraint_type, constraint_column_names"
                " from duckdb_constraints() where schema_name <> 'serving'"
                " and database_name = current_database()"
            ).fetchall()
        }


def _sorted_rows(database: Path, table: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.sql(f"select * from {table} order by all").fetchall()


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        if math.isnan(left) or math.isnan(right):
            return math.isnan(left) and math.isnan(right)
        return math.isclose(left, right, rel_tol=RELATIVE_TOLERANCE, abs_tol=RELATIVE_TOLERANCE)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(_equal, left, right))
    return bool(left == right)


def row_differences(table: str, duck: list[tuple], spark: list[tuple]) -> list[str]:
    if len(duck) != len(spark):
        return [f"{table}: {len(duck)} rows on DuckDB, {len(spark)} on Spark"]
    problems = []
    for index, (left, right) in enumerate(zip(duck, spark, strict=True)):
        if not all(map(_equal, left, right)):
            problems.append(f"{table} row {index}: DuckDB {left} != Spark {right}")
            break
    return problems


def serving_differences(duck: Path, spark: Path) -> tuple[list[str], int]:
    """What differs between two serving files, table by table and row by row (doubles within
    `RELATIVE_TOLERANCE`), and how many rows were compared."""
    problems = []
    compared = 0
    for table in sorted(serving_tables(duck)):
        duck_rows, spark_rows = _sorted_rows(duck, table), _sorted_rows(spark, table)
        problems += row_differences(table, duck_rows, spark_rows)
        compared += len(duck_rows)
    return problems, compared
