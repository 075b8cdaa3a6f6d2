"""The ML layer inside `dbt build` on the synthetic file: the artifact round-trips through the
warehouse, untrusted artifacts are refused by the scoring step, the fit models are one keyed row
per fit, and the aggregates computed in SQL from their results agree with the Python (cluster
profiles) and scikit-learn (class metrics, confusion matrix) definitions."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dbt_helpers import Workspace, copy_workspace
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from sklearn.svm import SVC

from retail_segments.ml.artifacts import load_model, serialize_model
from retail_segments.ml.clustering import PROFILE_COLUMNS, profile_clusters
from retail_segments.ml.embedding import rfm_features

pytestmark = pytest.mark.dbt


def test_every_customer_has_one_segment(synthetic_build: Workspace) -> None:
    n_rfm = synthetic_build.query("select count(*) from marts.customer_rfm")[0][0]
    rows = synthetic_build.query(
        "select count(*), count(distinct customer_id), count(segment_name)"
        " from marts.customer_segments"
    )[0]
    assert rows == (n_rfm, n_rfm, n_rfm)
    outliers = synthetic_build.query(
        "select distinct assignment_method from marts.customer_segments where is_outlier"
    )
    assert outliers == [("classified",)]
    # at this scale the whole population is the fit sample: every clustered customer was fitted
    fitted = synthetic_build.query(
        "select assignment_method, bool_and(is_fit_sample), bool_or(is_fit_sample)"
        " from marts.customer_segments group by all order by all"
    )
    assert fitted == [("classified", False, False), ("clustered", True, True)]


def test_classified_segments_come_from_the_registry_artifact(synthetic_build: Workspace) -> None:
    version, blob = synthetic_build.query(
        "select model_version, artifact from ml.model_registry"
        " where model_version = (select any_value(model_version) from marts.customer_segments)"
    )[0]
    classified = synthetic_build.frame(
        "select customer_id, recency_days, frequency, monetary, segment_name"
        " from marts.customer_segments where assignment_method = 'classified'"
        " order by customer_id"
    )
    assert len(classified) > 0
    estimator = load_model(blob)
    predicted = estimator.predict(rfm_features(classified))
    assert list(predicted) == classified.segment_name.tolist()
    assert version


def test_selected_segments_are_named_once_per_stage(synthetic_build: Workspace) -> None:
    selected = synthetic_build.frame(
        "select stage, n_clusters from ml.cluster_model_selection where is_selected order by stage"
    )
    profiles = synthetic_build.frame(
        "select stage, count(*) as n, count(distinct segment_name) as names"
        " from ml.cluster_profiles where cluster_id >= 0 group by stage order by stage"
    )
    assert selected.stage.tolist() == ["pca", "tsne"]
    assert profiles.n.tolist() == selected.n_clusters.tolist()
    assert (profiles.n == profiles.names).all()


def test_scoring_refuses_an_untrusted_artifact(
    synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    x = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    untrusted = serialize_model(SVC().fit(x, [0, 1]))
    with duckdb.connect(str(synthetic_build.warehouse)) as connection:
        original = connection.sql(
            "select model_version, artifact from ml.model_registry"
        ).fetchall()
        connection.execute("update ml.model_registry set artifact = ?", [untrusted])
    try:
        result = synthetic_build.dbt(synthetic_raw, "run", "--select", "ml_customer_segment_scores")
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "UntrustedArtifactError" in output and "sklearn.svm" in output, output[-3000:]
    finally:
        with duckdb.connect(str(synthetic_build.warehouse)) as connection:
            for version, blob in original:
                connection.execute(
                    "update ml.model_registry set artifact = ? where model_version = ?",
                    [blob, version],
                )


def test_every_fit_model_is_one_row_per_key(synthetic_build: Workspace) -> None:
    """Each fit model returns one keyed row per fit, its results nested; the results unpack to
    the published tables."""
    keys = {
        "ml.ml_segmentation_pca_fit": "stage",
        "ml.ml_segmentation_tsne_fit": "stage",
        "ml.ml_segment_classifier_fit": "model_version",
    }
    for table, key in keys.items():
        rows = synthetic_build.query(f"select count(*), count(distinct {key}) from {table}")[0]
        assert rows == (1, 1), table
    stages = synthetic_build.query(
        "select stage, n_customers, n_fit_sample, algorithm, n_clusters"
        " from ml.ml_segmentation_pca_fit union all"
        " select stage, n_customers, n_fit_sample, algorithm, n_clusters"
        " from ml.ml_segmentation_tsne_fit order by stage"
    )
    selected = synthetic_build.query(
        "select stage, algorithm, n_clusters from ml.cluster_model_selection"
        " where is_selected order by stage"
    )
    n_embedded = synthetic_build.query("select count(*) from ml.customer_embeddings")[0][0]
    assert [row[0] for row in stages] == ["pca", "tsne"]
    assert [(row[0], row[3], row[4]) for row in stages] == selected
    assert all(row[1] == row[2] == n_embedded for row in stages)
    version = synthetic_build.query(
        "select model_version from ml.ml_segment_classifier_fit"
        " intersect select model_version from ml.model_registry"
    )
    assert len(version) == 1


def test_cluster_profiles_agree_with_the_profiles_the_names_came_from(
    synthetic_build: Workspace,
) -> None:
    """SQL computes the published profiles; the naming used clustering.profile_clusters on the
    same customers in Python. Both must give the same figures."""
    customers = synthetic_build.frame(
        "select e.*, r.recency_days, r.frequency, r.monetary"
        " from ml.customer_embeddings as e join marts.customer_rfm as r using (customer_id)"
        " order by customer_id"
    )
    published = synthetic_build.frame(
        "select * from ml.cluster_profiles order by stage, cluster_id"
    )
    for stage in ("pca", "tsne"):
        ids = customers[f"{stage}_cluster_id"].to_numpy()
        expected = profile_clusters(customers, ids, stage=stage)
        fitted = customers.loc[customers["is_fit_sample"]].groupby(f"{stage}_cluster_id").size()
        expected["n_fit_sample"] = expected["cluster_id"].map(fitted).fillna(0).astype("int64")
        actual = published.loc[published["stage"] == stage].reset_index(drop=True)
        assert len(actual) == len(expected) > 0
        for column in ("cluster_id", "n_customers", "n_fit_sample"):
            assert actual[column].tolist() == expected[column].tolist(), (stage, column)
        for column in PROFILE_COLUMNS[3:]:
            np.testing.assert_allclose(
                actual[column], expected[column], rtol=1e-12, err_msg=f"{stage} {column}"
            )


def _sklearn_metrics(predictions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Class metrics and confusion cells of the test split as scikit-learn computes them, over
    every segment trained or tested on."""
    labels = sorted(predictions["actual_segment"].unique())
    test = predictions.loc[predictions["split"] == "test"]
    precision, recall, f1, support = precision_recall_fscore_support(
        test["actual_segment"], test["predicted_segment"], labels=labels, zero_division=0
    )
    classes = pd.DataFrame(
        {
            "segment_name": labels,
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": support,
        }
    )
    matrix = confusion_matrix(test["actual_segment"], test["predicted_segment"], labels=labels)
    actual, predicted = np.meshgrid(labels, labels, indexing="ij")
    cells = pd.DataFrame(
        {
            "actual_segment": actual.ravel(),
            "predicted_segment": predicted.ravel(),
            "n_customers": matrix.ravel(),
        }
    )
    return classes, cells


