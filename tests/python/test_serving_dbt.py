"""Safe publishing end to end, on the synthetic build: while ``python -m retail_segments build``
rebuilds on another raw file, a reader process queries the serving copy in a loop and never errors
nor sees a mix of two builds; a build that fails publishes nothing. And the copy BI tools get: only
the published set, self-contained (it answers every query once the raw file is gone), readable by
the oldest supported DuckDB 1.x, and locked down by each connection recipe of the README (DuckDB
CLI, DuckDB Python, SQLAlchemy with duckdb-engine, Parquet readers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import polars as pl
import pyarrow.parquet as pq
import pytest
import sqlalchemy
import zstandard
from dbt_helpers import PROJECT_ROOT, Workspace, assert_built, copy_workspace, run_cli
from sqlalchemy.pool import NullPool

from retail_segments.ops import preflight, publish
from retail_segments_dev.synthetic import RAW_COLUMNS, generate_raw_lines, write_raw_file

pytestmark = pytest.mark.dbt

READER = Path(__file__).with_name("serving_reader.py")
OTHER_SEED = 8
# The environment of DuckDB 1.x readers that `make test` installs (see the Makefile).
OLD_DUCKDB_VENV_ENV = "RETAIL_OLD_DUCKDB_VENV"
DEFAULT_OLD_DUCKDB_VENV = ".venv-duckdb1"
# The README's read-only, locked-down connection settings.
LOCKED_DOWN = {"enable_external_access": False}
CLI_LOCK = "SET enable_external_access = false"


def _manifest(workspace: Workspace) -> Path:
    return workspace.root / "target" / "manifest.json"


def _table_counts(warehouse: Path, relations: list[publish.Relation]) -> dict[str, int]:
    """Row count of every published table of schemas marts and ml that a warehouse holds."""
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        present = set(
            connection.sql("select schema_name, table_name from duckdb_tables()").fetchall()
        )
        return {
            relation.qualified: connection.sql(
                f"select count(*) from {relation.qualified}"
            ).fetchall()[0][0]
            for relation in relations
            if relation.schema in ("marts", "ml") and (relation.schema, relation.name) in present
        }


def _cli_env(raw: Path, root: Path, serving: Path) -> dict[str, str]:
    """The environment of a build of raw into root/warehouse.duckdb, published to serving."""
    return {
        **os.environ,
        "RETAIL_RAW_PATH": str(raw),
        "RETAIL_DUCKDB_PATH": str(root / "warehouse.duckdb"),
        publish.SERVING_DIR_ENV: str(serving),
    }


def _cli_build(
    raw: Path, root: Path, serving: Path, *dbt_args: str
) -> subprocess.CompletedProcess[str]:
    """``python -m retail_segments build [dbt_args]`` into root/warehouse.duckdb, publishing to
    serving."""
    env = _cli_env(raw, root, serving)
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
    relations = publish.published_relations(_manifest(synthetic_build))
    first = publish.publish(
        synthetic_build.warehouse,
        serving,
        publish.new_build_info("seed 7", PROJECT_ROOT),
        relations,
    )
    expected = {first.build_id: _table_counts(synthetic_build.warehouse, relations)}
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
        # tests of those models only. `build` allows a selection only on a warehouse whose last
        # whole build recorded its vars: the record a whole build of these inputs would leave
        # stands in for one (what is tested here is the publish, not the selection).
        prepared = preflight.prepare(PROJECT_ROOT, _cli_env(other_raw, build_root, serving), [])
        preflight.BuiltVars.of_stamp(prepared.stamp).write(preflight.stamp_vars(prepared.stamp))
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
    expected[second_id] = _table_counts(build_root / "warehouse.duckdb", relations)
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
    publish.publish(
        synthetic_build.warehouse,
        serving,
        publish.new_build_info("7", PROJECT_ROOT),
        publish.published_relations(_manifest(synthetic_build)),
    )
    before = _serving_state(serving)
    bad_raw = tmp_path / "header_only.csv.zst"
    bad_raw.write_bytes(
        zstandard.ZstdCompressor().compress((",".join(RAW_COLUMNS) + "\n").encode())
    )

    result = _cli_build(bad_raw, tmp_path / "failed_build", serving)
    assert result.returncode != 0
    assert "holds no data lines" in result.stderr
    assert "nothing was built" in result.stderr
    assert _serving_state(serving) == before
    assert sorted(p.name for p in serving.iterdir()) == ["parquet", publish.SERVING_DB_NAME]


@dataclass(frozen=True)
class Served:
    """A serving copy published from a build whose raw file has since been deleted."""

    build: Workspace
    published: publish.Published
    relations: list[publish.Relation]
    file_views: list[str]


@pytest.fixture(scope="module")
def served(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path_factory: pytest.TempPathFactory
) -> Served:
    """A copy of the synthetic build whose views read the raw data as landed in its own landing
    directory, published, after which that directory is deleted."""
    root = tmp_path_factory.mktemp("served")
    build = copy_workspace(synthetic_build, root / "build")
    assert_built(build.dbt(synthetic_raw, "run", "--select", "config.materialized:view"))
    landing = build.root / "landing"
    file_views = [
        name
        for (name,) in build.query(
            "select schema_name || '.' || view_name from duckdb_views()"
            f" where sql like '%{landing}%'"
        )
    ]
    relations = publish.published_relations(_manifest(build))
    info = publish.new_build_info(str(synthetic_raw), PROJECT_ROOT)
    published = publish.publish(build.warehouse, root / "serving", info, relations)
    shutil.rmtree(landing)
    return Served(build, published, relations, file_views)


@pytest.fixture
def old_duckdb() -> Path:
    """The bin directory of the DuckDB 1.x environment (python with the oldest supported DuckDB,
    and the 1.x CLI). Under `make test`, which sets RETAIL_OLD_DUCKDB_VENV, it must exist;
    elsewhere the test is skipped without it."""
    configured = os.environ.get(OLD_DUCKDB_VENV_ENV)
    bin_dir = PROJECT_ROOT / (configured or DEFAULT_OLD_DUCKDB_VENV) / "bin"
    if not ((bin_dir / "python").exists() and (bin_dir / "duckdb").exists()):
        install = "`make test` (Makefile target $(OLD_DUCKDB_STAMP))"
        if configured:
            pytest.fail(f"{OLD_DUCKDB_VENV_ENV}={configured}: no python and duckdb in {bin_dir}")
        pytest.skip(f"no DuckDB 1.x environment in {bin_dir.parent}: {install} installs it")
    return bin_dir


def _refusals(execute: Callable[[str], object], tmp_path: Path) -> list[str]:
    """Run, through execute(sql) -> None, what a locked-down read-only connection must refuse:
    read a local file, write one, re-enable file access, write to the database; return the error
    messages (a statement that ran is a failure)."""
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    written = tmp_path / "exfiltrated.csv"
    statements = [
        f"select * from read_csv('{secret}')",
        f"copy (select * from marts.dim_customers) to '{written}'",
        "set enable_external_access = true",
        "create table marts.scratch as select 1 as x",
    ]
    messages = []
    for statement in statements:
        try:
            execute(statement)
        except Exception as error:  # each client raises its own error type
            messages.append(str(error))
        else:
            pytest.fail(f"not refused: {statement}")
    assert not written.exists()
    return messages


def _assert_locked_down(messages: list[str]) -> None:
    read, write, enable, create = messages
    assert "disabled by configuration" in read and "secret.csv" in read
    assert "disabled by configuration" in write and "exfiltrated.csv" in write
    assert "Cannot enable external access" in enable
    assert "read-only" in create


def test_the_copy_holds_only_the_published_set_and_answers_without_the_raw_file(
    served: Served,
) -> None:
    names = {relation.qualified for relation in served.relations}
    build_tables = {
        row[0]
        for row in served.build.query(
            "select schema_name || '.' || table_name from duckdb_tables()"
        )
    }
    assert {name for name in build_tables if name.startswith("marts.")} <= names
    assert {"semantic.metricflow_time_spine", "ml.cluster_profiles"} <= names
    assert (
        not {"ml.model_registry", "ml.ml_segment_classifier_fit", "ops.raw_file_validations"}
        & names
    )
    assert served.published.missing == ()
    # The exposures name exactly what is published: every public model, the marts as Parquet.
    manifest = json.loads(_manifest(served.build).read_text())
    public = {key for key, node in manifest["nodes"].items() if node.get("access") == "public"}
    exposures = manifest["exposures"]
    duckdb_exposure = exposures["exposure.retail_segments.serving_duckdb"]["depends_on"]["nodes"]
    parquet_exposure = exposures["exposure.retail_segments.serving_parquet"]["depends_on"]["nodes"]
    assert set(duckdb_exposure) == public
    assert set(parquet_exposure) == {k for k in public if manifest["nodes"][k]["schema"] == "marts"}
    # The build warehouse reads the landed raw data through its views; with it gone they fail.
    assert served.file_views, "no view of the build reads the raw data: nothing shown here"
    with pytest.raises(duckdb.IOException):
        served.build.query(f"select count(*) from {served.file_views[0]}")

    with duckdb.connect(str(served.published.database), read_only=True, config=LOCKED_DOWN) as db:
        tables = {
            row[0]
            for row in db.sql(
                "select schema_name || '.' || table_name from duckdb_tables()"
            ).fetchall()
        }
        assert tables == names | {"serving.build_info", "serving.published_tables"}
        assert db.sql("select * from duckdb_views() where not internal").fetchall() == []
        recorded = dict(
            db.sql("select table_name, n_rows from serving.published_tables").fetchall()
        )
        assert set(recorded) == names and recorded["marts.fct_sales_lines"] > 0
        for table, n_rows in recorded.items():
            assert db.sql(f"select count(*) from {table}").fetchall() == [(n_rows,)]
            assert len(db.sql(f"select * from {table} limit 5").fetchall()) == min(n_rows, 5)


OLD_READER_SCRIPT = """
import json, sys
import duckdb
with duckdb.connect(sys.argv[1], read_only=True, config={"enable_external_access": False}) as db:
    tables = [row[0] for row in db.sql(
        "select table_schema || '.' || table_name from information_schema.tables"
    ).fetchall()]
    print(json.dumps({
        "version": duckdb.__version__,
        "counts": {t: db.sql(f"select count(*) from {t}").fetchall()[0][0] for t in tables},
        "samples": {t: len(db.sql(f"select * from {t} limit 5").fetchall()) for t in tables},
        "comments": sorted(db.sql(
            "select schema_name || '.' || table_name || '.' || column_name, comment"
            " from duckdb_columns() where comment is not null"
        ).fetchall()),
        "table_comments": sorted(db.sql(
            "select schema_name || '.' || table_name, comment from duckdb_tables()"
            " where comment is not null"
        ).fetchall()),
    }))
