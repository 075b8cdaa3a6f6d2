"""`dbt build` on the real UCI file (skipped when it is absent), checked against the figures
published with the file and against the independent pandas computation."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dbt_helpers import Workspace

from retail_segments.ml.value import MODEL_NAME
from retail_segments.ops.publish import published_relations
from retail_segments_dev import clv_backtest, fingerprint, reference

pytestmark = [pytest.mark.dbt, pytest.mark.real_data]


@pytest.fixture(scope="module")
def expected_clean(real_raw: Path) -> pd.DataFrame:
    return reference.clean(reference.read_raw(real_raw))


def test_raw_profile_matches_the_published_figures(real_build: Workspace) -> None:
    profile = real_build.frame("select * from marts.eda_raw_profile").iloc[0]
    assert profile.n_rows == 541_909
    assert profile.n_null_customer_id == 135_080
    assert profile.n_customers == 4_372
    assert profile.n_invoices == 25_900
    assert profile.n_cancellation_lines == 9_288
    assert profile.n_countries == 38
    assert profile.n_duplicate_lines == 5_268
    assert str(profile.first_invoice_at.date()) == "2010-12-01"
    assert str(profile.last_invoice_at.date()) == "2011-12-09"


def test_clean_lines_equal_the_reference(
    real_build: Workspace, expected_clean: pd.DataFrame
) -> None:
    actual = real_build.frame(
        "select source_row_number, quantity_canceled, total_price"
        " from marts.fct_sales_lines order by source_row_number"
    )
    expected = expected_clean.sort_values("source_row_number")
    assert actual.source_row_number.tolist() == expected.source_row_number.tolist()
    assert actual.quantity_canceled.tolist() == expected.quantity_canceled.astype(int).tolist()
    np.testing.assert_allclose(actual.total_price, expected.total_price, rtol=1e-9, atol=1e-9)


def test_rfm_equals_the_reference(real_build: Workspace, expected_clean: pd.DataFrame) -> None:
    actual = real_build.frame("select * from marts.customer_rfm order by customer_id")
    expected = reference.rfm(expected_clean).sort_values("customer_id").reset_index(drop=True)
    assert actual.customer_id.tolist() == expected.customer_id.astype(int).tolist()
    for column in ("recency_days", "frequency", "r_score", "f_score", "m_score"):
        assert actual[column].tolist() == expected[column].astype(int).tolist(), column
    np.testing.assert_allclose(actual.monetary, expected.monetary, rtol=1e-9, atol=1e-6)
    assert actual.is_outlier.tolist() == expected.is_outlier.astype(bool).tolist()


def test_cancelled_basket_share_is_the_studys(real_build: Workspace) -> None:
    share = real_build.query("select cancelled_basket_share from marts.eda_cancelled_baskets")[0][0]
    assert share == pytest.approx(0.1647, abs=5e-4)


# Issue 13 restructured the code without changing what a build publishes. The marts of the real
# build before it (commit 8b413e8, fingerprinted by `python -m retail_segments_dev.fingerprint`)
# must come out of this build unchanged, apart from what later issues changed on purpose:
BEFORE_RESTRUCTURE = Path(__file__).parent / "fixtures" / "real_marts_8b413e8.json"
# the internal fit tables that moved to the intermediate layer or took the ml_ prefix, same rows;
MOVED = {
    "ml.customer_interest_baskets": "intermediate.int_customer_interest__baskets",
    "ml.customer_interest_spend_shares": "intermediate.int_customer_interest__spend_shares",
    "ml.customer_interest_window_orders": "intermediate.int_customer_interest__window_orders",
    "ml.customer_interest_model_fits": "ml.ml_customer_interest_model_fits",
}
# the stacked fit tables, which became one fit record per fit: what they held is in the marts
# compared here (selection tables, profiles, assignments, embeddings, classifier metrics);
RESHAPED = {
    "ml.customer_interest_fit": "ml.ml_customer_interest_fit",
    "ml.product_categories_fit": "ml.ml_product_categories_fit",
    "ml.ml_segmentation_pca_fit": "ml.ml_segmentation_pca_fit",
    "ml.ml_segmentation_tsne_fit": "ml.ml_segmentation_tsne_fit",
    "ml.ml_segment_classifier_fit": "ml.ml_segment_classifier_fit",
}
# and issue 12's naming rule: the same clusters under new names (which also reorders the
# classifier's labels, so its tie-breaks and metrics move) and a new model version.
RENAMED_SEGMENTS = {
    "marts.customer_segment_history": ["segment_name", "model_version"],
    "marts.customer_segment_last_change": ["segment_state", "segment_name"],
    "marts.customer_segments": ["segment_name", "segment_strategy", "model_version"],
    "marts.segment_summary": ["segment_name", "strategy"],
    "ml.classifier_class_metrics": ["segment_name", "precision", "recall", "f1"],
    "ml.classifier_confusion_matrix": ["actual_segment", "predicted_segment", "n_customers"],
    "ml.classifier_metrics": ["best_params", "cv_accuracy", "test_accuracy"],
    "ml.cluster_profiles": ["segment_name", "strategy", "archetype_distance"],
    "ml.customer_embeddings": ["tsne_segment_name"],
    "ml.ml_customer_segment_history_scores": ["segment_name", "model_version"],
    "ml.ml_customer_segment_scores": ["segment_name", "model_version"],
    "ml.model_registry": ["model_version", "artifact", "params", "metrics", "training_seconds"],
}
# Scores that come out of a randomized truncated SVD and KMeans in floating point: the fingerprint
# keeps doubles to 9 significant digits, and another CPU (BLAS kernels, summation order) moves
# their last digits (seen on an AMD EPYC machine with the same packages: the same clusters and the
# same choice of k). The clusters, the chosen k and the selection reasons are still compared.
HARDWARE_DEPENDENT = {
    "ml.product_category_selection": ["silhouette", "calinski_harabasz", "davies_bouldin"],
}


def test_marts_equal_the_build_before_the_restructure(real_build: Workspace) -> None:
    recorded = json.loads(BEFORE_RESTRUCTURE.read_text())
    compared = {table: facts for table, facts in recorded.items() if table not in RESHAPED}
    assert (
        fingerprint.compare(
            real_build.warehouse,
            compared,
            skip_columns={**RENAMED_SEGMENTS, **HARDWARE_DEPENDENT},
            renamed=MOVED,
        )
        == []
    )
    manifest = real_build.root / "target" / "manifest.json"
    published = {
        f"{relation.schema}.{relation.name}"
        for relation in published_relations(manifest)
        if relation.schema in ("marts", "ml")
    }
    assert published - {*recorded, *MOVED.values()} == NEW_SINCE_THE_RESTRUCTURE
    tables = {schema_table for (schema_table,) in _relations(real_build)}
    assert not tables & {*MOVED} and set(RESHAPED.values()) <= tables
    # The renamed segments are the same clusters: customer_embeddings' cluster ids were compared
    # above, and each cluster has one name and each name one cluster.
    pairs = real_build.query(
        "select count(distinct tsne_cluster_id), count(distinct tsne_segment_name),"
        " count(distinct (tsne_cluster_id, tsne_segment_name)) from ml.customer_embeddings"
    )[0]
    assert pairs[0] == pairs[1] == pairs[2]


# Published tables the later issues added (customer value, issue 12).
NEW_SINCE_THE_RESTRUCTURE = {"marts.customer_value", "ml.clv_evaluation", "ml.clv_model"}


def _relations(workspace: Workspace) -> list[tuple[str]]:
    return workspace.query(
        "select table_schema || '.' || table_name from information_schema.tables"
        " where table_schema in ('marts', 'ml', 'intermediate')"
    )


def test_the_value_backtest_builds_its_folds_as_the_build_evaluates(real_build: Workspace) -> None:
    """`retail_segments_dev.clv_backtest` rebuilds the summaries and actuals from the sales lines
    for any origin; at the calibration end its production and naive figures are exactly
    ml.clv_evaluation's, so its folds inside the calibration window are scored the same way."""
    lines, calibration_end, horizon = clv_backtest.read_lines(real_build.warehouse)
    fold = clv_backtest.make_fold(lines, calibration_end, horizon)
    rebuilt = clv_backtest.evaluate_fold(fold, (MODEL_NAME,)).metrics
    built = real_build.frame("select * from ml.clv_evaluation")
    columns = ["mae", "rmse", "pearson", "total_error", "auc_no_purchase", "top_decile_share"]
    key = ["model", "target"]
    pd.testing.assert_frame_equal(
        rebuilt.sort_values(key)[[*key, *columns, "n_customers"]].reset_index(drop=True),
        built.sort_values(key)[[*key, *columns, "n_customers"]].reset_index(drop=True),
        check_dtype=False,
        rtol=1e-7,  # sums of money in another order (per line here, per day in the build)
    )


