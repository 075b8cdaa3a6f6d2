"""Part III: segment classifier, its metrics and the assignment of every customer."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from joblib import Parallel, delayed
from sklearn.datasets import make_blobs

from retail_segments.ml.artifacts import build_model_registry_row, load_model
from retail_segments.ml.classifier import (
    METRICS_COLUMNS,
    PREDICTION_COLUMNS,
    SCORE_COLUMNS,
    ClassifierResult,
    ClassifierSettings,
    assign_segments,
    fit_segment_classifier,
    registry_row,
    score_customer_segments,
    search_spaces,
    split_train_test,
    train_segment_classifier,
    training_frame,
)
from retail_segments.ml.config import ConfigError, SamplingSettings
from retail_segments.ml.results import result_frame
from retail_segments.ml.threads import fit_workers

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
    assert trained.selected.equals(selected)


def test_predictions_cover_every_split_customer_once(trained: ClassifierResult) -> None:
    """Every customer trained or tested on, once, with the selected estimator's prediction: the
    test split reproduces the reported test accuracy, the train split has the training rows."""
    predictions = trained.predictions
    selected = trained.selected
    assert list(predictions.columns) == list(PREDICTION_COLUMNS)
    assert (
        predictions["customer_id"].is_unique and predictions["customer_id"].is_monotonic_increasing
    )
    assert predictions["split"].value_counts().to_dict() == {
        "train": selected["n_train"],
        "test": selected["n_test"],
    }
    test = predictions.loc[predictions["split"] == "test"]
    accuracy = (test["actual_segment"] == test["predicted_segment"]).mean()
    assert accuracy == pytest.approx(selected["test_accuracy"])
    assert set(predictions["actual_segment"]) == set(SEGMENTS)
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
    pd.testing.assert_frame_equal(again.predictions, trained.predictions)


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
        ({"serach": "full"}, "unknown key 'serach'"),
        ({"search": "exhaustive"}, "key 'search' = 'exhaustive'"),
        ({"test_size": 1.5}, "key 'test_size' = 1.5"),
        ({"test_size": 1}, "key 'test_size' = 1"),
        ({"cv": 1}, "key 'cv' = 1"),
        ({"n_jobs": "two"}, "key 'n_jobs"),
        ({"max_threads": 0}, "key 'max_threads"),
    ],
)
def test_classifier_settings_validation(config: dict, message: str) -> None:
    name = "ml_segment_classifier_fit.meta.classifier"
    with pytest.raises(ConfigError, match=f"{name}: {message}"):
        ClassifierSettings.parse(config, name=name)
    defaults = ClassifierSettings.parse(None, name=name)
    assert defaults.as_dict() == {
        "search": "fast",
        "test_size": 0.2,
        "random_state": 42,
        "cv": 5,
        "n_jobs": 2,
        "max_threads": 1,
    }
    assert all(field.description for field in ClassifierSettings.model_fields.values())


@pytest.fixture(scope="module")
def fit_inputs(
    customers: tuple[pd.DataFrame, pd.DataFrame],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The frames the dbt model reads: customer_rfm (with its as-of moment, the window's end),
    customer_embeddings, the data window's start."""
    rfm, segments = customers
    rfm = rfm.assign(rfm_as_of=pd.Timestamp("2011-12-10"))
    embeddings = segments.rename(columns={"segment_name": "tsne_segment_name"}).assign(
        is_fit_sample=True
    )
    window = pd.DataFrame({"data_window_start": [pd.Timestamp("2010-12-01 08:26")]})
    return rfm, embeddings, window


def test_the_fit_is_one_row_keyed_by_the_registry_version(
    fit_inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    """The record carries the registry row the build registered (same version as building it
    directly), the selected family and search, and the candidates and predictions."""
    rfm, embeddings, window = fit_inputs
    record = fit_segment_classifier(rfm, embeddings, window, {"classifier": FAST})
    result = train_segment_classifier(rfm, embeddings, FAST, segment_column="tsne_segment_name")
    registry = registry_row(result, window["data_window_start"].iloc[0], rfm["rfm_as_of"].max())
    metrics = json.loads(registry["metrics"].iloc[0])
    assert metrics["model"] == result.model_name and metrics["search"] == "fast"
    assert metrics["test_accuracy"] == result.selected["test_accuracy"]

    assert record.num_rows == 1
    assert record.column_names[:4] == ["model_version", "model_name", "model", "search"]
    assert record.column_names[-2:] == ["candidates", "customers"]
    row = record.drop_columns(["candidates", "customers"]).to_pylist()[0]
    assert row["model_version"] == registry["model_version"].iloc[0]
    assert (row["model"], row["search"]) == (result.model_name, "fast")
    for column in ("model_name", "model_class", "params", "metrics", "sklearn_version"):
        assert row[column] == registry[column].iloc[0]
    assert row["n_training_rows"] == result.n_training_rows
    assert row["created_at"] == row["data_window_end"] == datetime(2011, 12, 10)
    assert type(load_model(row["artifact"])) is type(result.estimator)
    candidates = result_frame(record, "candidates")
    pd.testing.assert_frame_equal(
        candidates.drop(columns="fit_seconds"), result.metrics.drop(columns="fit_seconds")
    )
    pd.testing.assert_frame_equal(result_frame(record, "customers"), result.predictions)


def test_the_fit_refuses_bad_meta_and_a_missing_window(
    fit_inputs: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame],
) -> None:
    rfm, embeddings, window = fit_inputs
    with pytest.raises(ConfigError, match=r"ml_segment_classifier_fit\.meta\.classifier: unknown"):
        fit_segment_classifier(rfm, embeddings, window, {"classifier": {"serach": "full"}})
    with pytest.raises(ConfigError, match=r"ml_segment_classifier_fit\.meta: unknown key"):
        fit_segment_classifier(rfm, embeddings, window, {"clasifier": {}})
    with pytest.raises(ValueError, match="data window"):
        fit_segment_classifier(rfm, embeddings, window.iloc[:0], {"classifier": FAST})


