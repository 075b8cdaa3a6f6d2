"""`dbt build` end to end on a synthetic file, checked against an independent pandas computation
(retail_segments_dev.reference, written separately from the SQL as the study's notebook would)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dbt_helpers import SESSION_PARSE, Workspace, copy_workspace

from retail_segments_dev import reference

pytestmark = pytest.mark.dbt


@pytest.fixture(scope="module")
def expected_clean(synthetic_raw: Path) -> pd.DataFrame:
    return reference.clean(reference.read_raw(synthetic_raw))


def test_every_quirk_is_present_in_the_fixture(synthetic_build: Workspace) -> None:
    audit = synthetic_build.frame("select * from marts.cleaning_audit order by step_number")
    removed = dict(zip(audit.step_number, audit.rows_removed, strict=True))
    assert all(removed[step] > 0 for step in (1, 2, 4, 5, 6)), removed
    assert audit.loc[audit.step_number == 3, "purchase_lines_canceled"].item() > 0


def test_clean_lines_equal_the_reference(
    synthetic_build: Workspace, expected_clean: pd.DataFrame
) -> None:
    actual = synthetic_build.frame(
        "select source_row_number, invoice_no, stock_code, customer_id, quantity,"
        " quantity_canceled, unit_price, total_price, invoice_at, country"
        " from marts.fct_sales_lines order by source_row_number"
    )
    expected = expected_clean.sort_values("source_row_number").reset_index(drop=True)
    assert actual.source_row_number.tolist() == expected.source_row_number.tolist()
    assert actual.quantity_canceled.tolist() == expected.quantity_canceled.astype(int).tolist()
    assert actual.customer_id.tolist() == expected.customer_id.astype(int).tolist()
    assert actual.invoice_no.tolist() == expected.invoice_no.tolist()
    np.testing.assert_allclose(actual.total_price, expected.total_price, rtol=1e-9)
    assert (actual.invoice_at.to_numpy() == expected.invoice_at.to_numpy()).all()


def test_cleaning_audit_equals_the_reference(
    synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    actual = synthetic_build.frame(
        "select step_number, rows_in, rows_removed, rows_out from marts.cleaning_audit"
        " order by step_number"
    )
    expected = reference.cleaning_audit(reference.read_raw(synthetic_raw))
    for column in ("step_number", "rows_in", "rows_removed", "rows_out"):
        assert actual[column].tolist() == expected[column].astype(int).tolist(), column


def test_rfm_equals_the_reference(synthetic_build: Workspace, expected_clean: pd.DataFrame) -> None:
    actual = synthetic_build.frame("select * from marts.customer_rfm order by customer_id")
    expected = (
        reference.rfm(expected_clean, as_of=pd.Timestamp("2011-12-10"))
        .sort_values("customer_id")
        .reset_index(drop=True)
    )
    assert actual.customer_id.tolist() == expected.customer_id.astype(int).tolist()
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
        assert actual[column].tolist() == expected[column].astype(int).tolist(), column
    np.testing.assert_allclose(actual.monetary, expected.monetary, rtol=1e-9)
    assert actual.is_outlier.tolist() == expected.is_outlier.astype(bool).tolist()


def test_earlier_as_of_gives_the_rfm_of_that_moment(
    synthetic_build: Workspace, synthetic_raw: Path, expected_clean: pd.DataFrame, tmp_path: Path
) -> None:
    """The RFM history computes any as-of date; customer_rfm is its rows at var('rfm_as_of'). The
    later date the history keeps (the shared build's) stays out of the history marts, which
    show the dates up to customer_rfm's (they showed 2011-12-10 beside marts as of 2011-06-01)."""
    as_of = "2011-06-01"
    workspace = copy_workspace(synthetic_build, tmp_path / "earlier")
    result = workspace.dbt(
        synthetic_raw,
        "run",
        "--select",
        "int_customer_rfm__history customer_rfm ml_customer_segment_history_scores"
        " int_customer_segment_transitions customer_segment_history segment_migration"
        " customer_segment_last_change",
        "--vars",
        f"{{rfm_as_of: '{as_of}'}}",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    actual = workspace.frame("select * from marts.customer_rfm order by customer_id")
    canceled = reference.canceled_at(reference.read_raw(synthetic_raw))
    expected = reference.rfm(expected_clean, as_of=pd.Timestamp(as_of), canceled=canceled)
    expected = expected.sort_values("customer_id")
    assert actual.customer_id.tolist() == expected.customer_id.astype(int).tolist()
    assert actual.recency_days.tolist() == expected.recency_days.astype(int).tolist()
    # monetary as known at the as-of moment: returns made after it do not reduce it
    np.testing.assert_allclose(actual.monetary, expected.monetary, rtol=1e-9)
    assert (actual.last_purchase_at < pd.Timestamp(as_of)).all()
    dates = workspace.query(
        "select distinct rfm_as_of from intermediate.int_customer_rfm__history order by 1"
    )
    assert [str(date.date()) for (date,) in dates] == [as_of, "2011-12-10"]
    shown = workspace.query("select distinct rfm_as_of from marts.customer_segment_history")
    assert [str(date.date()) for (date,) in shown] == [as_of]
    assert workspace.query("select count(*) from marts.segment_migration") == [(0,)]
    latest = workspace.query("select distinct latest_as_of from marts.customer_segment_last_change")
    assert [str(date.date()) for (date,) in latest] == [as_of]


def test_orders_by_hour_is_mean_daily_orders(
    synthetic_build: Workspace, expected_clean: pd.DataFrame
) -> None:
    orders = expected_clean.groupby("invoice_no").invoice_at.min()
    trading_days = orders.dt.date.nunique()
    expected = (orders.dt.hour.value_counts() / trading_days).sort_index()
    actual = synthetic_build.frame(
        "select hour_of_day, mean_daily_orders from marts.eda_orders_by_hour order by hour_of_day"
    )
    assert actual.hour_of_day.tolist() == expected.index.tolist()
    np.testing.assert_allclose(actual.mean_daily_orders, expected.to_numpy())


def test_raw_profile_counts_the_file(synthetic_build: Workspace, synthetic_raw: Path) -> None:
    raw = reference.read_raw(synthetic_raw)
    profile = synthetic_build.frame("select * from marts.eda_raw_profile").iloc[0]
    assert profile.n_rows == len(raw)
    assert profile.n_null_customer_id == raw.CustomerID.isna().sum()
    assert profile.n_customers == raw.CustomerID.nunique()
    assert profile.n_invoices == raw.InvoiceNo.nunique()
    assert profile.n_countries == raw.Country.nunique()
    assert profile.n_cancellation_lines == raw.InvoiceNo.str.startswith("C").sum()
    source_columns = [c for c in raw.columns if c != "source_row_number"]
    assert profile.n_duplicate_lines == raw.duplicated(subset=source_columns).sum()


def test_custom_schemas_keep_their_own_names(synthetic_build: Workspace) -> None:
    schemas = {
        row[0]
        for row in synthetic_build.query("select schema_name from information_schema.schemata")
    }
    assert {"staging", "intermediate", "marts", "seeds"} <= schemas
    assert not any(name.startswith("main_") for name in schemas)


def test_descriptions_are_persisted_for_bi_users(synthetic_build: Workspace) -> None:
    comments = synthetic_build.query(
        "select comment from duckdb_tables()"
        " where schema_name = 'marts' and table_name = 'customer_rfm'"
    )
    assert comments and comments[0][0].startswith("One row per customer")


def test_not_null_contract_constraints_are_enforced_by_duckdb(
    synthetic_build: Workspace,
) -> None:
    """Columns of contracted tables declare not_null as a constraint instead of a data test
    (one fewer query per column per build); this checks the constraint reaches the database for
    every such column in dbt's manifest, and that DuckDB refuses a null there."""
    manifest = json.loads((synthetic_build.root / "target" / "manifest.json").read_text())
    declared = {
        (node["schema"], node["alias"], column)
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and node["config"]["materialized"] in ("table", "incremental")
        and node["config"]["contract"]["enforced"]
        for column, spec in node["columns"].items()
        if any(constraint["type"] == "not_null" for constraint in spec["constraints"])
    }
    enforced = set(
        synthetic_build.query(
            "select schema_name, table_name, unnest(constraint_column_names)"
            " from duckdb_constraints() where constraint_type = 'NOT NULL'"
        )
    )
    assert len(declared) > 300
    assert declared <= enforced, sorted(declared - enforced)[:10]
    with duckdb.connect(str(synthetic_build.warehouse)) as connection:
        connection.execute("begin")
        with pytest.raises(duckdb.ConstraintException, match="NOT NULL"):
            connection.execute("update marts.customer_rfm set recency_days = null")
        connection.execute("rollback")


def test_a_build_sends_no_usage_events(synthetic_build: Workspace) -> None:
    """dbt sends anonymous usage events by default (to dbt Labs, when a network is there); the
    project turns them off (dbt_project.yml's flags), so a build reaches out to nothing."""
    log = (synthetic_build.root / "logs" / "dbt.log").read_text()
    assert "'send_anonymous_usage_stats': 'False'" in log
    assert "Sending event" not in log


def test_a_copied_warehouse_starts_from_the_sessions_parse(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    """dbt on a copy of the session's build starts from the build's saved parse (the tests'
    `SavedParse`, which keeps the suite from parsing the project once per test warehouse); with
    a profile that differs in more than the warehouse's path it is not given."""
    workspace = copy_workspace(synthetic_build, tmp_path / "copy")
    listed = workspace.dbt(synthetic_raw, "ls", "--select", "customer_rfm", "--output", "name")
    assert listed.returncode == 0, listed.stdout[-3000:]
    assert "customer_rfm" in listed.stdout.split()
    log = (workspace.root / "logs" / "dbt.log").read_text()
    assert "Partial parsing enabled: 0 files deleted, 0 files added, 0 files changed" in log
    assert "Unable to do partial parsing" not in log

    other = tmp_path / "other"
    same = {**os.environ, "RETAIL_DUCKDB_PATH": str(Workspace(other).warehouse)}
    assert SESSION_PARSE.saved is not None
    assert not SESSION_PARSE.give(other, {**same, "RETAIL_DUCKDB_MEMORY_LIMIT": "1234MB"})
    assert not (other / "target").exists()
    assert SESSION_PARSE.give(other, same)
    assert (other / "target" / "partial_parse.msgpack").exists()