# The models whose sums and means of doubles DuckDB added in no fixed order (helper 36: on the
# real build, segment_summary's query gave 5 different results in 5 runs).
ORDER_FREE_AGGREGATES = (
    "segment_summary",
    "product_categories",
    "customer_interest_profiles",
    "customer_interest_profile_shares",
)


def test_sums_and_means_do_not_depend_on_the_order_rows_arrive(real_build: Workspace) -> None:
    """DuckDB adds doubles on several threads in no fixed order, so the same query on the same
    warehouse gave other last bits from run to run (and a rebuild other marts). Each model's
    query, run 5 times on 2 threads, now gives one result (exact_sum, exact_avg, money_sum)."""
    compiled = real_build.root / "target" / "compiled" / "retail_segments" / "models"
    with duckdb.connect(str(real_build.warehouse), read_only=True) as connection:
        connection.execute("set threads = 2")
        for model in ORDER_FREE_AGGREGATES:
            (path,) = (path for path in compiled.rglob(f"{model}.sql") if ".yml" not in str(path))
            query = f"select count(*), sum(hash(t)) from ({path.read_text()}) as t"
            results = {tuple(connection.execute(query).fetchall()[0]) for _ in range(5)}
            assert len(results) == 1, f"{model}: {len(results)} results in 5 runs"
