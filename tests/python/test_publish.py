"""Publishing the serving copy, on a small hand-made warehouse (no dbt): what gets published (the
declared set only, with its constraints and comments, timestamps in UTC), the Parquet files, the
atomic swaps, that a failure or a failed build leaves the previous serving copy untouched, and
that the README's SQLAlchemy recipe sees a new build after a publish."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
import sqlalchemy
import zstandard
from dbt_helpers import PROJECT_ROOT
from sqlalchemy.pool import NullPool

from retail_segments.ops import cli, publish

PUBLISHED = [
    publish.Relation("marts", "dim_customers"),
    publish.Relation("marts", "fct_orders"),
    publish.Relation("ml", "cluster_profiles"),
]
# The first order's time, 12:50 at UTC+1: 11:50 UTC.
FIRST_ORDER_AT = "2011-12-09 12:50:00+01"
FIRST_ORDER_AT_UTC = datetime(2011, 12, 9, 11, 50)


def _make_warehouse(path: Path, n_orders: int) -> Path:
    """A warehouse with what a build holds: two marts (one with a primary key, a TIMESTAMP WITH
    TIME ZONE column and comments), a published ml table, and what is never published: a model
    blob, an ops table and a staging view that reads a file beside the warehouse."""
    raw = path.with_suffix(".csv")
    raw.write_text("id\n1\n2\n")
    with duckdb.connect(str(path)) as connection:
        connection.execute("create schema marts; create schema ml; create schema staging")
        connection.execute("create schema ops")
        connection.execute(
            "create table marts.fct_orders (id bigint primary key,"
            " ordered_at timestamptz not null, note varchar)"
        )
        connection.execute(
            "insert into marts.fct_orders select range,"
            f" timestamptz '{FIRST_ORDER_AT}' + to_hours(range), null from range({n_orders})"
        )
        connection.execute("comment on table marts.fct_orders is 'One row per order.'")
        connection.execute("comment on column marts.fct_orders.id is 'Order id.'")
        connection.execute("comment on column marts.fct_orders.ordered_at is 'Order time.'")
        connection.execute("create table marts.dim_customers as select 1 as customer_id")
        connection.execute("create table ml.cluster_profiles as select 'pca' as stage")
        connection.execute("create table ml.model_registry as select 'blob'::blob as artifact")
        connection.execute("create table ops.raw_file_validations as select now() as at")
        connection.execute(f"create view staging.lines as select * from read_csv('{raw}')")
    return path


def _info(build_id: str) -> publish.BuildInfo:
    return publish.BuildInfo(build_id, publish.datetime.now(publish.UTC), None, "raw.csv.zst")


def _publish(warehouse: Path, serving: Path, build_id: str) -> publish.Published:
    return publish.publish(warehouse, serving, _info(build_id), PUBLISHED)


def _serving_state(serving: Path) -> tuple[bytes, str]:
    """The serving database's bytes and where parquet/current points."""
    current = (serving / "parquet" / "current").readlink()
    return (serving / publish.SERVING_DB_NAME).read_bytes(), str(current)


def _write_manifest(target: Path, nodes: dict[str, dict]) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    path = target / "manifest.json"
    path.write_text(json.dumps({"nodes": nodes}))
    return path


def _model(schema: str, alias: str, access: str, materialized: str = "table") -> dict:
    return {
        "resource_type": "model",
        "schema": schema,
        "alias": alias,
        "access": access,
        "config": {"materialized": materialized},
    }