def _assert_metrics_match_sklearn(workspace: Workspace) -> pd.DataFrame:
    predictions = workspace.frame("select * from ml.ml_classifier_predictions")
    expected_classes, expected_cells = _sklearn_metrics(predictions)
    classes = workspace.frame("select * from ml.classifier_class_metrics order by segment_name")
    cells = workspace.frame(
        "select * from ml.classifier_confusion_matrix order by actual_segment, predicted_segment"
    )
    model = workspace.query("select model from ml.ml_segment_classifier_fit")[0][0]
    assert classes["model"].eq(model).all()
    pd.testing.assert_frame_equal(
        classes.drop(columns="model"), expected_classes, check_dtype=False, rtol=0, atol=0
    )
    pd.testing.assert_frame_equal(cells, expected_cells, check_dtype=False)
    return classes


def test_class_metrics_and_confusion_matrix_are_sklearns(synthetic_build: Workspace) -> None:
    """The SQL class metrics and confusion matrix equal scikit-learn's on the fit's test split,
    which reproduces the reported test accuracy."""
    _assert_metrics_match_sklearn(synthetic_build)
    predictions = synthetic_build.frame("select * from ml.ml_classifier_predictions")
    test = predictions.loc[predictions["split"] == "test"]
    selected = synthetic_build.query(
        "select test_accuracy, n_train, n_test from ml.classifier_metrics where is_selected"
    )[0]
    assert (test["actual_segment"] == test["predicted_segment"]).mean() == pytest.approx(
        selected[0]
    )
    assert (int((predictions["split"] == "train").sum()), len(test)) == selected[1:]


def test_class_metrics_follow_sklearns_zero_division_rule(
    tmp_path: Path, synthetic_build: Workspace, synthetic_raw: Path
) -> None:
    """Predictions with a segment never predicted, one with no test customer, and one predicted
    but absent from the test split: every undefined ratio is 0, as in scikit-learn with
    zero_division=0."""
    workspace = copy_workspace(synthetic_build, tmp_path / "zero_division")
    ids = [row[0] for row in workspace.query("select customer_id from ml.customer_embeddings")]
    rows = [
        ("train", "a", "a"),
        ("train", "b", "b"),
        ("train", "c", "c"),
        ("train", "d", "d"),
        ("train", "e", "e"),
        ("test", "a", "a"),
        ("test", "a", "b"),
        ("test", "a", "e"),
        ("test", "b", "a"),
        ("test", "c", "a"),
        ("test", "b", "b"),
    ]
    crafted = pd.DataFrame(rows, columns=["split", "actual_segment", "predicted_segment"])
    crafted.insert(0, "customer_id", ids[: len(rows)])
    with duckdb.connect(str(workspace.warehouse)) as connection:
        connection.register("crafted", crafted)
        connection.execute(
            "update ml.ml_segment_classifier_fit set customers = (select list(struct_pack("
            "customer_id := customer_id, split := split, actual_segment := actual_segment,"
            " predicted_segment := predicted_segment) order by customer_id) from crafted)"
        )
    result = workspace.dbt(
        synthetic_raw,
        "run",
        "--select",
        "ml_classifier_predictions classifier_class_metrics classifier_confusion_matrix",
    )
    assert result.returncode == 0, result.stdout[-3000:]
    classes = _assert_metrics_match_sklearn(workspace).set_index("segment_name")
    assert classes.loc["d", ["precision", "recall", "f1", "support"]].tolist() == [0, 0, 0, 0]
    assert classes.loc["c", ["precision", "recall", "support"]].tolist() == [0, 0, 1]
    assert classes.loc["e", ["precision", "recall", "support"]].tolist() == [0, 0, 0]
    assert classes.loc["b", "precision"] == pytest.approx(0.5)
