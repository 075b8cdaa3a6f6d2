"""Segment history on the synthetic file: the backfill command, what it adds and leaves alone,
idempotence, bad input, a build killed mid-run, and the record of retraining stability.

Each test works on a copy of the session's clean build (``synthetic_build``), so nothing here
changes the shared fixture."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dbt_helpers import (
    PROJECT_ROOT,
    CliInProcess,
    Workspace,
    assert_built,
    copy_workspace,
    kill_build_once_started,
    run_cli,
    table_checksums,
)
from scipy.optimize import linear_sum_assignment

from retail_segments.ml.artifacts import build_model_registry_row, load_model
from retail_segments.ml.classifier import train_segment_classifier
from retail_segments.ml.embedding import rfm_features
from retail_segments.ml.naming import base_name, load_archetypes
from retail_segments.ml.segmentation import run_tsne_stage
from retail_segments.ops.backfill import HISTORY_MODEL, dropped_history_note, history_dates
from retail_segments.ops.preflight import UNFINISHED_RUN, BuiltVars
from retail_segments_dev import reference

pytestmark = pytest.mark.dbt

BUILD_AS_OF = pd.Timestamp("2011-12-10")
# three months: each prepares a set of inputs of its own, and after the third the set the
# backfill was checked with is pruned (the publish still records it)
BACKFILL = ("--start", "2011-09", "--end", "2011-11")
BACKFILLED_AS_OF = [pd.Timestamp(f"2011-{month}-01") for month in (10, 11, 12)]
CHURN_DAYS = 180
HISTORY_MODEL_RELATION = f"intermediate.{HISTORY_MODEL}"
HISTORY_RELATIONS = {
    "intermediate.int_customer_rfm__history",
    "intermediate.int_customer_segment_transitions",
    "ml.ml_customer_segment_history_scores",
    "marts.customer_segment_history",
    "marts.segment_migration",
    "marts.customer_segment_last_change",
}
# Not reproducible between builds by nature: skops archives are not byte-identical (the registry
# version hashes their arrays instead) and fit times are wall-clock seconds (training_seconds, and
# fit_seconds inside the fit's candidates: ml.classifier_metrics compares them without it).
NOT_REPRODUCIBLE = {"ml.ml_segment_classifier_fit": ("artifact", "candidates", "training_seconds")}
# Tables that are computed again are compared with doubles rounded to this many significant digits:
# DuckDB adds doubles up in parallel in no fixed order, so a float sum's last bits may vary.
DIGITS = 12


@pytest.fixture(scope="module")
def synthetic_lines(synthetic_raw: Path) -> pd.DataFrame:
    return reference.read_raw(synthetic_raw)


@pytest.fixture(scope="module")
def expected_clean(synthetic_lines: pd.DataFrame) -> pd.DataFrame:
    return reference.clean(synthetic_lines)


@pytest.fixture(scope="module")
def canceled(synthetic_lines: pd.DataFrame) -> pd.Series:
    return reference.canceled_at(synthetic_lines)


@pytest.fixture(scope="module")
def backfilled(
    tmp_path_factory: pytest.TempPathFactory, synthetic_build: Workspace, synthetic_raw: Path
) -> Workspace:
    """A copy of the clean build with three month ends backfilled through the command line."""
    workspace = copy_workspace(synthetic_build, tmp_path_factory.mktemp("backfilled"))
    assert_built(run_cli(workspace, synthetic_raw, "backfill", *BACKFILL))
    return workspace


def test_the_backfill_publishes_with_the_vars_of_the_build(backfilled: Workspace) -> None:
    """A backfill that succeeded publishes the warehouse, recording the vars of the build whose
    marts it keeps (the months' own rfm_as_of are not the serving copy's)."""
    serving = backfilled.root / "serving" / "retail_segments_serving.duckdb"
    with duckdb.connect(str(serving), read_only=True) as connection:
        [(vars_json,)] = connection.execute("select vars_json from serving.build_info").fetchall()
    built = BuiltVars("duckdb", backfilled.warehouse).read()
    assert built is not None
    assert json.loads(vars_json) == built
    assert pd.Timestamp(built["rfm_as_of"]) == BUILD_AS_OF


def _history(workspace: Workspace) -> pd.DataFrame:
    return workspace.frame("select * from marts.customer_segment_history order by all")


def test_backfill_adds_the_rfm_of_each_month_end(
    backfilled: Workspace, expected_clean: pd.DataFrame, canceled: pd.Series
) -> None:
    """Each month end's RFM is the reference's as known then: a line returned after the month
    end counts at its gross value there (the fixture has such lines in both backfilled months)."""
    history = _history(backfilled)
    assert sorted(history.rfm_as_of.unique()) == [*BACKFILLED_AS_OF, BUILD_AS_OF]
    for as_of in BACKFILLED_AS_OF:
        known = reference.rfm(expected_clean, as_of=as_of, canceled=canceled)
        hindsight = reference.rfm(expected_clean, as_of=as_of)
        assert (known.monetary.to_numpy() > hindsight.monetary.to_numpy() + 1e-9).any()
    for as_of in [*BACKFILLED_AS_OF, BUILD_AS_OF]:
        actual = history.loc[history.rfm_as_of == as_of].sort_values("customer_id")
        expected = reference.rfm(expected_clean, as_of=as_of, canceled=canceled).sort_values(
            "customer_id"
        )
        assert actual.customer_id.tolist() == expected.customer_id.astype(int).tolist()
        for column in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
            assert actual[column].tolist() == expected[column].astype(int).tolist(), column
        assert actual.is_outlier.tolist() == expected.is_outlier.astype(bool).tolist()
        np.testing.assert_allclose(actual.monetary, expected.monetary, rtol=1e-9)


def test_every_month_is_scored_by_the_current_classifier(backfilled: Workspace) -> None:
    version, blob = backfilled.query(
        "select model_version, artifact from ml.model_registry"
        " where model_version = (select any_value(model_version) from marts.customer_segments)"
    )[0]
    history = _history(backfilled)
    assert set(history.model_version) == {version}
    predicted = load_model(blob).predict(rfm_features(history))
    assert predicted.tolist() == history.segment_name.tolist()
    # every month's row also carries the customer's segment now, as customer_segments has it
    now = dict(backfilled.query("select customer_id, segment_name from marts.customer_segments"))
    assert history.current_segment_name.tolist() == history.customer_id.map(now).tolist()


def test_backfill_leaves_the_current_marts_and_the_registry_alone(
    backfilled: Workspace, synthetic_build: Workspace
) -> None:
    after = table_checksums(backfilled)
    before = table_checksums(synthetic_build)
    changed = {name for name in before if before[name] != after[name]}
    assert changed <= HISTORY_RELATIONS
    assert before.keys() == after.keys()
    assert backfilled.query("select distinct rfm_as_of from marts.customer_rfm") == [
        (BUILD_AS_OF.to_pydatetime(),)
    ]


def _states(history: pd.DataFrame) -> pd.DataFrame:
    churned = history.recency_days >= CHURN_DAYS
    return history.assign(state=history.segment_name.where(~churned, "churned"))


def test_migration_counts_every_move_between_consecutive_dates(backfilled: Workspace) -> None:
    states = _states(_history(backfilled))
    dates = sorted(states.rfm_as_of.unique())
    expected = []
    for earlier, later in pairwise(dates):
        moves = states.loc[states.rfm_as_of == earlier, ["customer_id", "state"]].merge(
            states.loc[states.rfm_as_of == later, ["customer_id", "state", "monetary"]],
            on="customer_id",
            how="right",
            suffixes=("_from", "_to"),
        )
        moves["state_from"] = moves.state_from.fillna("new")
        counts = moves.groupby(["state_from", "state_to"]).agg(
            n_customers=("customer_id", "size"), monetary=("monetary", "sum")
        )
        expected.append(counts.reset_index().assign(to_as_of=later))
    expected_frame = pd.concat(expected).sort_values(["to_as_of", "state_from", "state_to"])
    actual = backfilled.frame(
        "select to_as_of, from_segment, to_segment, n_customers, monetary"
        " from marts.segment_migration order by to_as_of, from_segment, to_segment"
    )
    assert actual.to_as_of.tolist() == expected_frame.to_as_of.tolist()
    assert actual.from_segment.tolist() == expected_frame.state_from.tolist()
    assert actual.to_segment.tolist() == expected_frame.state_to.tolist()
    assert actual.n_customers.tolist() == expected_frame.n_customers.tolist()
    np.testing.assert_allclose(actual.monetary, expected_frame.monetary, rtol=1e-9)
    assert {"new", "churned"} <= set(actual.from_segment)


def test_last_change_is_the_latest_date_the_state_changed(backfilled: Workspace) -> None:
    states = _states(_history(backfilled))
    wide = states.pivot(index="customer_id", columns="rfm_as_of", values="state")
    dates = list(wide.columns)
    expected = {}
    for customer, row in wide.iterrows():
        before = row.shift(1).fillna("new")
        changed = [d for d in dates[1:] if pd.notna(row[d]) and row[d] != before[d]]
        expected[customer] = changed[-1] if changed else pd.NaT
    actual = backfilled.frame(
        "select customer_id, last_changed_at from marts.customer_segment_last_change"
        " order by customer_id"
    )
    expected_series = pd.Series(expected).sort_index()
    assert actual.customer_id.tolist() == expected_series.index.tolist()
    assert actual.last_changed_at.isna().tolist() == expected_series.isna().tolist()
    known = actual.last_changed_at.notna().to_numpy()
    assert actual.last_changed_at[known].tolist() == expected_series[known].tolist()
    assert known.any() and not known.all()


def test_running_the_backfill_twice_changes_nothing(
    backfilled: Workspace, synthetic_raw: Path
) -> None:
    """Also: every run computes every stored as-of date again from the current lines, not only
    its own. Before the second backfill the build's date (which the backfill does not select)
    is made stale, as rows computed before a late line arrived would be: one customer missing,
    another's revenue wrong. The backfill's runs compute it again, so the history and the marts
    over it are again those of the first backfill."""
    before = table_checksums(backfilled, significant_digits=DIGITS)
    stale_date = BUILD_AS_OF.to_pydatetime()
    with duckdb.connect(str(backfilled.warehouse)) as connection:
        first, second = connection.execute(
            f"select customer_id from {HISTORY_MODEL_RELATION} where rfm_as_of = ?"
            " order by customer_id limit 2",
            [stale_date],
        ).fetchall()
        connection.execute(
            f"delete from {HISTORY_MODEL_RELATION} where rfm_as_of = ? and customer_id = ?",
            [stale_date, first[0]],
        )
        connection.execute(
            f"update {HISTORY_MODEL_RELATION} set monetary = monetary + 1"
            " where rfm_as_of = ? and customer_id = ?",
            [stale_date, second[0]],
        )
    assert table_checksums(backfilled, significant_digits=DIGITS) != before
    assert_built(run_cli(backfilled, synthetic_raw, "backfill", *BACKFILL))
    assert table_checksums(backfilled, significant_digits=DIGITS) == before


def test_a_rebuild_from_scratch_says_which_history_dates_it_dropped(
    backfilled: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    """dbt's --full-refresh rebuilds the history with the build's own date only: the build says
    which backfilled dates are gone and how to add them again, instead of dropping them silently."""
    workspace = copy_workspace(backfilled, tmp_path / "refreshed")
    result = run_cli(workspace, synthetic_raw, "build", "--select", HISTORY_MODEL, "--full-refresh")
    assert_built(result)
    assert history_dates(workspace.warehouse) == [BUILD_AS_OF.to_pydatetime()]
    assert (
        "Note: the segment history no longer holds 3 as-of date(s) it held before (2011-10-01,"
        " 2011-11-01, 2011-12-01): a rebuild from scratch (--full-refresh) keeps only this"
        " build's. `make backfill START=2011-09 END=2011-11` adds the month ends again."
    ) in result.stdout


def test_a_failed_rebuild_from_scratch_also_says_which_history_dates_it_dropped(
    backfilled: Workspace,
    synthetic_raw: Path,
    tmp_path: Path,
    cli_in_process: CliInProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rebuild from scratch that fails after the history model ran has dropped the dates all
    the same: the note is printed beside the failure, not only after a build that succeeded.
    dbt stands in here (what it leaves is what the test above shows a real rebuild leaves): the
    history keeps only the build's date, then a later node fails."""
    from retail_segments.ops import cli

    workspace = copy_workspace(backfilled, tmp_path / "refreshed")

    def history_rebuilt_then_failed(
        args: list[str], env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        assert "--full-refresh" in args
        with duckdb.connect(str(workspace.warehouse)) as connection:
            connection.execute(
                f"delete from {HISTORY_MODEL_RELATION} where rfm_as_of <> ?",
                [BUILD_AS_OF.to_pydatetime()],
            )
        return subprocess.CompletedProcess(args, 1)

    monkeypatch.setattr(cli, "run_dbt", history_rebuilt_then_failed)
    result = cli_in_process(
        workspace, synthetic_raw, "build", "--select", HISTORY_MODEL, "--full-refresh"
    )
    assert result.returncode == 1
    assert "Note: the segment history no longer holds 3 as-of date(s)" in result.stdout
    assert "dbt build did not succeed: nothing was published" in result.stderr


def test_the_dropped_history_note_names_dates_and_months() -> None:
    day = datetime(2011, 6, 15)
    months = [datetime(2011, month, 1) for month in range(2, 12)]
    assert dropped_history_note(months, months) is None
    assert dropped_history_note([], [day]) is None
    note = dropped_history_note([*months, day], [day])
    assert note is not None and "holds 10 as-of date(s)" in note
    assert (
        "(2011-02-01, 2011-03-01, 2011-04-01, 2011-05-01, 2011-06-01, 2011-07-01 and 4 more)"
        in note
    )
    assert "`make backfill START=2011-01 END=2011-10`" in note
    only_a_day = dropped_history_note([day, datetime(2011, 12, 10)], [datetime(2011, 12, 10)])
    assert (
        only_a_day is not None
        and "(2011-06-15)" in only_a_day
        and "make backfill" not in only_a_day
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2011-13"], "--start '2011-13' is not a month: expected YYYY-MM"),
        (["--end", "Nov 2011"], "--end 'Nov 2011' is not a month"),
        (["--start", "2010-11"], "--start 2010-11 ends (2010-12-01 00:00) before the data starts"),
        (["--end", "2011-12"], "--end 2011-12 ends (2012-01-01 00:00) after the data ends"),
        (["--start", "2011-11", "--end", "2011-10"], "--start 2011-11 is after --end 2011-10"),
    ],
)
def test_bad_backfill_input_is_refused_and_writes_nothing(
    args: list[str],
    message: str,
    backfilled: Workspace,
    synthetic_raw: Path,
    cli_in_process: CliInProcess,
) -> None:
    before = table_checksums(backfilled)
    result = cli_in_process(backfilled, synthetic_raw, "backfill", *args)
    assert result.returncode == 2
    error = result.stderr
    assert message in error and "Nothing was backfilled." in error, error
    assert table_checksums(backfilled) == before