def test_publish_copies_only_the_published_tables_with_their_constraints_and_comments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The publishing process runs in another time zone than UTC: the copy must not depend on it.
    monkeypatch.setenv("TZ", "America/New_York")
    warehouse = _make_warehouse(tmp_path / "wh.duckdb", n_orders=5)
    serving = tmp_path / "serving"
    published = _publish(warehouse, serving, "20250101T000000000000Z-aaaaaa")

    database = serving / publish.SERVING_DB_NAME
    assert published.database == database and published.missing == ()
    assert database.stat().st_mode & 0o777 == publish.READ_ONLY_MODE
    with duckdb.connect(str(database), read_only=True) as connection:
        assert connection.sql("select build_id from serving.build_info").fetchall() == [
            ("20250101T000000000000Z-aaaaaa",)
        ]
        recorded = dict(connection.sql("select * from serving.published_tables").fetchall())
        assert recorded == {
            "marts.dim_customers": 1,
            "marts.fct_orders": 5,
            "ml.cluster_profiles": 1,
        }
        tables = connection.sql(
            "select schema_name || '.' || table_name from duckdb_tables() order by 1"
        ).fetchall()
        assert [name for (name,) in tables] == [
            *sorted(recorded),
            "serving.build_info",
            "serving.published_tables",
        ]
        assert connection.sql("select * from duckdb_views() where not internal").fetchall() == []
        columns = connection.sql(
            "select column_name, data_type, is_nullable, comment from duckdb_columns()"
            " where table_name = 'fct_orders' order by column_index"
        ).fetchall()
        assert columns == [
            ("id", "BIGINT", False, "Order id."),
            ("ordered_at", "TIMESTAMP", False, f"Order time. {publish.UTC_NOTE}"),
            ("note", "VARCHAR", True, None),
        ]
        assert connection.sql(
            "select constraint_column_names from duckdb_constraints()"
            " where table_name = 'fct_orders' and constraint_type = 'PRIMARY KEY'"
        ).fetchall() == [(["id"],)]
        assert connection.sql(
            "select comment from duckdb_tables() where table_name = 'fct_orders'"
        ).fetchall() == [("One row per order.",)]
        first_at = connection.sql("select min(ordered_at) from marts.fct_orders").fetchall()
        assert first_at == [(FIRST_ORDER_AT_UTC,)]
        built_at_type = connection.sql(
            "select data_type, comment from duckdb_columns() where column_name = 'built_at'"
        ).fetchall()
        assert built_at_type == [("TIMESTAMP", f"When the build was published; {publish.UTC_NOTE}")]


def test_parquet_files_carry_the_build_id_the_descriptions_and_utc_times(
    tmp_path: Path,
) -> None:
    warehouse = _make_warehouse(tmp_path / "wh.duckdb", n_orders=5)
    serving = tmp_path / "serving"
    published = _publish(warehouse, serving, "20250101T000000000000Z-aaaaaa")

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
    schema = pq.read_schema(current / "fct_orders.parquet")
    assert schema.metadata == {
        b"build_id": published.build_id.encode(),
        b"description": b"One row per order.",
    }
    assert schema.field("id").metadata == {b"description": b"Order id."}
    assert schema.field("ordered_at").metadata == {
        b"description": f"Order time. {publish.UTC_NOTE}".encode()
    }
    assert schema.field("ordered_at").type.tz is None and schema.field("note").metadata is None
    # NOT NULL in the copy is a required field in the file
    assert [field.nullable for field in schema] == [False, False, True]
    table = pq.read_table(current / "fct_orders.parquet")
    assert table.column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert table.column("ordered_at")[0].as_py() == FIRST_ORDER_AT_UTC
    with duckdb.connect() as connection:
        build_ids = connection.sql(
            "select value::varchar"
            f" from parquet_kv_metadata('{current}/fct_orders.parquet') where key = 'build_id'"
        ).fetchall()
    assert build_ids == [(published.build_id,)]
    assert not [path for path in serving.rglob(".*") if path.name.endswith(".tmp")]


def test_parquet_is_written_in_row_groups_of_bounded_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(publish, "PARQUET_ROW_GROUP_ROWS", 2)
    published = _publish(_make_warehouse(tmp_path / "wh.duckdb", 5), tmp_path / "s", "b1")
    parquet = pq.ParquetFile(published.parquet_dir / "fct_orders.parquet")
    sizes = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    assert sizes == [2, 2, 1]
    assert parquet.read().column("id").to_pylist() == [0, 1, 2, 3, 4]


def test_a_published_table_missing_from_the_warehouse_is_reported_not_published(
    tmp_path: Path,
) -> None:
    warehouse = _make_warehouse(tmp_path / "wh.duckdb", n_orders=2)
    relations = [*PUBLISHED, publish.Relation("marts", "not_built")]
    published = publish.publish(warehouse, tmp_path / "serving", _info("b1"), relations)
    assert published.missing == ("marts.not_built",)
    assert sorted(published.row_counts) == [relation.qualified for relation in PUBLISHED]


