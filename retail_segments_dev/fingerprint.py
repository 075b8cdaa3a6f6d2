"""Fingerprints of a warehouse's published tables, to compare two builds without keeping both.

A fingerprint holds, for every table: its row count, its columns with their types, an MD5 of each
column's sorted values and an MD5 of its sorted rows, every value written as text the same way
(doubles to 9 significant digits, so that a different summation order does not count as a
change; timestamps in UTC). Comparing a warehouse with a fingerprint recomputes the warehouse's
hashes over the fingerprint's columns, so a later build may add tables and columns but must give
the recorded ones exactly.

``python -m retail_segments_dev.fingerprint WAREHOUSE [--schemas marts,ml] > before.json`` records
one; ``--compare before.json`` prints the tables and columns that differ (exit 1 if any).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

FLOAT_TYPES = frozenset({"DOUBLE", "FLOAT", "REAL"})


def _text(column: str, data_type: str) -> str:
    quoted = '"' + column.replace('"', '""') + '"'
    if data_type in FLOAT_TYPES:
        return f"coalesce(printf('%.9g', {quoted}), '∅')"
    return f"coalesce(cast({quoted} as varchar), '∅')"


def _connect(database: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(database), read_only=True)
    connection.execute("set TimeZone = 'UTC'")
    return connection


def _columns(
    connection: duckdb.DuckDBPyConnection, schema: str, table: str
) -> list[tuple[str, str]]:
    rows = connection.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [(str(name), str(data_type)) for name, data_type in rows]


def _hashes(
    connection: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    columns: Sequence[tuple[str, str]],
) -> dict[str, Any]:
    texts = [_text(name, data_type) for name, data_type in columns]
    row_text = " || '|' || ".join(texts)
    per_column = ", ".join(
        f"md5(coalesce(string_agg({text}, chr(31) order by {text}), ''))" for text in texts
    )
    source = f'"{schema}"."{table}"'
    row = connection.execute(
        "select count(*), "
        + (
            f"md5(coalesce(string_agg({row_text}, chr(30) order by {row_text}), ''))"
            if texts
            else "md5('')"
        )
        + (f", {per_column}" if per_column else "")
        + f" from {source}"
    ).fetchall()[0]
    return {
        "rows": int(row[0]),
        "rows_md5": str(row[1]),
        "columns": {
            name: {"type": data_type, "md5": str(digest)}
            for (name, data_type), digest in zip(columns, row[2:], strict=True)
        },
    }


def fingerprint(database: Path, schemas: Iterable[str] = ("marts", "ml")) -> dict[str, Any]:
    """The fingerprint of every table in ``schemas`` of the DuckDB file ``database``."""
    with _connect(database) as connection:
        tables = connection.execute(
            "select schema_name, table_name from duckdb_tables()"
            " where schema_name in (select unnest(?)) order by all",
            [list(schemas)],
        ).fetchall()
        return {
            f"{schema}.{table}": _hashes(
                connection, schema, table, _columns(connection, schema, table)
            )
            for schema, table in tables
        }


def compare(
    database: Path,
    recorded: Mapping[str, Any],
    *,
    skip_columns: Mapping[str, Iterable[str]] | None = None,
    renamed: Mapping[str, str] | None = None,
) -> list[str]:
    """What differs between the warehouse ``database`` and the ``recorded`` fingerprint.

    Every recorded table must exist with every recorded column (same type), the same row count and
    the same values: per column and, over the recorded columns minus ``skip_columns[table]``, row
    by row. ``renamed`` maps a recorded table to the relation that holds it now (compared in its
    place). Returns one line per difference (empty when they agree); tables and columns the
    warehouse has beyond the recorded ones are not differences.
    """
    skips = {table: set(columns) for table, columns in (skip_columns or {}).items()}
    problems: list[str] = []
    with _connect(database) as connection:
        for table, expected in recorded.items():
            schema, name = (renamed or {}).get(table, table).split(".", 1)
            actual = dict(_columns(connection, schema, name))
            if not actual:
                problems.append(f"{table}: missing")
                continue
            kept = [
                (column, facts["type"])
                for column, facts in expected["columns"].items()
                if column not in skips.get(table, set())
            ]
            for column, data_type in kept:
                if column not in actual:
                    problems.append(f"{table}.{column}: missing")
                elif actual[column] != data_type:
                    problems.append(f"{table}.{column}: type {actual[column]}, was {data_type}")
            if any(column not in actual or actual[column] != t for column, t in kept):
                continue
            got = _hashes(connection, schema, name, kept)
            if got["rows"] != expected["rows"]:
                problems.append(f"{table}: {got['rows']:,} rows, was {expected['rows']:,}")
            changed = [
                column
                for column, _ in kept
                if got["columns"][column]["md5"] != expected["columns"][column]["md5"]
            ]
            if changed:
                problems.append(f"{table}: values differ in {', '.join(changed)}")
            elif (
                got["rows"] == expected["rows"]
                and len(kept) == len(expected["columns"])
                and got["rows_md5"] != expected["rows_md5"]
            ):
                problems.append(f"{table}: same column values, rows combine them differently")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("warehouse", type=Path)
    parser.add_argument("--schemas", default="marts,ml")
    parser.add_argument("--compare", type=Path, metavar="FINGERPRINT_JSON")
    args = parser.parse_args(argv)
    if args.compare is None:
        json.dump(fingerprint(args.warehouse, args.schemas.split(",")), sys.stdout, indent=1)
        print()
        return 0
    problems = compare(args.warehouse, json.loads(args.compare.read_text()))
    print("\n".join(problems) or "no differences")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
