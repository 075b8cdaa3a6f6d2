"""The warehouse fingerprints that compare a build with one recorded before a change."""

from __future__ import annotations

from pathlib import Path

import duckdb

from retail_segments_dev.fingerprint import compare, fingerprint


def _warehouse(path: Path, *statements: str) -> Path:
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema marts")
        for statement in statements:
            connection.execute(statement)
    return path


def test_a_build_with_the_same_values_in_another_order_matches(tmp_path: Path) -> None:
    before = _warehouse(
        tmp_path / "a.duckdb",
        "create table marts.t as select * from"
        " (values (1, 'x', 0.1::double + 0.2::double), (2, null, 1.5::double)) v(k, s, d)",
    )
    after = _warehouse(
        tmp_path / "b.duckdb",
        # rows in another order, the double's last bits different, a column added
        "create table marts.t as select * from"
        " (values (2, null, 1.5::double, true), (1, 'x', 0.3::double, false))"
        " v(k, s, d, extra)",
        "create table marts.new_table as select 1 as k",
    )
    assert compare(after, fingerprint(before)) == []


def test_every_kind_of_difference_is_named(tmp_path: Path) -> None:
    before = _warehouse(
        tmp_path / "a.duckdb",
        "create table marts.values_changed as select * from (values (1, 'x'), (2, 'y')) v(k, s)",
        "create table marts.rows_swapped as select * from (values (1, 'x'), (2, 'y')) v(k, s)",
        "create table marts.gone as select 1 as k",
        "create table marts.retyped as select 1 as k",
        "create table marts.moved as select 1 as k",
    )
    after = _warehouse(
        tmp_path / "b.duckdb",
        "create table marts.values_changed as select * from (values (1, 'x'), (2, 'z')) v(k, s)",
        "create table marts.rows_swapped as select * from (values (1, 'y'), (2, 'x')) v(k, s)",
        "create table marts.retyped as select 1.0 as k",
        "create table marts.moved_here as select 1 as k",
    )
    recorded = fingerprint(before)
    assert compare(after, recorded, renamed={"marts.moved": "marts.moved_here"}) == [
        "marts.gone: missing",
        "marts.retyped.k: type DECIMAL(2,1), was INTEGER",
        "marts.rows_swapped: same column values, rows combine them differently",
        "marts.values_changed: values differ in s",
    ]
    # a skipped column is not compared, and the rows are then compared column by column only
    assert (
        compare(
            after,
            {table: recorded[table] for table in ("marts.values_changed", "marts.rows_swapped")},
            skip_columns={"marts.values_changed": ["s"], "marts.rows_swapped": ["k"]},
        )
        == []
    )