def test_the_published_set_is_every_public_table_of_the_dbt_manifest(tmp_path: Path) -> None:
    manifest = _write_manifest(
        tmp_path / "target",
        {
            "model.p.fct_orders": _model("marts", "fct_orders", "public"),
            "model.p.fct_lines": _model("marts", "fct_lines", "public", "incremental"),
            "model.p.cluster_profiles": _model("ml", "cluster_profiles", "public"),
            "model.p.model_registry": _model("ml", "model_registry", "protected"),
            "model.p.stg_lines": _model("staging", "stg_lines", "public", "view"),
            "seed.p.segment_map": {"resource_type": "seed", "schema": "seeds", "alias": "m"},
        },
    )
    assert publish.published_relations(manifest) == [
        publish.Relation("marts", "fct_lines"),
        publish.Relation("marts", "fct_orders"),
        publish.Relation("ml", "cluster_profiles"),
    ]
    with pytest.raises(RuntimeError, match=r"no dbt manifest at .*missing.*make build"):
        publish.published_relations(tmp_path / "missing" / "manifest.json")
    private = _write_manifest(tmp_path / "private", {"m": _model("ml", "x", "protected")})
    with pytest.raises(RuntimeError, match="declares no model with access: public"):
        publish.published_relations(private)


def test_the_manifest_is_read_from_the_target_path_the_build_used(tmp_path: Path) -> None:
    root = tmp_path / "project"
    assert publish.manifest_path([], {}, root) == root / "target" / "manifest.json"
    env = {publish.DBT_TARGET_PATH_ENV: str(tmp_path / "env_target")}
    assert publish.manifest_path([], env, root) == tmp_path / "env_target" / "manifest.json"
    args = ["--select", "x", "--target-path", "other"]
    assert publish.manifest_path(args, env, root) == root / "other" / "manifest.json"
    args = [f"--target-path={tmp_path / 'flag'}"]
    assert publish.manifest_path(args, env, root) == tmp_path / "flag" / "manifest.json"


def test_a_reader_holding_the_old_copy_keeps_reading_it_across_a_publish(tmp_path: Path) -> None:
    serving = tmp_path / "serving"
    _publish(_make_warehouse(tmp_path / "a.duckdb", 3), serving, "20250101T0Z-a")
    with duckdb.connect(str(serving / publish.SERVING_DB_NAME), read_only=True) as old_reader:
        _publish(_make_warehouse(tmp_path / "b.duckdb", 7), serving, "20250102T0Z-b")
        assert old_reader.sql("select count(*) from marts.fct_orders").fetchall() == [(3,)]
        assert old_reader.sql("select build_id from serving.build_info").fetchall() == [
            ("20250101T0Z-a",)
        ]
    with duckdb.connect(str(serving / publish.SERVING_DB_NAME), read_only=True) as new_reader:
        assert new_reader.sql("select count(*) from marts.fct_orders").fetchall() == [(7,)]


def _sqlalchemy_engine(database: Path, **options: object) -> sqlalchemy.Engine:
    """The README's SQLAlchemy recipe (duckdb-engine), with options for create_engine."""
    url = f"duckdb:///{database}?access_mode=read_only&enable_external_access=false"
    return sqlalchemy.create_engine(url, **options)


def _served_build(engine: sqlalchemy.Engine) -> str:
    with engine.connect() as connection:
        return connection.execute(sqlalchemy.text("select build_id from serving.build_info")).one()[
            0
        ]


def test_the_sqlalchemy_recipe_sees_the_new_build_after_a_publish(tmp_path: Path) -> None:
    serving = tmp_path / "serving"
    database = serving / publish.SERVING_DB_NAME
    _publish(_make_warehouse(tmp_path / "a.duckdb", 3), serving, "20250101T0Z-a")
    recipe = _sqlalchemy_engine(database, poolclass=NullPool)
    assert _served_build(recipe) == "20250101T0Z-a"
    _publish(_make_warehouse(tmp_path / "b.duckdb", 7), serving, "20250102T0Z-b")
    assert _served_build(recipe) == "20250102T0Z-b"
    with recipe.connect() as connection:
        count = connection.execute(sqlalchemy.text("select count(*) from marts.fct_orders"))
        assert count.one()[0] == 7

    # What the README warns about: a pooled connection keeps the file it opened, and DuckDB
    # shares that open file with every new connection to the same path in the process...
    pooled = _sqlalchemy_engine(database)  # SQLAlchemy's default pool keeps connections open
    assert _served_build(pooled) == "20250102T0Z-b"
    _publish(_make_warehouse(tmp_path / "c.duckdb", 9), serving, "20250103T0Z-c")
    assert _served_build(pooled) == _served_build(recipe) == "20250102T0Z-b"
    # ...until the pool is disposed of.
    pooled.dispose()
    assert _served_build(pooled) == _served_build(recipe) == "20250103T0Z-c"
    pooled.dispose()


