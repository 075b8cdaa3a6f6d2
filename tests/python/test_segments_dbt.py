"""The ML layer inside `dbt build` on the synthetic file: the artifact round-trips through the
warehouse, untrusted artifacts are refused by the scoring step, and rebuilding changes nothing."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from dbt_helpers import Workspace
from sklearn.svm import SVC

from retail_segments.ml.artifacts import load_model, serialize_model
from retail_segments.ml.embedding import rfm_features

pytestmark = pytest.mark.dbt

ML_TABLES = [
    "ml.cluster_model_selection",
    "ml.embedding_summary",
    "ml.customer_embeddings",
    "ml.cluster_profiles",
    "ml.classifier_metrics",
    "ml.classifier_class_metrics",
    "ml.classifier_confusion_matrix",
    "ml.model_registry",
    "marts.customer_segments",
]


def _checksums(workspace: Workspace) -> dict[str, tuple]:
    """Row count and an order-independent hash of every row, per table."""
    return {
        table: workspace.query(f"select count(*), sum(hash(t)) from {table} as t")[0]
        for table in ML_TABLES
    }


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


def test_rebuilding_gives_identical_tables(synthetic_build: Workspace, synthetic_raw: Path) -> None:
    before = _checksums(synthetic_build)
    result = synthetic_build.build(synthetic_raw, "--select", "customer_rfm+")
    assert result.returncode == 0, result.stdout[-3000:]
    assert _checksums(synthetic_build) == before