def test_scores_use_the_registered_version_of_the_fit(
    customers: tuple[pd.DataFrame, pd.DataFrame], trained: ClassifierResult
) -> None:
    """score_customer_segments loads the fit's version from the registry rows (not another one)
    and tags every customer with it."""
    rfm, segments = customers
    row = build_model_registry_row(
        trained.estimator,
        model_name="segment_classifier",
        metrics={},
        training_seconds=1.0,
        n_training_rows=trained.n_training_rows,
        data_window_start="2010-12-01",
        data_window_end="2011-12-10",
        created_at="2011-12-10",
    )
    decoy = row.assign(model_version="another", artifact=[b"not an artifact"])
    registry = pd.concat([decoy, row], ignore_index=True)
    embeddings = segments.rename(columns={"segment_name": "tsne_segment_name"})
    fit = row.loc[:, ["model_version"]]

    scores = score_customer_segments(rfm, embeddings, fit, registry)
    assert list(scores.columns) == list(SCORE_COLUMNS)
    assert scores["customer_id"].is_unique and len(scores) == len(rfm)
    assert scores["model_version"].eq(row["model_version"].iloc[0]).all()
    expected = assign_segments(rfm, segments, trained.estimator)
    pd.testing.assert_frame_equal(scores.drop(columns="model_version"), expected)
    with pytest.raises(ValueError, match="one row"):
        score_customer_segments(rfm, embeddings, registry.loc[:, ["model_version"]], registry)


def test_settings_of_another_model_are_refused(
    customers: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    rfm, segments = customers
    wrong = SamplingSettings.parse(None, name="sampling")
    with pytest.raises(TypeError, match="expected ClassifierSettings, got SamplingSettings"):
        train_segment_classifier(rfm, segments, wrong)


def _ctrl_c_handler() -> str:
    return repr(signal.getsignal(signal.SIGINT))


def test_the_grid_search_workers_leave_ctrl_c_to_dbt() -> None:
    """The grid search's worker processes (`fit_workers`) ignore Ctrl-C, which the terminal sends
    to every process of the build: a worker stopped in the middle of a fit printed its stack trace
    through dbt's output. Outside `fit_workers`, joblib's workers are as joblib makes them."""
    # Ctrl-C as in dbt's process (a process started in the background inherits it ignored)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with fit_workers():
            inside = Parallel(n_jobs=2)(delayed(_ctrl_c_handler)() for _ in range(4))
        outside = Parallel(n_jobs=2)(delayed(_ctrl_c_handler)() for _ in range(4))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert set(inside) == {repr(signal.SIG_IGN)}
    assert repr(signal.SIG_IGN) not in outside


# A process that starts two `fit_workers` workers, prints their process ids and waits to be killed.
WORKERS_THEN_WAIT = """
import os, sys, time
from joblib import Parallel, delayed
from retail_segments.ml.threads import fit_workers
with fit_workers():
    pids = set(Parallel(n_jobs=2)(delayed(os.getpid)() for _ in range(8)))
print(*pids, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_grid_search_workers_end_with_the_process_that_started_them() -> None:
    """Workers that ignore Ctrl-C end when the process running dbt is killed (a second Ctrl-C
    kills it), instead of idling on as orphans for loky's five-minute timeout."""
    with subprocess.Popen(
        [sys.executable, "-c", WORKERS_THEN_WAIT], stdout=subprocess.PIPE, text=True
    ) as parent:
        assert parent.stdout is not None
        workers = [int(pid) for pid in parent.stdout.readline().split()]
        assert workers and all(_alive(pid) for pid in workers)
        parent.kill()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in workers)