def test_only_the_newest_parquet_versions_are_kept(tmp_path: Path) -> None:
    warehouse = _make_warehouse(tmp_path / "wh.duckdb", n_orders=2)
    serving = tmp_path / "serving"
    build_ids = [f"2025010{day}T000000000000Z-abcde{day}" for day in range(1, 6)]
    for build_id in build_ids:
        _publish(warehouse, serving, build_id)
    kept = sorted(path.name for path in (serving / "parquet").iterdir() if not path.is_symlink())
    assert kept == build_ids[-publish.KEEP_VERSIONS :]
    assert publish.read_current_parquet_dir(serving).name == build_ids[-1]


def test_the_prune_removes_only_old_build_versions(tmp_path: Path) -> None:
    """The publish keeps the newest KEEP_VERSIONS build folders of parquet/ and never touches a
    folder it did not make (not named as a build id), whatever it holds."""
    root = tmp_path / "parquet"
    builds = [f"2011120{day}T000000000000Z-abc12{day}" for day in range(1, 6)]
    for build_id in builds:
        (root / build_id).mkdir(parents=True)
        (root / build_id / "customer_rfm.parquet").write_bytes(b"x")
    kept_by_hand = root / "2000-my-export"
    (kept_by_hand / "sub").mkdir(parents=True)
    (kept_by_hand / "notes.txt").write_text("mine")
    (root / publish.CURRENT_LINK_NAME).symlink_to(builds[-1])
    removed = publish.prune_parquet_versions(root, publish.KEEP_VERSIONS)
    assert removed == [root / build_id for build_id in builds[:2]]
    assert sorted(path.name for path in root.iterdir()) == sorted(
        [*builds[2:], "2000-my-export", publish.CURRENT_LINK_NAME]
    )
    assert (kept_by_hand / "notes.txt").read_text() == "mine" and (kept_by_hand / "sub").is_dir()


def test_a_publish_that_fails_leaves_the_previous_copy_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = tmp_path / "serving"
    _publish(_make_warehouse(tmp_path / "a.duckdb", 3), serving, "20250101T0Z-a")
    before = _serving_state(serving)

    def broken_export(*_args: object) -> dict[str, int]:
        raise OSError("disk full")

    monkeypatch.setattr(publish, "export_marts_to_parquet", broken_export)
    with pytest.raises(OSError, match="disk full"):
        _publish(_make_warehouse(tmp_path / "b.duckdb", 7), serving, "20250102T0Z-b")
    assert _serving_state(serving) == before
    assert sorted(path.name for path in serving.iterdir()) == ["parquet", publish.SERVING_DB_NAME]
    assert sorted(path.name for path in (serving / "parquet").iterdir()) == [
        "20250101T0Z-a",
        "current",
    ]


def test_a_publish_sweeps_what_a_killed_publish_left_staged(tmp_path: Path) -> None:
    """A publish killed while staging leaves its staged copy (full size) and Parquet folder; the
    next publish, which holds the serving folder's lock, removes them."""
    serving = tmp_path / "serving"
    _publish(_make_warehouse(tmp_path / "a.duckdb", 3), serving, "20250101T0Z-a")
    staged = [
        serving / f".{publish.SERVING_DB_NAME}.20250101T1Z-k.tmp",
        serving / f".{publish.SERVING_DB_NAME}.20250101T1Z-k.tmp.wal",
    ]
    for path in staged:
        path.write_bytes(b"half a copy")
    (serving / "parquet" / ".20250101T1Z-k.tmp").mkdir()
    (serving / "parquet" / ".20250101T1Z-k.tmp" / "customer_rfm.parquet").write_bytes(b"x")
    (serving / "parquet" / ".current.0123abcd.tmp").symlink_to("20250101T0Z-a")  # a staged link
    _publish(_make_warehouse(tmp_path / "b.duckdb", 4), serving, "20250102T0Z-b")
    assert sorted(path.name for path in serving.iterdir()) == ["parquet", publish.SERVING_DB_NAME]
    assert sorted(path.name for path in (serving / "parquet").iterdir()) == [
        "20250101T0Z-a",
        "20250102T0Z-b",
        "current",
    ]