"""


def test_the_oldest_supported_duckdb_reads_every_published_table(
    old_duckdb: Path, served: Served
) -> None:
    python = old_duckdb / "python"
    result = subprocess.run(
        [str(python), "-c", OLD_READER_SCRIPT, str(served.published.database)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert seen["version"] == publish.OLDEST_DUCKDB_READER
    with duckdb.connect(str(served.published.database), read_only=True) as db:
        recorded = dict(
            db.sql("select table_name, n_rows from serving.published_tables").fetchall()
        )
        comments = sorted(
            db.sql(
                "select schema_name || '.' || table_name || '.' || column_name, comment"
                " from duckdb_columns() where comment is not null"
            ).fetchall()
        )
        table_comments = sorted(
            db.sql(
                "select schema_name || '.' || table_name, comment from duckdb_tables()"
                " where comment is not null"
            ).fetchall()
        )
    assert {t: n for t, n in seen["counts"].items() if not t.startswith("serving.")} == recorded
    assert seen["samples"] == {t: min(n, 5) for t, n in seen["counts"].items()}
    assert len(comments) > 100 and [tuple(c) for c in seen["comments"]] == comments
    assert [tuple(c) for c in seen["table_comments"]] == table_comments


def test_the_duckdb_cli_recipe_is_read_only_and_locked_down(
    old_duckdb: Path, served: Served, tmp_path: Path
) -> None:
    cli = old_duckdb / "duckdb"

    def run(sql: str) -> str:
        result = subprocess.run(
            [
                str(cli),
                "-readonly",
                "-cmd",
                CLI_LOCK,
                str(served.published.database),
                "-csv",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr + result.stdout)
        return result.stdout

    counted = run("select count(*) as n from marts.fct_orders").split()
    assert counted == ["n", str(served.published.row_counts["marts.fct_orders"])]
    _assert_locked_down(_refusals(run, tmp_path))


def test_the_duckdb_python_recipe_is_read_only_and_locked_down(
    served: Served, tmp_path: Path
) -> None:
    with duckdb.connect(str(served.published.database), read_only=True, config=LOCKED_DOWN) as db:
        summary = db.sql("select count(*) from marts.segment_summary").fetchall()
        assert summary == [(served.published.row_counts["marts.segment_summary"],)]
        _assert_locked_down(_refusals(db.execute, tmp_path))


def test_the_sqlalchemy_recipe_reads_the_marts_and_is_locked_down(
    served: Served, tmp_path: Path
) -> None:
    database = served.published.database
    engine = sqlalchemy.create_engine(
        f"duckdb:///{database}?access_mode=read_only&enable_external_access=false",
        poolclass=NullPool,
    )
    query = "select * from marts.segment_summary order by scheme, segment_rank"
    frame = pd.read_sql(query, engine)
    with duckdb.connect(str(database), read_only=True) as db:
        direct = db.sql(query).df()
    # The same rows and values; SQLAlchemy hands pandas Python ints, so every integer is int64.
    pd.testing.assert_frame_equal(frame, direct, check_dtype=False)
    inspector = sqlalchemy.inspect(engine)
    marts = sorted(r.name for r in served.relations if r.schema == "marts")
    assert sorted(inspector.get_table_names(schema="marts")) == marts
    assert inspector.get_table_comment("fct_orders", schema="marts")["text"]

    def execute(sql: str) -> None:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text(sql))

    _assert_locked_down(_refusals(execute, tmp_path))
    engine.dispose()


def test_the_parquet_recipes_read_every_mart_with_its_descriptions(served: Served) -> None:
    version = publish.read_current_parquet_dir(served.published.database.parent)
    manifest = json.loads((version / publish.MANIFEST_NAME).read_text())
    marts = {r.name for r in served.relations if r.schema == "marts"}
    assert set(manifest["tables"]) == marts and manifest["build_id"] == served.published.build_id
    with duckdb.connect(str(served.published.database), read_only=True) as db:
        comments = dict(
            db.sql(
                "select table_name || '.' || column_name, comment from duckdb_columns()"
                " where schema_name = 'marts' and comment is not null"
            ).fetchall()
        )
    for table, entry in manifest["tables"].items():
        path = version / entry["file"]
        schema = pq.read_schema(path)
        assert schema.metadata[b"build_id"] == served.published.build_id.encode()
        described = {
            f"{table}.{field.name}": field.metadata[b"description"].decode()
            for field in schema
            if field.metadata
        }
        assert described == {k: v for k, v in comments.items() if k.startswith(f"{table}.")}
        assert pq.read_table(path).num_rows == entry["n_rows"]
        assert pl.read_parquet(path).height == entry["n_rows"]
        assert duckdb.sql(f"select count(*) from '{path}'").fetchall() == [(entry["n_rows"],)]
    assert len(comments) > 100


def test_a_selection_that_names_nothing_is_refused_and_nothing_is_published(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    """A misspelt model in --select is an error (dbt_project.yml's flags), not a run that builds
    nothing, says it succeeded and publishes an unchanged copy as a new build."""
    workspace = copy_workspace(synthetic_build, tmp_path / "typo")
    serving = tmp_path / "serving"
    result = run_cli(
        workspace,
        synthetic_raw,
        "build",
        "--select",
        "customer_rfmm",
        env={"RETAIL_SERVING_DIR": str(serving)},
    )
    assert result.returncode != 0
    assert "The selection criterion 'customer_rfmm' does not match any enabled nodes" in (
        result.stdout
    )
    assert "nothing was published" in result.stderr
    assert not serving.exists()
