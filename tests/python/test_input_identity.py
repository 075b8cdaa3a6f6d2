"""Input identity: the warehouse records the content fingerprint of every file it loaded, a build
on other input rebuilds from scratch by itself and then equals a fresh build, and plain ``dbt``
refuses to build anything but what ``prepare`` checked."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import zstandard
from dbt_helpers import (
    PROJECT_ROOT,
    Workspace,
    copy_workspace,
    kill_build_once_started,
    run_cli,
    table_checksums,
)

from retail_segments.ops import preflight
from retail_segments.ops.dbt_runner import run_dbt
from retail_segments.ops.inputs import LandedFile, land_file
from retail_segments.ops.paths import raw_path_candidates
from retail_segments.ops.preflight import (
    BUILT_VARS_NAME,
    REFRESH_PENDING_NAME,
    BuiltVars,
    LoadedFile,
    PendingRefresh,
    PreflightError,
    check_loaded_still_matched,
    decide_identity,
    loaded_files,
    purchases_before_loaded_returns,
    stamp_vars,
    vars_since_built,
)
from retail_segments_dev.synthetic import RAW_COLUMNS, generate_raw_lines, write_raw_file

pytestmark = pytest.mark.dbt

# Columns that differ between two builds of the same input (timings, serialised bytes; the
# classifier fit's candidates hold fit_seconds).
NOT_REPRODUCIBLE = {
    "ml.ml_segment_classifier_fit": ("artifact", "candidates", "training_seconds"),
    "ml.model_registry": ("artifact", "training_seconds"),
    # which dbt invocation published the model, and when
    "ml.model_publications": ("invocation_id", "build_started_at"),
}
DIGITS = 12
SHA_A, SHA_B = "a" * 64, "b" * 64
AT = datetime(2011, 12, 9, 12, 0)


def _landed(path: str, sha: str, first: datetime = AT) -> LandedFile:
    return LandedFile(
        Path(path), sha, 1, 1, "zstd", "latin-1", "online_retail", 1, first, first, Path("x")
    )


RAW_A = LoadedFile("/data/raw.csv.zst", SHA_A, True, AT)
DAY_1 = LoadedFile("/in/2011-12-10.csv.zst", SHA_A, False, AT)

IDENTITY_CASES = {
    "no warehouse yet": (None, _landed("/data/raw.csv.zst", SHA_A), [], {}, []),
    "same raw file, same bytes": ([RAW_A], _landed("/data/raw.csv.zst", SHA_A), [], {}, []),
    "a new daily file after the loaded ones": (
        [RAW_A, DAY_1],
        _landed("/data/raw.csv.zst", SHA_A),
        [_landed("/in/2011-12-10.csv.zst", SHA_A), _landed("/in/2011-12-11.csv.zst", SHA_B)],
        {},
        [],
    ),
    "an earlier version recorded nothing": (
        [],
        _landed("/data/raw.csv.zst", SHA_A),
        [],
        {},
        ["does not record which files it was built from"],
    ),
    "same path, other bytes": (
        [RAW_A],
        _landed("/data/raw.csv.zst", SHA_B),
        [],
        {},
        ["the raw file is not the one the warehouse was built from", "sha256 bbbbbbbbbbbb"],
    ),
    "other path, same bytes": (
        [RAW_A],
        _landed("/data/newer.csv.zst", SHA_A),
        [],
        {},
        ["now /data/newer.csv.zst", "before /data/raw.csv.zst"],
    ),
    "a loaded daily file changed": (
        [RAW_A, DAY_1],
        _landed("/data/raw.csv.zst", SHA_A),
        [_landed("/in/2011-12-10.csv.zst", SHA_B)],
        {},
        ["the loaded incoming file /in/2011-12-10.csv.zst has changed"],
    ),
    "a loaded daily file is gone": (
        [RAW_A, DAY_1],
        _landed("/data/raw.csv.zst", SHA_A),
        [],
        {},
        ["the loaded incoming file /in/2011-12-10.csv.zst is gone"],
    ),
    "a new daily file sorts before a loaded one": (
        [RAW_A, DAY_1],
        _landed("/data/raw.csv.zst", SHA_A),
        [_landed("/in/2011-12-09.csv.zst", SHA_B), _landed("/in/2011-12-10.csv.zst", SHA_A)],
        {},
        ["/in/2011-12-09.csv.zst sorts before the loaded 2011-12-10.csv.zst"],
    ),
    # RETAIL_INCOMING_GLOB over several folders: files sort by name, by path only among equal
    # names (daily_file_order; the staging model numbers lines in the same order)
    "a new daily file in an earlier folder, named to sort after the loaded ones": (
        [RAW_A, LoadedFile("/in/b/2011-12-10.csv.zst", SHA_A, False, AT)],
        _landed("/data/raw.csv.zst", SHA_A),
        [_landed("/in/b/2011-12-10.csv.zst", SHA_A), _landed("/in/a/2011-12-11.csv.zst", SHA_B)],
        {},
        [],
    ),
    "a new daily file in a later folder, named to sort before a loaded one": (
        [RAW_A, LoadedFile("/in/a/2011-12-10.csv.zst", SHA_A, False, AT)],
        _landed("/data/raw.csv.zst", SHA_A),
        [_landed("/in/a/2011-12-10.csv.zst", SHA_A), _landed("/in/b/2011-12-09.csv.zst", SHA_B)],
        {},
        ["/in/b/2011-12-09.csv.zst sorts before the loaded 2011-12-10.csv.zst"],
    ),
    "a new daily file named as a loaded one, in an earlier folder": (
        [RAW_A, LoadedFile("/in/b/day.csv", SHA_A, False, AT)],
        _landed("/data/raw.csv.zst", SHA_A),
        [_landed("/in/b/day.csv", SHA_A), _landed("/in/a/day.csv", SHA_B)],
        {},
        ["/in/a/day.csv sorts before the loaded /in/b/day.csv"],
    ),
    "a new daily file named as a loaded one, in a later folder": (
        [RAW_A, LoadedFile("/in/a/day.csv", SHA_A, False, AT)],
        _landed("/data/raw.csv.zst", SHA_A),
        [_landed("/in/a/day.csv", SHA_A), _landed("/in/b/day.csv", SHA_B)],
        {},
        [],
    ),
    "a new daily file with a purchase before a loaded return": (
        [RAW_A],
        _landed("/data/raw.csv.zst", SHA_A),
        [_landed("/in/2011-12-11.csv.zst", SHA_B)],
        {"/in/2011-12-11.csv.zst": (2, "customer 1, stock code X at 2011-12-01 10:00")},
        ["holds 2 purchase line(s) dated before a loaded return", "customer 1"],
    ),
}


@pytest.mark.parametrize("name", list(IDENTITY_CASES))
def test_the_identity_rule_rebuilds_exactly_when_loaded_input_is_not_current(name: str) -> None:
    loaded, raw, incoming, backdated, reasons = IDENTITY_CASES[name]
    identity = decide_identity(loaded, raw, incoming, backdated)
    assert identity.full_refresh == bool(reasons)
    for reason in reasons:
        assert reason in identity.summary(), identity.summary()


def test_a_pattern_that_no_longer_matches_a_loaded_daily_file_still_there_is_refused(
    tmp_path: Path,
) -> None:
    """A mistyped RETAIL_INCOMING_GLOB matches none of the loaded daily files: before, the build
    said they were gone and rebuilt from scratch without their lines. A file really removed (or
    moved out), or another raw file (another data set), still rebuilds."""
    day = tmp_path / "incoming" / "2011-12-10.csv"
    day.parent.mkdir()
    day.write_text("loaded\n")
    raw = _landed("/data/raw.csv.zst", SHA_A)
    loaded = [RAW_A, LoadedFile(str(day), SHA_A, False, AT)]
    with pytest.raises(PreflightError) as raised:
        check_loaded_still_matched(loaded, raw, [], f"{day.parent}/*.csv.zst")
    message = str(raised.value)
    assert (
        f"RETAIL_INCOMING_GLOB ({day.parent}/*.csv.zst) no longer matches 1 daily file" in message
    )
    assert f"which still exist ({day})" in message and "nothing was built" in message
    check_loaded_still_matched(loaded, raw, [_landed(str(day), SHA_A)], f"{day.parent}/*")
    check_loaded_still_matched(loaded, _landed("/data/other.csv.zst", SHA_B), [], "x/*")
    day.unlink()
    check_loaded_still_matched(loaded, raw, [], f"{day.parent}/*")
    assert decide_identity(loaded, raw, []).full_refresh


def _raw_text(path: Path) -> str:
    return zstandard.ZstdDecompressor().stream_reader(path.open("rb")).read().decode("latin-1")


def test_the_warehouse_records_each_loaded_file_and_finds_backdated_purchases(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    recorded = loaded_files(synthetic_build.warehouse)
    landed = land_file(synthetic_raw, tmp_path / "cache")
    assert recorded == [
        LoadedFile(str(synthetic_raw.resolve()), landed.sha256, True, landed.last_invoice_at)
    ]
    customer, stock, returned_at = synthetic_build.query(
        "select customer_id, stock_code, invoice_at from intermediate.int_sales_lines__screened"
        " where quantity < 0 and removal_step = 4 order by invoice_at desc limit 1"
    )[0]

    def day_file(name: str, at: pd.Timestamp, quantity: int) -> LandedFile:
        line = {
            "InvoiceNo": "999001",
            "StockCode": stock,
            "Description": "BACKDATED",
            "Quantity": quantity,
            "InvoiceDate": at,
            "UnitPrice": 1.25,
            "CustomerID": customer,
            "Country": "United Kingdom",
        }
        frame = pd.DataFrame([line], columns=RAW_COLUMNS).astype({"CustomerID": "Int64"})
        return land_file(write_raw_file(frame, tmp_path / name), tmp_path / "cache")

    before = day_file("before.csv.zst", pd.Timestamp(returned_at) - pd.Timedelta(days=1), 3)
    after = day_file("after.csv.zst", pd.Timestamp(returned_at) + pd.Timedelta(minutes=1), 3)
    found = purchases_before_loaded_returns(synthetic_build.warehouse, [before, after])
    assert list(found) == [str(before.path)]
    count, first = found[str(before.path)]
    assert count == 1 and f"customer {customer}, stock code {stock}" in first


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_the_vars_of_the_last_whole_build_are_compared_with_the_prepared_ones(
    engine: str, tmp_path: Path
) -> None:
    """The record lives with the warehouse (a table of the DuckDB file, a file of the Spark
    folder): equal vars give no difference, other ones each name and both values; a record
    marked stale, missing or unreadable gives None (a selected build is then refused: never a
    mix taken for consistent). The DuckDB record is the hooks' format (the dbt tests check those
    write it)."""
    warehouse = tmp_path / ("w.duckdb" if engine == "duckdb" else "spark")
    stamp = tmp_path / "prepared.json"
    items = [{"name": "rfm_as_of", "value": "2011-06-01"}, {"name": "n", "value": "3"}]
    stamp.write_text(json.dumps({"engine": engine, "warehouse": str(warehouse), "vars": items}))
    built = BuiltVars.of_stamp(stamp)
    assert built == BuiltVars(engine, warehouse)
    assert vars_since_built(stamp) is None
    if engine == "spark":
        warehouse.mkdir()
    built.write(stamp_vars(stamp))
    assert built.read() == {"rfm_as_of": "2011-06-01", "n": "3"}
    assert vars_since_built(stamp) == ()
    built.write([{"name": "rfm_as_of", "value": "2011-12-10"}])
    assert vars_since_built(stamp) == (
        "rfm_as_of: '2011-12-10' -> '2011-06-01'",
        "n: new, '3'",
    )
    built.write(None)
    assert vars_since_built(stamp) is None
    if engine == "duckdb":
        with duckdb.connect(str(warehouse)) as connection:
            connection.execute("drop table landing.built_vars")
        assert vars_since_built(stamp) is None
    else:
        (warehouse / BUILT_VARS_NAME).write_text("{not json")
        assert vars_since_built(stamp) is None


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_a_run_that_did_not_finish_voids_the_record_until_a_whole_build(
    engine: str, tmp_path: Path
) -> None:
    """A build or run marks the record unfinished when it starts (the DuckDB hook, the Spark
    launcher's `start`) and finished only when every node succeeded; meanwhile no record holds."""
    warehouse = tmp_path / ("w.duckdb" if engine == "duckdb" else "spark")
    if engine == "spark":
        warehouse.mkdir()
    record = BuiltVars(engine, warehouse)
    items = [{"name": "rfm_as_of", "value": "2011-06-01"}]
    record.write(items)
    assert record.read() == {"rfm_as_of": "2011-06-01"} and not record.unfinished()
    if engine == "duckdb":
        with duckdb.connect(str(warehouse)) as connection:  # as invalidate_built_vars() does
            connection.execute("update landing.built_vars set unfinished = true")
    else:
        record.start(vars_differ=False)
    assert record.unfinished() and record.read() is None
    if engine == "spark":
        record.finish()
        assert record.read() == {"rfm_as_of": "2011-06-01"}
        record.start(vars_differ=True)
        record.finish()
        assert record.read() is None and not record.unfinished()
    record.write(items)  # a whole build that succeeded
    assert record.read() == {"rfm_as_of": "2011-06-01"} and not record.unfinished()
    if engine == "duckdb":
        # a record of the earlier version cannot say no run stopped since: it holds no more
        with duckdb.connect(str(warehouse)) as connection:
            connection.execute("alter table landing.built_vars drop column inputs_key")
            connection.execute("alter table landing.built_vars drop column unfinished")
        assert record.read() is None and not record.unfinished()


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_a_pending_rebuild_is_read_until_it_is_marked_done(engine: str, tmp_path: Path) -> None:
    """The record prepare writes beside the warehouse's tables (a table of the DuckDB file, a file
    of the Spark folder), as the DuckDB hook (macros/refresh_state.sql) and the Spark launcher
    mark it done; an unreadable record counts as pending (a rebuild too many, never too few)."""
    warehouse = tmp_path / ("w.duckdb" if engine == "duckdb" else "spark")
    record = PendingRefresh(engine, warehouse)
    if engine == "spark":
        warehouse.mkdir()
    assert record.read() is None
    record.write(None)  # nothing pending: nothing to record
    assert record.read() is None
    if engine == "duckdb":
        assert not warehouse.exists()
    record.write(["the raw file is another", "a daily file is gone"])
    assert record.read() == ("the raw file is another", "a daily file is gone")
    record.write(None)
    assert record.read() is None
    record.write(["x"])
    unreadable = ("an unreadable record of an earlier rebuild",)
    if engine == "duckdb":
        with duckdb.connect(str(warehouse)) as connection:
            connection.execute("drop table landing.refresh_pending")  # as the hook marks it done
        assert record.read() is None
        with duckdb.connect(str(warehouse)) as connection:
            connection.execute(
                "create table landing.refresh_pending as"
                " select true as pending, '{not json' as reasons_json"
            )
        assert record.read() == unreadable
    else:
        (warehouse / REFRESH_PENDING_NAME).write_text("{not json")
        assert record.read() == unreadable


def test_a_pending_rebuild_recorded_in_the_landing_folder_moves_into_the_warehouse(
    tmp_path: Path,
) -> None:
    """Earlier versions kept the record as a file of the landing folder: a rebuild it says is
    pending is not lost when the warehouse takes over the record."""
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    landing.mkdir()
    duckdb.connect(str(warehouse)).close()
    legacy = landing / REFRESH_PENDING_NAME
    legacy.write_text(json.dumps({"pending": True, "reasons": ["the raw file is another"]}))
    record = PendingRefresh("duckdb", warehouse)
    preflight._move_legacy_pending_record(landing, record, built=True)
    assert record.read() == ("the raw file is another",) and not legacy.exists()
    record.write(None)
    legacy.write_text('{"pending":false}\n')  # as the old hook wrote it when done
    preflight._move_legacy_pending_record(landing, record, built=True)
    assert record.read() is None and not legacy.exists()


def test_the_inputs_key_changes_with_any_input_file_or_seed(tmp_path: Path) -> None:
    """What the record of the last whole build keys besides the vars: every input file (path and
    bytes) and the project's seeds (a seed edited since would mix with tables built from it)."""
    from types import SimpleNamespace

    from retail_segments.ops.preflight import inputs_key

    root = tmp_path / "project"
    (root / "seeds").mkdir(parents=True)
    seed = root / "seeds" / "segment_archetypes.csv"
    seed.write_text("name,recency\nloyal,30\n")
    raw = SimpleNamespace(path=Path("/exports/raw.csv.zst"), sha256="a" * 64)
    day = SimpleNamespace(path=Path("/exports/incoming/2011-12-10.csv"), sha256="b" * 64)
    key = inputs_key(raw, [], root)
    assert key == inputs_key(raw, [], root)
    others = [
        inputs_key(raw, [day], root),
        inputs_key(SimpleNamespace(path=raw.path, sha256="c" * 64), [], root),
        inputs_key(SimpleNamespace(path=Path("/other/raw.csv.zst"), sha256="a" * 64), [], root),
    ]
    seed.write_text("name,recency\nloyal,31\n")
    others.append(inputs_key(raw, [], root))
    assert len({key, *others}) == 5


def _odd(root: Path) -> Path:
    """A directory whose path has an apostrophe, spaces and non-ASCII letters."""
    path = root / "O'Brien's exports" / "entrepôt données"
    path.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def file_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another export (another seed), under a path that needs quoting in SQL."""
    lines = generate_raw_lines(n_customers=140, seed=8)
    return write_raw_file(lines, _odd(tmp_path_factory.mktemp("b")) / "newer export.csv.zst")


def test_another_raw_file_rebuilds_from_scratch_and_equals_a_fresh_build(
    synthetic_build: Workspace, file_b: Path, tmp_path: Path
) -> None:
    """Build on file A (the session's build), then on file B in the same warehouse, first killed
    half-way through its rebuild: the next build says in one line that it rebuilds (the last
    rebuild did not finish), and every table, and the published marts, equal a fresh build of B
    (built under a warehouse path with an apostrophe and non-ASCII letters)."""
    switched = copy_workspace(synthetic_build, tmp_path / "switched")
    # the first rebuild is killed once the cleaning chain's first table holds B (the identity
    # check reads it) and the later ones still hold A: the next build must rebuild again
    kill_build_once_started(switched, file_b, "marts.fct_sales_lines")
    pending = PendingRefresh("duckdb", switched.warehouse)
    assert pending.read() is not None
    # the record lives in the warehouse: a build with another landing folder still sees it
    env = {"RETAIL_SERVING_DIR": str(tmp_path / "s1"), "RETAIL_LANDING_DIR": str(tmp_path / "l2")}
    result = run_cli(switched, file_b, "build", env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    changed = [line for line in result.stdout.splitlines() if line.startswith("Input changed:")]
    assert len(changed) == 1 and changed[0].startswith(
        "Input changed: the last rebuild from scratch (the raw file is not the one the warehouse"
        " was built from"
    )
    assert "did not finish" in changed[0]
    assert changed[0].endswith("rebuilding from scratch (dbt build --full-refresh).")
    assert pending.read() is None
    assert "segment history and the model registry start afresh" in result.stdout

    fresh = Workspace(_odd(tmp_path / "fresh"))
    serving = _odd(tmp_path / "serving")
    result = run_cli(fresh, file_b, "build", env={"RETAIL_SERVING_DIR": str(serving)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Input changed" not in result.stdout

    rebuilt = table_checksums(switched, NOT_REPRODUCIBLE, DIGITS)
    built = table_checksums(fresh, NOT_REPRODUCIBLE, DIGITS)
    # the publication log outlives a rebuild (A's classifier stays logged beside B's)
    rebuilt.pop("ml.model_publications")
    built.pop("ml.model_publications")
    assert rebuilt == built
    log = "select model_version from ml.model_publications order by all"
    assert set(fresh.query(log)) < set(switched.query(log))
    published = []
    for number, path in enumerate([tmp_path / "s1", serving]):
        copy = Workspace(tmp_path / f"published_{number}")
        copy.root.mkdir()
        shutil.copyfile(path / "retail_segments_serving.duckdb", copy.warehouse)
        published.append(table_checksums(copy, significant_digits=DIGITS))
    marts = [{k: v for k, v in checks.items() if k.startswith("marts.")} for checks in published]
    assert marts[0] == marts[1] and len(marts[0]) > 10

    again = run_cli(switched, file_b, "prepare")
    assert again.returncode == 0 and "Input changed" not in again.stdout


def test_plain_dbt_refuses_what_was_not_prepared(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    """A user running dbt by hand after `prepare`: changed bytes and other vars are refused, and
    so is a run that needs --full-refresh without it; each before any relation is replaced."""
    workspace = copy_workspace(synthetic_build, tmp_path / "by_hand")
    raw = tmp_path / "exports" / "raw.csv.zst"
    raw.parent.mkdir()
    shutil.copyfile(synthetic_raw, raw)
    prepared = run_cli(workspace, raw, "prepare")
    assert prepared.returncode == 0, prepared.stderr
    assert "Next: dbt build --full-refresh" in prepared.stdout  # another path than the build's
    # every var as the build will use it, so a value read otherwise than meant shows
    assert (
        "Vars: rfm_as_of 2011-12-10, top_products_n 50, new_customer_cutoff 2011-10-01,"
        " new_customer_max_orders 3, history_churn_days 180, retraining_max_changed_share 0.2,"
        " clv_calibration_end 2011-09-09, clv_monthly_discount_rate 0.01\n"
    ) in prepared.stdout
    # a prepare alone starts no rebuild: the dbt run that starts one records it as pending
    assert PendingRefresh("duckdb", workspace.warehouse).read() is None
    marts = table_checksums(workspace, schema="marts")
    env = {
        **os.environ,
        "RETAIL_RAW_PATH": str(raw),
        "RETAIL_DUCKDB_PATH": str(workspace.warehouse),
    }
    dirs = ["--target-path", str(workspace.root / "target"), "--log-path", str(workspace.root)]

    text = _raw_text(raw)
    raw.write_bytes(
        zstandard.compress(text.replace("United Kingdom", "United Kingdon", 1).encode())
    )
    # RETAIL_RAW_PATH written otherwise than prepare resolved it (relative to dbt's folder) names
    # the prepared file only if it holds its bytes: one that merely ends like the prepared path
    # (here: nothing there) does not; the same file given relatively does (the next run)
    tail = {**env, "RETAIL_RAW_PATH": "exports/raw.csv.zst"}
    refused = run_dbt(
        ["build", "--vars", "{top_products_n: 10}", "--empty", *dirs], tail, capture=True
    )
    assert refused.returncode != 0
    assert f"RETAIL_RAW_PATH is exports/raw.csv.zst but the prepared raw file is {raw}" in (
        refused.stdout
    )
    assert f"the raw file {raw} changed since it was prepared" in refused.stdout
    assert "var top_products_n is 10 but was checked as 50" in refused.stdout
    assert "dbt's --empty or --sample builds the models on part of the input" in refused.stdout
    assert "python -m retail_segments prepare" in refused.stdout

    shutil.copyfile(synthetic_raw, raw)
    relative = {**env, "RETAIL_RAW_PATH": os.path.relpath(raw, PROJECT_ROOT)}
    refused = run_dbt(["build", *dirs], relative, capture=True)
    assert refused.returncode != 0
    assert "RETAIL_RAW_PATH" not in refused.stdout, refused.stdout[-3000:]
    assert "The warehouse was built from other input" in refused.stdout
    assert "dbt build --full-refresh" in refused.stdout
    assert table_checksums(workspace, schema="marts") == marts

    # Without RETAIL_RAW_PATH, dbt takes the raw file where prepare looks by default (data/raw/,
    # then ../shared/data/): the first of those places that exists must be the prepared file.
    stamp_path = workspace.root / "landing" / "current" / "prepared.json"
    stamp = json.loads(stamp_path.read_text())
    assert stamp["default_raw_paths"] == [
        str(path.resolve()) for _label, path in raw_path_candidates(PROJECT_ROOT, {})
    ]
    unset = {key: value for key, value in env.items() if key != "RETAIL_RAW_PATH"}
    # the stamp's default places pointed at scratch files: the first is missing, the second is raw
    stamp["default_raw_paths"] = [str(tmp_path / "nowhere.csv.zst"), str(raw)]
    stamp_path.write_text(json.dumps(stamp))
    refused = run_dbt(["build", *dirs], unset, capture=True)
    assert "RETAIL_RAW_PATH" not in refused.stdout, refused.stdout[-3000:]
    assert "The warehouse was built from other input" in refused.stdout  # the only problem left
    # another file now sits in the first default place: it is what an unset path means; and a
    # fit's meta block is not what prepare checked (as if its yml was edited after prepare)
    stamp["default_raw_paths"] = [str(synthetic_raw), str(raw)]
    (pca,) = [entry for entry in stamp["meta"] if entry["model"] == "ml_segmentation_pca_fit"]
    assert pca["json"] == '{"pca": {}, "sampling": {}}'
    pca["json"] = '{"pca": {"n_clusters": 9}, "sampling": {}}'
    stamp_path.write_text(json.dumps(stamp))
    refused = run_dbt(["build", *dirs], unset, capture=True)
    assert refused.returncode != 0
    assert (
        f"RETAIL_RAW_PATH is not set, so this run's raw file is {synthetic_raw} (the first"
        f" default place that exists), but the prepared raw file is {raw}"
    ) in refused.stdout
    assert (
        'the meta block of ml_segmentation_pca_fit is {"pca": {}, "sampling": {}} but was checked'
        ' as {"pca": {"n_clusters": 9}, "sampling": {}}'
    ) in refused.stdout
    assert table_checksums(workspace, schema="marts") == marts


def test_a_recursive_pattern_finds_the_same_daily_files_in_prepare_and_in_dbt(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    """RETAIL_INCOMING_GLOB with ** finds daily files in subfolders, in prepare (Python's glob) as
    in the dbt hook (DuckDB's glob), and neither takes a hidden folder's files (.trash): a run
    by hand after prepare is not refused for a file that 'arrived after the inputs were
    prepared' (before, prepare's glob was not recursive and the hook's was)."""
    workspace = copy_workspace(synthetic_build, tmp_path / "nested")
    feed = tmp_path / "feed"
    header = _raw_text(synthetic_raw).splitlines()[0] + "\n"
    day = feed / "a" / "b" / "2011-12-10.csv"  # a day without sales: its header only
    trashed = feed / ".trash" / "2011-12-11.csv"
    for path in (day, trashed):
        path.parent.mkdir(parents=True)
        path.write_text(header)
    env = {"RETAIL_INCOMING_GLOB": str(feed / "**" / "*.csv")}
    assert preflight.incoming_files(PROJECT_ROOT, env).files == [day]
    result = workspace.dbt(synthetic_raw, "run", "--select", "metricflow_time_spine", env=env)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "arrived after the inputs were prepared" not in result.stdout