def test_a_current_folder_instead_of_the_link_is_refused_before_anything_is_replaced(
    tmp_path: Path,
) -> None:
    """A serving folder copied with cp -L holds `current` as a folder: the publish used to
    replace the DuckDB file, then fail on the link, leaving DuckDB and Parquet readers on two
    builds under "serving copy unchanged"."""
    serving = tmp_path / "serving"
    _publish(_make_warehouse(tmp_path / "a.duckdb", 3), serving, "20250101T0Z-a")
    current = serving / "parquet" / "current"
    current.unlink()
    shutil.copytree(serving / "parquet" / "20250101T0Z-a", current)
    database = (serving / publish.SERVING_DB_NAME).read_bytes()
    with pytest.raises(RuntimeError, match=r"current is not a symbolic link .* cp -L"):
        _publish(_make_warehouse(tmp_path / "b.duckdb", 7), serving, "20250102T0Z-b")
    assert (serving / publish.SERVING_DB_NAME).read_bytes() == database
    assert not (serving / "parquet" / "20250102T0Z-b").exists()


def test_verify_rejects_a_copy_unlike_its_record(tmp_path: Path) -> None:
    warehouse = _make_warehouse(tmp_path / "wh.duckdb", n_orders=4)
    copies = []
    for name in ("fewer_rows", "extra_table", "view"):
        copy = tmp_path / f"{name}.duckdb"
        publish.write_serving_copy(warehouse, copy, PUBLISHED, _info("b1"))
        publish.verify_serving_copy(copy, "b1")
        copies.append(copy)
    with pytest.raises(RuntimeError, match="carries build"):
        publish.verify_serving_copy(copies[0], "b2")
    tamper = {
        "delete from marts.fct_orders where id = 0": r"marts\.fct_orders: 3 rows in the copy, 4",
        "create table ml.model_registry as select 1 as x": r"holds tables \['ml\.model_registry'\]",
        "create view marts.v as select 1 as x": "holds views",
    }
    for copy, (statement, message) in zip(copies, tamper.items(), strict=True):
        with duckdb.connect(str(copy)) as connection:
            connection.execute(statement)
        with pytest.raises(RuntimeError, match=message):
            publish.verify_serving_copy(copy, "b1")


def _cli_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serving: Path | None, synthetic_raw: Path
) -> None:
    raw = tmp_path / "raw.csv.zst"
    shutil.copyfile(synthetic_raw, raw)
    monkeypatch.setenv("RETAIL_RAW_PATH", str(raw))
    monkeypatch.setenv("RETAIL_DUCKDB_PATH", str(tmp_path / "wh.duckdb"))
    if serving is None:
        monkeypatch.delenv(publish.SERVING_DIR_ENV, raising=False)
    else:
        monkeypatch.setenv(publish.SERVING_DIR_ENV, str(serving))
    target = tmp_path / "target"
    monkeypatch.setenv(publish.DBT_TARGET_PATH_ENV, str(target))
    _write_manifest(
        target,
        {f"model.p.{r.name}": _model(r.schema, r.name, "public") for r in PUBLISHED},
    )


def _dbt_exiting(returncode: int) -> Callable[..., subprocess.CompletedProcess[str]]:
    def fake_dbt(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(["dbt", *args], returncode=returncode)

    return fake_dbt


def test_a_failed_dbt_build_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_raw: Path
) -> None:
    serving = tmp_path / "serving"
    _publish(_make_warehouse(tmp_path / "wh.duckdb", 3), serving, "20250101T0Z-a")
    before = _serving_state(serving)
    _cli_environment(tmp_path, monkeypatch, serving, synthetic_raw)
    monkeypatch.setattr(cli, "run_dbt", _dbt_exiting(1))
    assert cli.main(["build"]) == 1
    assert _serving_state(serving) == before


