"""Publishing the serving copy, on a small hand-made warehouse (no dbt): what gets published, the
atomic swaps, and that a failure or a failed build leaves the previous serving copy untouched."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest

from retail_segments import cli, publish
from retail_segments.paths import PROJECT_ROOT


def _make_warehouse(path: Path, n_orders: int) -> Path:
    """A warehouse with two marts tables (one with a column comment) and one ml table."""
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema marts; create schema ml")
        connection.execute(
            f"create table marts.fct_orders as select range as id from range({n_orders})"
        )
        connection.execute("comment on column marts.fct_orders.id is 'Order id.'")
        connection.execute("create table marts.dim_customers as select 1 as customer_id")
        connection.execute("create table ml.cluster_profiles as select 'pca' as stage")
    return path


def _info(build_id: str) -> publish.BuildInfo:
    return publish.BuildInfo(build_id, publish.datetime.now(publish.UTC), None, "raw.csv.zst")


def _serving_state(serving: Path) -> tuple[bytes, str]:
    """The serving database's bytes and where parquet/current points."""
    current = (serving / "parquet" / "current").readlink()
    return (serving / publish.SERVING_DB_NAME).read_bytes(), str(current)


def test_publish_writes_a_stamped_read_only_copy_and_parquet_per_mart(tmp_path: Path) -> None:
    warehouse = _make_warehouse(tmp_path / "wh.duckdb", n_orders=5)
    serving = tmp_path / "serving"
    published = publish.publish(warehouse, serving, _info("20250101T000000000000Z-aaaaaa"))

    database = serving / publish.SERVING_DB_NAME
    assert published.database == database
    assert database.stat().st_mode & 0o777 == publish.READ_ONLY_MODE
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.sql("select build_id from serving.build_info").fetchall() == [
            ("20250101T000000000000Z-aaaaaa",)
        ]
        assert dict(connection.sql("select * from serving.published_tables").fetchall()) == {
            "marts.dim_customers": 1,
            "marts.fct_orders": 5,
            "ml.cluster_profiles": 1,
        }
        comment = connection.sql(
            "select comment from duckdb_columns() where table_name = 'fct_orders'"
        ).fetchall()
        assert comment == [("Order id.",)]

    current = publish.read_current_parquet_dir(serving)
    assert current == published.parquet_dir and current.name == published.build_id
    assert sorted(path.name for path in current.iterdir()) == [
        "dim_customers.parquet",
        "fct_orders.parquet",
        "manifest.json",
    ]
    manifest = json.loads((current / "manifest.json").read_text())
    assert manifest["build_id"] == published.build_id
    assert manifest["tables"]["fct_orders"]["n_rows"] == 5
    with duckdb.connect() as connection:
        key_values = connection.sql(
            "select key::varchar, value::varchar"
            f" from parquet_kv_metadata('{current}/fct_orders.parquet')"
        ).fetchall()
        rows = connection.sql(f"select count(*) from '{current}/fct_orders.parquet'").fetchall()
    assert key_values == [("build_id", published.build_id)]
    assert rows == [(5,)]
    assert not [path for path in serving.rglob(".*") if path.name.endswith(".tmp")]


def test_a_reader_holding_the_old_copy_keeps_reading_it_across_a_publish(tmp_path: Path) -> None:
    serving = tmp_path / "serving"
    publish.publish(_make_warehouse(tmp_path / "a.duckdb", 3), serving, _info("20250101T0Z-a"))
    with duckdb.connect(str(serving / publish.SERVING_DB_NAME), read_only=True) as old_reader:
        publish.publish(_make_warehouse(tmp_path / "b.duckdb", 7), serving, _info("20250102T0Z-b"))
        assert old_reader.sql("select count(*) from marts.fct_orders").fetchall() == [(3,)]
        assert old_reader.sql("select build_id from serving.build_info").fetchall() == [
            ("20250101T0Z-a",)
        ]
    with duckdb.connect(str(serving / publish.SERVING_DB_NAME), read_only=True) as new_reader:
        assert new_reader.sql("select count(*) from marts.fct_orders").fetchall() == [(7,)]