@pytest.mark.parametrize("variable", ["DBT_FULL_REFRESH", "DBT_ENGINE_FULL_REFRESH"])
def test_a_backfill_under_a_full_refresh_setting_is_refused(
    variable: str, backfilled: Workspace, synthetic_raw: Path, cli_in_process: CliInProcess
) -> None:
    """Each month's build would rebuild the history from scratch, keeping only its own date."""
    before = table_checksums(backfilled)
    result = cli_in_process(
        backfilled, synthetic_raw, "backfill", "--start", "2011-10", env={variable: "true"}
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert f"dbt's full_refresh setting ({variable}='true') is on" in result.stderr, result.stderr
    assert "nothing was backfilled" in result.stderr and "Fix: unset the variable" in result.stderr
    assert table_checksums(backfilled) == before


def test_backfill_before_any_build_says_to_build_first(
    tmp_path: Path,
    synthetic_raw: Path,
    cli_in_process: CliInProcess,
) -> None:
    never_built = Workspace(tmp_path / "never_built")
    result = cli_in_process(never_built, synthetic_raw, "backfill")
    assert result.returncode == 2
    assert "run `make build` first" in result.stderr
    assert not never_built.warehouse.exists()


def test_backfill_after_a_failed_build_says_to_build_first(
    tmp_path: Path,
    synthetic_build: Workspace,
    synthetic_raw: Path,
    cli_in_process: CliInProcess,
) -> None:
    """A build that failed after training its classifier left it unpublished and its marts
    possibly half-replaced: the backfill would score the history with that model and publish the
    serving copy, so it refuses and writes nothing."""
    workspace = copy_workspace(synthetic_build, tmp_path / "failed_build")
    with duckdb.connect(str(workspace.warehouse)) as connection:
        connection.execute("delete from ml.model_publications")
    before = table_checksums(workspace)
    result = cli_in_process(
        workspace, synthetic_raw, "backfill", "--start", "2011-10", "--end", "2011-10"
    )
    assert result.returncode == 2
    error = result.stderr
    assert "the last build of" in error and "did not succeed" in error, error
    assert "run `make build` first" in error and "Nothing was backfilled." in error
    assert table_checksums(workspace) == before


def test_a_killed_build_leaves_a_usable_warehouse_equal_to_a_clean_build(
    tmp_path: Path, synthetic_build: Workspace, synthetic_raw: Path, cli_in_process: CliInProcess
) -> None:
    """Kill ``dbt build`` (SIGKILL) over a built warehouse while it rewrites the incremental RFM
    history, build again, and compare every table with the session's clean build: the second full
    build on the same input gives identical tables, nothing half-written survives. Until then the
    warehouse records the unfinished run: a selected build or a backfill (which would publish its
    half-built tables) is refused."""
    workspace = copy_workspace(synthetic_build, tmp_path / "killed")
    record = BuiltVars("duckdb", workspace.warehouse)
    assert not record.unfinished() and record.read() is not None
    kill_build_once_started(workspace, synthetic_raw, "intermediate.int_customer_rfm__history")
    assert record.unfinished() and record.read() is None
    serving = {"RETAIL_SERVING_DIR": str(tmp_path / "serving")}
    for command in (["build", "-s", "customer_rfm"], ["backfill", "--start", "2011-10"]):
        refused = cli_in_process(workspace, synthetic_raw, *command, env=serving)
        assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
        assert UNFINISHED_RUN in refused.stderr and "Traceback" not in refused.stderr
    assert not (tmp_path / "serving").exists()
    assert_built(workspace.build(synthetic_raw))
    assert not record.unfinished() and record.read() is not None
    rebuilt = table_checksums(workspace, NOT_REPRODUCIBLE, DIGITS)
    clean = table_checksums(synthetic_build, NOT_REPRODUCIBLE, DIGITS)
    # the registry as each build found it: empty for the session's first build, this data's own
    # model for the rebuild (same data window, so not a previous one: it names nothing, and the
    # names are compared in every other table)
    assert clean.pop("ml.previous_model_registry")[0] == 0
    assert rebuilt.pop("ml.previous_model_registry")[0] == 1
    assert rebuilt == clean
    leftovers = workspace.query(
        "select table_name from information_schema.tables"
        " where table_name like '%__dbt_tmp%' or table_name like '%__dbt_backup%'"
    )
    assert leftovers == []


def test_a_build_that_fails_after_registering_its_classifier_does_not_publish_it(
    tmp_path: Path, synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    """The registry records a classifier as soon as it is trained. When a node after it then fails,
    the on-run-end hook does not publish the classifier, so ml.previous_model_registry (what later
    builds inherit names from) leaves it out. A dbt run (no tests) does not publish it either;
    published, the view lists it."""
    workspace = copy_workspace(synthetic_build, tmp_path / "failed")
    version = workspace.query("select model_version from ml.ml_segment_classifier_fit")[0][0]
    with duckdb.connect(str(workspace.warehouse)) as connection:
        # as if this data's classifier were new: neither registered nor published yet
        connection.execute("delete from ml.model_registry where model_version = ?", [version])
        connection.execute("delete from ml.model_publications where model_version = ?", [version])
        # the history scoring after the registry step fails: the history it scores is gone
        connection.execute("drop table intermediate.int_customer_rfm__history")
    result = workspace.build(
        synthetic_raw,
        "--select",
        "previous_model_registry ml_segment_classifier_fit model_registry"
        " ml_customer_segment_history_scores",
    )
    assert result.returncode == 1, result.stdout[-3000:]
    assert "the classifier it trained is not published" in result.stdout
    assert workspace.query("select model_version from ml.model_registry") == [(version,)]
    assert workspace.query("select count(*) from ml.model_publications") == [(0,)]
    assert workspace.query("select model_version from ml.previous_model_registry") == []
    # dbt run tests nothing, so it publishes nothing either (a dbt build that succeeds publishes:
    # test_retraining_one_month_later_keeps_names_and_is_recorded)
    ran = workspace.dbt(
        synthetic_raw, "run", "--select", "ml_segment_classifier_fit model_registry"
    )
    assert_built(ran)
    assert "dbt run tests nothing" in ran.stdout
    assert workspace.query("select count(*) from ml.model_publications") == [(0,)]
    # published, the view lists it
    with duckdb.connect(str(workspace.warehouse)) as connection:
        connection.execute(
            "insert into ml.model_publications"
            " values (?, 'build_succeeded', 'x', timestamp '2012-01-01')",
            [version],
        )
    assert workspace.query("select model_version from ml.previous_model_registry") == [(version,)]


def test_a_registry_older_than_the_publication_log_counts_as_published(
    tmp_path: Path, synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    """A warehouse built before ml.model_publications existed has a registry and no log: the
    build that creates the log records the registry's versions as registered_before_tracking (they
    were previous models before). (--full-refresh keeping the log: the retraining test.)"""
    workspace = copy_workspace(synthetic_build, tmp_path / "older")
    versions = workspace.query("select model_version from ml.model_registry")
    with duckdb.connect(str(workspace.warehouse)) as connection:
        connection.execute("drop table ml.model_publications")
    assert_built(
        workspace.build(synthetic_raw, "--select", "model_publications previous_model_registry")
    )
    assert workspace.query("select model_version, publication_kind from ml.model_publications") == [
        (version, "registered_before_tracking") for (version,) in versions
    ]
    assert workspace.query("select model_version from ml.previous_model_registry") == versions


def _classifier_row(clean: pd.DataFrame, as_of: pd.Timestamp, canceled: pd.Series) -> pd.DataFrame:
    """The registry row the dbt build would register at ``as_of`` (same functions, defaults)."""
    rfm = reference.rfm(clean, as_of=as_of, canceled=canceled).assign(rfm_as_of=as_of)
    archetypes = load_archetypes(PROJECT_ROOT / "seeds" / "segment_archetypes.csv")
    segments = run_tsne_stage(rfm, archetypes).customers
    result = train_segment_classifier(
        rfm, segments, {"n_jobs": 1}, segment_column="tsne_segment_name"
    )
    return build_model_registry_row(
        result.estimator,
        model_name="segment_classifier",
        metrics={"model": result.model_name},
        training_seconds=result.fit_seconds,
        n_training_rows=result.n_training_rows,
        data_window_start=clean.invoice_at.min(),
        data_window_end=as_of,
        created_at=as_of,
    )


def test_retraining_one_month_later_keeps_names_and_is_recorded(
    tmp_path: Path,
    synthetic_build: Workspace,
    synthetic_raw: Path,
    expected_clean: pd.DataFrame,
    canceled: pd.Series,
) -> None:
    """Register the model of one month earlier (trained on data before 2011-11-10) and retrain.

    - The new t-SNE clusters inherit the names that model predicts for most of their
      customers (checked from the artifact, independently of the naming code's Hungarian step:
      a cluster holding a strict majority of one old name that no other cluster holds a majority
      of must carry it).
    - The build records retraining stability against it; the record equals our own measurement
      (both registry artifacts scoring customer_rfm as of 2011-12-10)."""
    workspace = copy_workspace(synthetic_build, tmp_path / "retrain")
    previous = _classifier_row(expected_clean, BUILD_AS_OF - pd.DateOffset(months=1), canceled)
    previous_version = previous.model_version.iloc[0]
    # the same model registered again by a build that failed two weeks later: a later window, so
    # it would be the previous model if a failed build's model counted (it is not published)
    failed = previous.assign(
        model_version="failed-" + previous_version,
        data_window_end=BUILD_AS_OF - pd.DateOffset(weeks=2),
    )
    with duckdb.connect(str(workspace.warehouse)) as connection:
        connection.register("previous", pd.concat([previous, failed]))
        connection.execute("insert into ml.model_registry by name select * from previous")
        # published: the earlier model; not: the failed one and the shared build's own (so this
        # build's hook must log its model whether or not the retrain changed it)
        connection.execute("delete from ml.model_publications")
        connection.execute(
            "insert into ml.model_publications select ?, 'build_succeeded', 'earlier build',"
            " timestamp '2011-11-10 06:00'",
            [previous_version],
        )
    result = workspace.build(
        synthetic_raw, "--select", "previous_model_registry ml_segmentation_tsne_fit+"
    )
    assert_built(result)
    assert workspace.query(
        "select model_version from ml.previous_model_registry order by data_window_end"
    )[:1] == [(previous_version,)]

    previous_model = load_model(previous.artifact.iloc[0])
    clustered = workspace.frame(
        "select e.tsne_cluster_id, r.recency_days, r.frequency, r.monetary"
        " from ml.customer_embeddings as e join marts.customer_rfm as r using (customer_id)"
        " where e.tsne_cluster_id >= 0"
    )
    clustered["previous_name"] = previous_model.predict(rfm_features(clustered))
    shares = (
        clustered.groupby("tsne_cluster_id")["previous_name"]
        .value_counts(normalize=True)
        .rename("share")
        .reset_index()
    )
    majorities = shares.loc[shares["share"] > 0.5]
    unshared = majorities.loc[~majorities["previous_name"].duplicated(keep=False)]
    profiles = workspace.frame("select * from ml.cluster_profiles where stage = 'tsne'").set_index(
        "cluster_id"
    )
    assert not unshared.empty
    # names stay descriptive: archetype names, possibly qualified ('sleeping, longer gone'),
    # never numbered, and qualified names are inherited like plain ones
    archetypes = load_archetypes(PROJECT_ROOT / "seeds" / "segment_archetypes.csv")
    tsne_names = set(archetypes.loc[archetypes["stage"] == "tsne", "segment_name"])
    assert profiles["segment_name"].is_unique
    assert not profiles["segment_name"].str.contains(r"\d").any()
    assert set(profiles["segment_name"].map(base_name)) <= tsne_names
    for cluster, name in zip(unshared.tsne_cluster_id, unshared.previous_name, strict=True):
        assert profiles.loc[cluster, "segment_name"] == name
        assert profiles.loc[cluster, "name_source"] == "previous_model"
    inherited = profiles.loc[profiles["name_source"] == "previous_model"]
    assert inherited["previous_model_version"].eq(previous_version).all()
    named_by_archetype = profiles.loc[profiles["name_source"] == "archetype"]
    assert named_by_archetype["previous_model_version"].isna().all()
    share = shares.set_index(["tsne_cluster_id", "previous_name"])["share"]
    for cluster, name in inherited["segment_name"].items():
        assert share.get((cluster, name), 0.0) >= 0.5

    recorded = workspace.frame("select * from ml.retraining_stability")
    current_version, current_blob = workspace.query(
        "select model_version, artifact from ml.model_registry"
        " where model_version = (select any_value(model_version) from marts.customer_segments)"
    )[0]
    rfm = workspace.frame("select * from marts.customer_rfm")
    features = rfm_features(rfm)
    before = previous_model.predict(features)
    after = load_model(current_blob).predict(features)
    crosstab = pd.crosstab(after, before).to_numpy()
    kept = crosstab[linear_sum_assignment(-crosstab)].sum()
    row = recorded.iloc[0]
    assert len(recorded) == 1
    assert (row.model_version, row.previous_model_version) == (current_version, previous_version)
    assert row.scored_as_of == BUILD_AS_OF
    assert (row.n_customers, row.n_changed) == (len(rfm), int((before != after).sum()))
    assert row.share_changed == pytest.approx((before != after).mean())
    assert row.n_changed_after_renaming == len(rfm) - kept
    run_results = json.loads((workspace.root / "target" / "run_results.json").read_text())
    share_test = [
        node["status"]
        for node in run_results["results"]
        if node["unique_id"].startswith(
            "test.retail_segments.expect_column_values_to_be_between_retraining_stability_share"
        )
        and "after_renaming" not in node["unique_id"]
    ]
    assert share_test == ["warn" if row.share_changed > 0.2 else "pass"], row.to_dict()
    # the build succeeded, so its hook published the classifier it trained
    published = workspace.query(
        "select publication_kind, invocation_id from ml.model_publications"
        f" where model_version = '{current_version}'"
    )
    assert published == [("build_succeeded", run_results["metadata"]["invocation_id"])]

    # the fit reads the registry as it stands (the published models: the inserted one and this
    # build's, never the failed one); a --full-refresh run rebuilds the registry, so the fit of a
    # refreshed build inherits nothing
    registered = workspace.query("select model_version from ml.model_registry")
    assert ("failed-" + previous_version,) in registered
    previous_now = workspace.query("select model_version from ml.previous_model_registry")
    assert set(previous_now) == {(previous_version,), (current_version,)}
    log = "select * from ml.model_publications order by model_version"
    logged = workspace.query(log)
    refreshed = workspace.build(
        synthetic_raw, "--select", "previous_model_registry model_publications", "--full-refresh"
    )
    assert_built(refreshed)
    assert workspace.query("select count(*) from ml.previous_model_registry")[0][0] == 0
    # the publication log keeps its rows (a refresh failing before the registry is rebuilt must
    # not unpublish the registry's models)
    assert workspace.query(log) == logged