def test_a_successful_dbt_build_publishes_the_manifests_public_tables(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    synthetic_raw: Path,
) -> None:
    _make_warehouse(tmp_path / "wh.duckdb", 3)
    _cli_environment(tmp_path, monkeypatch, None, synthetic_raw)
    monkeypatch.setattr(cli, "run_dbt", _dbt_exiting(0))
    assert cli.main(["build"]) == 0
    assert "(3 tables; open read-only)" in capsys.readouterr().out
    with duckdb.connect(
        str(tmp_path / "serving" / publish.SERVING_DB_NAME), read_only=True
    ) as connection:
        raw_path, vars_json, files_json = connection.sql(
            "select raw_path, vars_json, input_files_json from serving.build_info"
        ).fetchall()[0]
        tables = connection.sql("select table_name from serving.published_tables").fetchall()
    assert raw_path == str((tmp_path / "raw.csv.zst").resolve())
    assert sorted(name for (name,) in tables) == [r.qualified for r in PUBLISHED]
    # what the published numbers reflect: the build's vars and every input file, also in the
    # Parquet manifest
    assert json.loads(vars_json)["rfm_as_of"] == "2011-12-10"
    (raw,) = json.loads(files_json)
    assert raw["role"] == "raw" and raw["path"] == raw_path
    assert raw["sha256"] == hashlib.sha256(Path(raw_path).read_bytes()).hexdigest()
    with Path(raw_path).open("rb") as handle:
        text = zstandard.ZstdDecompressor().stream_reader(handle).read()
    assert raw["n_rows"] == text.count(b"\n") - 1  # the data lines, not the header
    current = tmp_path / "serving" / publish.PARQUET_DIR_NAME / publish.CURRENT_LINK_NAME
    parquet = json.loads((current / publish.MANIFEST_NAME).read_text())
    assert parquet["vars"] == json.loads(vars_json) and parquet["input_files"] == [raw]


def test_a_build_without_a_manifest_says_so_and_publishes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    synthetic_raw: Path,
) -> None:
    serving = tmp_path / "serving"
    _publish(_make_warehouse(tmp_path / "wh.duckdb", 3), serving, "20250101T0Z-a")
    before = _serving_state(serving)
    _cli_environment(tmp_path, monkeypatch, serving, synthetic_raw)
    missing_target = tmp_path / "no_target"
    monkeypatch.setenv(publish.DBT_TARGET_PATH_ENV, str(missing_target))
    monkeypatch.setattr(cli, "run_dbt", _dbt_exiting(0))
    assert cli.main(["build"]) == 1
    error = capsys.readouterr().err
    assert f"no dbt manifest at {missing_target / 'manifest.json'}" in error
    assert "serving copy unchanged" in error and "Traceback" not in error
    assert _serving_state(serving) == before


def test_build_ids_sort_by_time_and_carry_the_git_commit() -> None:
    early = publish.new_build_info(
        "raw", PROJECT_ROOT, publish.datetime(2025, 1, 1, tzinfo=publish.UTC)
    )
    late = publish.new_build_info(
        "raw", PROJECT_ROOT, publish.datetime(2025, 1, 2, tzinfo=publish.UTC)
    )
    assert early.build_id < late.build_id
    assert early.build_id != publish.new_build_info("raw", PROJECT_ROOT, early.built_at).build_id
    assert early.git_sha is None or re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", early.git_sha)


def test_the_git_commit_says_when_tracked_files_differed_from_it(tmp_path: Path) -> None:
    """A build from edited code is not the commit's build: its git_sha says +dirty. Files git
    does not track (the warehouse, target/) do not count."""
    assert publish.new_build_info("raw", tmp_path).git_sha is None  # outside git
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    model = tmp_path / "model.sql"
    model.write_text("select 1\n")
    for args in (["init", "-q"], ["add", "model.sql"], ["commit", "-q", "-m", "m"]):
        subprocess.run(["git", *args], cwd=tmp_path, env=env, check=True)
    sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.strip()
    (tmp_path / "warehouse.duckdb").write_bytes(b"untracked")
    assert publish.new_build_info("raw", tmp_path).git_sha == sha
    model.write_text("select 2\n")
    assert publish.new_build_info("raw", tmp_path).git_sha == f"{sha}+dirty"
