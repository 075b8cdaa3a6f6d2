"""Part III: segment classifier, its metrics and the assignment of every customer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_blobs

from retail_segments.ml.classifier import (
    CLASS_METRICS_COLUMNS,
    CONFUSION_COLUMNS,
    METRICS_COLUMNS,
    ClassifierResult,
    assign_segments,
    classifier_config,
    search_spaces,
    split_train_test,
    train_segment_classifier,
    training_frame,
)

SEGMENTS = np.array(["loyal", "lost", "newcomers", "at risk"])
FAST = {"n_jobs": 1}


@pytest.fixture(scope="module")
def customers() -> tuple[pd.DataFrame, pd.DataFrame]:
    """RFM of 250 customers in four separable groups; the last 10 are outliers (no segment)."""
    X, y = make_blobs(
        n_samples=250,
        centers=[[2, 12, 16], [32, 1, 0.5], [1, 1, 1], [25, 9, 12]],
        cluster_std=1.0,
        random_state=4,
    )
    X = X * [10, 1, 300]
    rfm = pd.DataFrame(
        {
            "customer_id": np.arange(250, dtype="int64") + 1000,
            "recency_days": np.abs(X[:, 0]).round().astype("int64"),
            "frequency": np.maximum(1, X[:, 1].round()).astype("int64"),
            "monetary": X[:, 2],
            "is_outlier": np.arange(250) >= 240,
        }
    )
    segments = pd.DataFrame({"customer_id": rfm["customer_id"], "segment_name": SEGMENTS[y]})
    return rfm, segments.loc[~rfm["is_outlier"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def trained(customers: tuple[pd.DataFrame, pd.DataFrame]) -> ClassifierResult:
    rfm, segments = customers
    return train_segment_classifier(rfm, segments, FAST)


def test_metrics_are_consistent(trained: ClassifierResult) -> None:
    metrics = trained.metrics
    assert list(metrics.columns) == list(METRICS_COLUMNS)
    assert metrics["model"].tolist() == ["random_forest", "hist_gradient_boosting"]
    assert metrics["cv_accuracy"].between(0, 1).all()
    assert metrics["test_accuracy"].between(0, 1).all()
    assert metrics["is_selected"].sum() == 1
    selected = metrics.loc[metrics["is_selected"]].iloc[0]
    assert selected["cv_accuracy"] == metrics["cv_accuracy"].max()
    assert selected["model"] == trained.model_name
    assert (metrics["n_train"] + metrics["n_test"]).eq(240).all()
    assert metrics["n_test"].eq(48).all()
    assert metrics["search"].eq("fast").all()
    assert metrics["fit_seconds"].gt(0).all()
    assert json.loads(selected["best_params"]) == trained.best_params
    assert trained.n_training_rows == selected["n_train"]


def test_confusion_matrix_and_class_metrics_agree(trained: ClassifierResult) -> None:
    confusion = trained.confusion_matrix
    classes = trained.class_metrics
    n_test = int(trained.metrics["n_test"].iloc[0])

    assert list(confusion.columns) == list(CONFUSION_COLUMNS)
    assert list(classes.columns) == list(CLASS_METRICS_COLUMNS)
    assert len(confusion) == len(SEGMENTS) ** 2
    assert confusion["n_customers"].sum() == n_test
    correct = confusion.loc[confusion["actual_segment"] == confusion["predicted_segment"]]
    selected = trained.metrics.loc[trained.metrics["is_selected"]].iloc[0]
    assert correct["n_customers"].sum() / n_test == pytest.approx(selected["test_accuracy"])
    support = confusion.groupby("actual_segment")["n_customers"].sum()
    assert classes.set_index("segment_name")["support"].to_dict() == support.to_dict()
    for column in ("precision", "recall", "f1"):
        assert classes[column].between(0, 1).all()
    assert set(classes["model"]) == {trained.model_name}
    assert selected["test_accuracy"] > 0.9


def test_split_is_stratified(customers: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    rfm, segments = customers
    frame = training_frame(rfm, segments)
    _, X_test, _, y_test = split_train_test(frame, test_size=0.2, random_state=42)
    expected = frame["segment_name"].value_counts() * 0.2
    observed = y_test.value_counts().reindex(expected.index)
    assert (observed - expected).abs().le(1).all()
    assert list(X_test.columns) == ["recency_days", "frequency", "monetary"]


def test_split_refuses_singleton_segments(customers: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    rfm, segments = customers
    lonely = segments.copy()
    lonely.loc[0, "segment_name"] = "unique"
    with pytest.raises(ValueError, match="unique"):
        split_train_test(training_frame(rfm, lonely))


def test_training_is_deterministic_and_order_independent(
    customers: tuple[pd.DataFrame, pd.DataFrame], trained: ClassifierResult
) -> None:
    rfm, segments = customers
    again = train_segment_classifier(
        rfm.sample(frac=1.0, random_state=2), segments.sample(frac=1.0, random_state=3), FAST
    )
    timing_free = trained.metrics.drop(columns="fit_seconds")
    pd.testing.assert_frame_equal(again.metrics.drop(columns="fit_seconds"), timing_free)
    pd.testing.assert_frame_equal(again.confusion_matrix, trained.confusion_matrix)


def test_assign_segments_classifies_only_the_unclustered(
    customers: tuple[pd.DataFrame, pd.DataFrame], trained: ClassifierResult
) -> None:
    rfm, segments = customers
    noise = segments.copy()
    noise.loc[:4, "segment_name"] = None
    assigned = assign_segments(rfm, noise, trained.estimator)

    assert assigned["customer_id"].tolist() == sorted(rfm["customer_id"])
    assert assigned["segment_name"].notna().all()
    classified = assigned["assignment_method"] == "classified"
    expected = rfm["is_outlier"].to_numpy().copy()
    expected[:5] = True
    np.testing.assert_array_equal(classified.to_numpy(), expected)
    kept = assigned.loc[~classified].merge(noise, on="customer_id", suffixes=("", "_cluster"))
    assert kept["segment_name"].eq(kept["segment_name_cluster"]).all()
    predicted = trained.estimator.predict(
        rfm.loc[expected, ["recency_days", "frequency", "monetary"]].astype("float64")
    )
    assert assigned.loc[classified, "segment_name"].tolist() == list(predicted)


def test_search_spaces_match_the_study_grids() -> None:
    full = search_spaces("full", random_state=42)
    fast = search_spaces("fast", random_state=42)
    sizes = {
        name: int(np.prod([len(v) for v in grid.values()])) for name, (_, grid) in full.items()
    }
    assert sizes == {"random_forest": 60, "gradient_boosting": 36}
    assert full["random_forest"][1]["max_depth"] == list(range(5, 15))
    for spaces in (full, fast):
        for estimator, _ in spaces.values():
            assert estimator.get_params()["random_state"] == 42
    with pytest.raises(ValueError, match="search mode"):
        search_spaces("exhaustive")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"serach": "full"}, "serach"),
        ({"search": "exhaustive"}, "search"),
        ({"test_size": 1.5}, "test_size"),
        ({"cv": 1}, "cv"),
        ({"n_jobs": "two"}, "n_jobs"),
        ({"max_threads": 0}, "max_threads"),
    ],
)
def test_classifier_config_validation(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        classifier_config(config)
    assert classifier_config()["search"] == "fast"
