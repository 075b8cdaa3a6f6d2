"""Customer value inside `dbt build` on the synthetic fixture: the marts hold what the package
computes from the same input, every customer is valued once, the evaluation is complete, and the
calibration fit sees nothing after its cut-off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dbt_helpers import Workspace, assert_built, copy_workspace

from retail_segments.ml.results import result_frame
from retail_segments.ml.value import customer_value_record, fit_customer_value

pytestmark = pytest.mark.dbt


def test_customer_value_is_what_the_package_computes_for_every_customer(
    synthetic_build: Workspace,
) -> None:
    days = synthetic_build.frame("select * from intermediate.int_customer_value__purchase_days")
    # the production fit on spend as known at rfm_as_of, valuing every customer in one go
    settings = {
        "time_column": "purchased_at",
        "amount_column": "spend_known_at_rfm_as_of",
        "monthly_discount_rate": 0.01,
    }
    expected = fit_customer_value(days, "2011-12-10", settings).customer_value
    record = customer_value_record(days, "2011-12-10", "2011-09-09", None, 0.01)
    production = result_frame(record, "models").query("purpose == 'production'")
    models = synthetic_build.frame(
        "select * from ml.clv_model where purpose = 'production' order by model"
    )
    np.testing.assert_allclose(
        models[["r", "alpha", "a", "b", "p", "q", "v"]].to_numpy(dtype=float),
        production.sort_values("model")[["r", "alpha", "a", "b", "p", "q", "v"]].to_numpy(
            dtype=float
        ),
        rtol=1e-12,
        equal_nan=True,
    )
    actual = synthetic_build.frame("select * from marts.customer_value order by customer_id")
    rfm = synthetic_build.frame("select customer_id from marts.customer_rfm order by customer_id")
    assert actual.customer_id.tolist() == rfm.customer_id.tolist()
    assert actual.customer_id.tolist() == expected.customer_id.astype(int).tolist()
    for column in ("expected_purchases_90d", "prob_no_purchase_90d", "clv_12m"):
        np.testing.assert_allclose(actual[column], expected[column], rtol=1e-9)
    segments = synthetic_build.frame(
        "select customer_id, clv_12m, prob_no_purchase_90d from marts.customer_segments"
        " order by customer_id"
    )
    np.testing.assert_allclose(segments.clv_12m, actual.clv_12m, rtol=1e-12)


def test_the_evaluation_scores_both_models_on_both_targets(synthetic_build: Workspace) -> None:
    evaluation = synthetic_build.frame("select * from ml.clv_evaluation order by model, target")
    assert list(zip(evaluation.model, evaluation.target, strict=True)) == [
        ("bg_nbd_gamma_gamma", "purchases"),
        ("bg_nbd_gamma_gamma", "spend"),
        ("naive_rate", "purchases"),
        ("naive_rate", "spend"),
    ]
    assert evaluation.auc_no_purchase.notna().tolist() == [True, False, True, False]
    assert (evaluation.calibration_end == pd.Timestamp("2011-09-09")).all()
    assert (evaluation.holdout_end == pd.Timestamp("2011-12-09")).all()
    before = synthetic_build.query(
        "select count(distinct customer_id) from marts.fct_sales_lines"
        " where invoice_at < timestamp '2011-09-09'"
    )[0][0]
    assert (evaluation.n_customers == before).all()


def test_segment_summary_sums_the_value_of_its_customers(synthetic_build: Workspace) -> None:
    summary = synthetic_build.frame(
        "select segment_name, total_clv_12m, mean_prob_no_purchase_90d from marts.segment_summary"
        " where scheme = 'tsne_segment' order by segment_name"
    )
    expected = synthetic_build.frame(
        "select segment_name, sum(clv_12m) as total, avg(prob_no_purchase_90d) as risk"
        " from marts.customer_segments group by 1 order by 1"
    )
    assert summary.segment_name.tolist() == expected.segment_name.tolist()
    np.testing.assert_allclose(summary.total_clv_12m, expected.total, rtol=1e-9)
    np.testing.assert_allclose(summary.mean_prob_no_purchase_90d, expected.risk, rtol=1e-9)


def test_dates_given_unquoted_as_the_readme_writes_them_reach_the_fits(
    synthetic_build: Workspace, synthetic_raw: Path, tmp_path: Path
) -> None:
    """`--vars '{rfm_as_of: 2011-12-10}'` makes YAML dates, not strings. Every fit's meta block
    takes them as text (`| string`): a Python model's config cannot hold a date (before, the
    fits failed with a NameError inside `dbt build`, and this `dbt run` hung). The same dates,
    unquoted, give the same fits."""
    fits = ("ml.ml_customer_value_fit", "ml.ml_product_categories_fit")
    before = {fit: synthetic_build.frame(f"select * from {fit}") for fit in fits}
    workspace = copy_workspace(synthetic_build, tmp_path / "unquoted")
    result = workspace.dbt(
        synthetic_raw,
        "run",
        "--select",
        "ml_customer_value_fit ml_product_categories_fit",
        "--vars",
        "{rfm_as_of: 2011-12-10, clv_calibration_end: 2011-09-09, new_customer_cutoff: 2011-10-01}",
    )
    assert_built(result)
    for fit in fits:
        pd.testing.assert_frame_equal(workspace.frame(f"select * from {fit}"), before[fit])