def test_only_the_newest_parquet_versions_are_kept(tmp_path: Path) -> None:
    warehouse = _make_warehouse(tmp_path / "wh.duckdb", n_orders=2)
    serving = tmp_path / "serving"
    build_ids = [f"2025010{day}T0Z-x" for day in range(1, 6)]
    for build_id in build_ids:
        publish.publish(warehouse, serving, _info(build_id))
    kept = sorted(path.name for path in (serving / "parquet").iterdir() if not path.is_symlink())
    assert kept == build_ids[-publish.KEEP_VERSIONS :]
    assert publish.read_current_parquet_dir(serving).name == build_ids[-1]


def test_a_publish_that_fails_leaves_the_previous_copy_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = tmp_path / "serving"
    publish.publish(_make_warehouse(tmp_path / "a.duckdb", 3), serving, _info("20250101T0Z-a"))
    before = _serving_state(serving)

    def broken_export(*_args: object) -> dict[str, int]:
        raise OSError("disk full")

    monkeypatch.setattr(publish, "export_marts_to_parquet", broken_export)
    with pytest.raises(OSError, match="disk full"):
        publish.publish(_make_warehouse(tmp_path / "b.duckdb", 7), serving, _info("20250102T0Z-b"))
    assert _serving_state(serving) == before
    assert sorted(path.name for path in serving.iterdir()) == ["parquet", publish.SERVING_DB_NAME]
    assert sorted(path.name for path in (serving / "parquet").iterdir()) == [
        "20250101T0Z-a",
        "current",
    ]


def test_verify_rejects_a_copy_whose_tables_do_not_match_the_recorded_counts(
    tmp_path: Path,
) -> None:
    database = _make_warehouse(tmp_path / "wh.duckdb", n_orders=4)
    publish.stamp_build(database, _info("b1"))
    publish.verify_serving_copy(database, "b1")
    with pytest.raises(RuntimeError, match="carries build"):
        publish.verify_serving_copy(database, "b2")
    with duckdb.connect(str(database)) as connection:
        connection.execute("delete from marts.fct_orders where id = 0")
    with pytest.raises(RuntimeError, match=r"marts\.fct_orders: 3 rows in the copy, 4 recorded"):
        publish.verify_serving_copy(database, "b1")


def test_a_failed_dbt_build_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = tmp_path / "serving"
    publish.publish(_make_warehouse(tmp_path / "wh.duckdb", 3), serving, _info("20250101T0Z-a"))
    before = _serving_state(serving)
    raw = tmp_path / "raw.csv.zst"
    raw.write_bytes(b"")
    monkeypatch.setenv("RETAIL_RAW_PATH", str(raw))
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.setenv(publish.SERVING_DIR_ENV, str(serving))

    def failing_dbt(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["dbt", *args], returncode=1)

    monkeypatch.setattr(cli, "run_dbt", failing_dbt)
    assert cli.main(["build"]) == 1
    assert _serving_state(serving) == before


def test_a_successful_dbt_build_publishes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = tmp_path / "raw.csv.zst"
    raw.write_bytes(b"")
    _make_warehouse(tmp_path / "wh.duckdb", 3)
    monkeypatch.setenv("RETAIL_RAW_PATH", str(raw))
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    monkeypatch.delenv(publish.SERVING_DIR_ENV, raising=False)

    def passing_dbt(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["dbt", *args], returncode=0)

    monkeypatch.setattr(cli, "run_dbt", passing_dbt)
    assert cli.main(["build"]) == 0
    with duckdb.connect(
        str(tmp_path / "serving" / publish.SERVING_DB_NAME), read_only=True
    ) as connection:
        (raw_path,) = connection.sql("select raw_path from serving.build_info").fetchall()[0]
    assert raw_path == str(raw.resolve())


def test_build_ids_sort_by_time_and_carry_the_git_commit() -> None:
    early = publish.new_build_info(
        "raw", PROJECT_ROOT, publish.datetime(2025, 1, 1, tzinfo=publish.UTC)
    )
    late = publish.new_build_info(
        "raw", PROJECT_ROOT, publish.datetime(2025, 1, 2, tzinfo=publish.UTC)
    )
    assert early.build_id < late.build_id
    assert early.build_id != publish.new_build_info("raw", PROJECT_ROOT, early.built_at).build_id
    assert early.git_sha is None or len(early.git_sha) == 40
