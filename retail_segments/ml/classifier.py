"""Part III: a classifier that predicts the t-SNE segment of a customer from R, F and M.

``train_segment_classifier`` splits the clustered customers 80/20 (stratified by segment, so every
segment keeps its share in both parts), grid-searches two model families with 5-fold
cross-validated accuracy on the training part, keeps the family with the higher CV accuracy and
reports its test-set metrics. ``assign_segments`` then gives every customer a segment: the
cluster name where there is one, otherwise the classifier's prediction.

Search modes (``search_spaces``):

- ``"full"``: the study's exhaustive grids, ``GridSearchCV`` over ``RandomForestClassifier``
  (``max_depth`` 5..14, ``criterion`` gini/entropy, ``n_estimators`` 100/200/500: 60 candidates)
  and ``GradientBoostingClassifier`` (``max_depth`` 3..6, ``learning_rate`` 0.001/0.01/0.1,
  ``n_estimators`` 100/200/500: 36 candidates). Many minutes on two cores.
- ``"fast"`` (default): the same ``GridSearchCV`` procedure on small grids with cheap models:
  ``RandomForestClassifier`` with 100 trees, ``max_depth`` 6/10/14 and ``criterion``
  gini/entropy (6 candidates), and ``HistGradientBoostingClassifier`` (histogram gradient
  boosting, much faster than ``GradientBoostingClassifier`` on thousands of rows) with 100
  iterations, learning rate 0.1, ``max_depth`` 3/6 and early stopping off (2 candidates). About
  10-15 seconds on ~3,900 customers with ``n_jobs=2`` on an otherwise idle two-core machine.

Every estimator gets ``random_state`` (42 by default). ``fit_seconds`` is wall-clock time and the
only output that is not reproducible.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support
from sklearn.model_selection import GridSearchCV, train_test_split
from threadpoolctl import threadpool_limits

from retail_segments.ml.artifacts import to_json
from retail_segments.ml.embedding import RFM_FEATURES, rfm_features
from retail_segments.ml.segmentation import validate_config

SEARCH_MODES: tuple[str, ...] = ("fast", "full")

CLASSIFIER_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"search": "fast", "test_size": 0.2, "random_state": 42, "cv": 5, "n_jobs": 2, "max_threads": 1}
)

METRICS_COLUMNS: tuple[str, ...] = (
    "model",
    "best_params",
    "cv_accuracy",
    "test_accuracy",
    "n_train",
    "n_test",
    "is_selected",
    "search",
    "fit_seconds",
)
CLASS_METRICS_COLUMNS: tuple[str, ...] = (
    "model",
    "segment_name",
    "precision",
    "recall",
    "f1",
    "support",
)
CONFUSION_COLUMNS: tuple[str, ...] = ("actual_segment", "predicted_segment", "n_customers")
ASSIGNMENT_COLUMNS: tuple[str, ...] = ("customer_id", "segment_name", "assignment_method")


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of ``train_segment_classifier``.

    ``estimator`` is the selected family's best estimator, refitted on the training split (the
    exact model whose test metrics are reported). ``model_name`` names its family,
    ``n_training_rows`` its training rows, ``fit_seconds`` the wall-clock time of its search.
    """

    estimator: ClassifierMixin
    model_name: str
    best_params: dict[str, Any]
    n_training_rows: int
    fit_seconds: float
    metrics: pd.DataFrame
    class_metrics: pd.DataFrame
    confusion_matrix: pd.DataFrame

    def frames(self) -> dict[str, pd.DataFrame]:
        """Return the three warehouse tables keyed by table name."""
        return {
            "classifier_metrics": self.metrics,
            "classifier_class_metrics": self.class_metrics,
            "classifier_confusion_matrix": self.confusion_matrix,
        }


def classifier_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate a classifier config and fill in ``CLASSIFIER_DEFAULTS``.

    Keys: ``search`` ('fast' or 'full'), ``test_size`` (in (0, 1)), ``random_state``, ``cv``
    (folds, >= 2), ``n_jobs`` (GridSearchCV worker processes, or None) and ``max_threads``
    (OpenMP/BLAS threads in this process via threadpoolctl, default 1, None = library default;
    the workers of ``n_jobs`` already get one thread each). Raises ``ValueError`` naming an
    unknown key or an invalid value.
    """
    merged = validate_config(config, CLASSIFIER_DEFAULTS, name="classifier config")
    if merged["search"] not in SEARCH_MODES:
        raise ValueError(f"config key 'search' must be one of {SEARCH_MODES}")
    test_size = merged["test_size"]
    if isinstance(test_size, bool) or not isinstance(test_size, float) or not 0 < test_size < 1:
        raise ValueError("config key 'test_size' must be a float in (0, 1)")
    for key, minimum in (("random_state", 0), ("cv", 2)):
        value = merged[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"config key {key!r} must be an integer >= {minimum}")
    n_jobs = merged["n_jobs"]
    if n_jobs is not None and (isinstance(n_jobs, bool) or not isinstance(n_jobs, int)):
        raise ValueError("config key 'n_jobs' must be an integer or null")
    max_threads = merged["max_threads"]
    valid_threads = isinstance(max_threads, int) and not isinstance(max_threads, bool)
    if max_threads is not None and not (valid_threads and max_threads >= 1):
        raise ValueError("config key 'max_threads' must be an integer >= 1 or null")
    return merged


def search_spaces(
    search: str, random_state: int = 42
) -> dict[str, tuple[ClassifierMixin, dict[str, list[Any]]]]:
    """Return ``{model_name: (unfitted estimator, parameter grid)}`` for a search mode.

    See the module docstring for the grids of ``"fast"`` and ``"full"``. The dict order is the
    tie-break order of model selection.
    """
    if search == "full":
        return {
            "random_forest": (
                RandomForestClassifier(random_state=random_state),
                {
                    "max_depth": list(range(5, 15)),
                    "criterion": ["gini", "entropy"],
                    "n_estimators": [100, 200, 500],
                },
            ),
            "gradient_boosting": (
                GradientBoostingClassifier(random_state=random_state),
                {
                    "max_depth": [3, 4, 5, 6],
                    "learning_rate": [0.001, 0.01, 0.1],
                    "n_estimators": [100, 200, 500],
                },
            ),
        }
    if search == "fast":
        return {
            "random_forest": (
                RandomForestClassifier(random_state=random_state),
                {"max_depth": [6, 10, 14], "criterion": ["gini", "entropy"], "n_estimators": [100]},
            ),
            "hist_gradient_boosting": (
                HistGradientBoostingClassifier(random_state=random_state, early_stopping=False),
                {"max_depth": [3, 6], "learning_rate": [0.1], "max_iter": [100]},
            ),
        }
    raise ValueError(f"unknown search mode {search!r}; expected one of {SEARCH_MODES}")


def training_frame(
    rfm: pd.DataFrame, segments: pd.DataFrame, *, segment_column: str = "segment_name"
) -> pd.DataFrame:
    """Join R/F/M to the cluster segment names of the clustered customers.

    Parameters
    ----------
    rfm : frame with ``customer_id`` and the R/F/M columns.
    segments : frame with ``customer_id`` and ``segment_column``; rows with a null name (DBSCAN
        noise) are dropped, and so are rows whose ``is_fit_sample`` (when the column is there) is
        false: customers assigned to a cluster after the fit carry a predicted name, not one the
        clustering found, so they are neither trained nor tested on.
    segment_column : the name column in ``segments``.

    Returns
    -------
    DataFrame ``customer_id, recency_days, frequency, monetary, segment_name`` sorted by
    ``customer_id`` (so the split does not depend on the input row order).
    """
    usable = segments[segment_column].notna()
    if "is_fit_sample" in segments.columns:
        usable &= segments["is_fit_sample"].astype("bool")
    named = segments.loc[usable, ["customer_id", segment_column]]
    named = named.rename(columns={segment_column: "segment_name"})
    features = rfm.loc[:, ["customer_id", *RFM_FEATURES]]
    frame = features.merge(named, on="customer_id", how="inner", validate="one_to_one")
    frame["segment_name"] = frame["segment_name"].astype("str")
    return frame.sort_values("customer_id", kind="stable").reset_index(drop=True)


def split_train_test(
    frame: pd.DataFrame, *, test_size: float = 0.2, random_state: int = 42
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Split a ``training_frame`` into ``X_train, X_test, y_train, y_test``.

    The split is stratified by ``segment_name`` (each segment keeps its share in both parts),
    which needs at least two customers per segment; otherwise ``ValueError`` names the segments.
    """
    counts = frame["segment_name"].value_counts()
    too_small = sorted(counts.index[counts < 2])
    if too_small:
        raise ValueError(f"segments with fewer than 2 customers cannot be stratified: {too_small}")
    return train_test_split(
        rfm_features(frame),
        frame["segment_name"],
        test_size=test_size,
        random_state=random_state,
        stratify=frame["segment_name"],
    )


def class_metrics_frame(
    model_name: str, y_true: pd.Series, y_pred: np.ndarray, labels: list[str]
) -> pd.DataFrame:
    """Per-segment precision, recall, F1 and support of predictions (0 where undefined).

    Returns one row per label in ``labels`` order with ``CLASS_METRICS_COLUMNS``.
    """
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return pd.DataFrame(
        {
            "model": model_name,
            "segment_name": pd.Series(labels, dtype="str"),
            "precision": precision.astype("float64"),
            "recall": recall.astype("float64"),
            "f1": f1.astype("float64"),
            "support": support.astype("int64"),
        },
        columns=list(CLASS_METRICS_COLUMNS),
    )


def confusion_frame(y_true: pd.Series, y_pred: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Confusion matrix in long form, one row per (actual, predicted) pair of ``labels``.

    Zero cells are included; rows are ordered by actual then predicted segment in ``labels``
    order, so ``n_customers`` sums to ``len(y_true)``.
    """
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    actual, predicted = np.meshgrid(labels, labels, indexing="ij")
    return pd.DataFrame(
        {
            "actual_segment": pd.Series(actual.ravel(), dtype="str"),
            "predicted_segment": pd.Series(predicted.ravel(), dtype="str"),
            "n_customers": matrix.ravel().astype("int64"),
        },
        columns=list(CONFUSION_COLUMNS),
    )


def train_segment_classifier(
    rfm: pd.DataFrame,
    segments: pd.DataFrame,
    config: Mapping[str, Any] | None = None,
    *,
    segment_column: str = "segment_name",
) -> ClassifierResult:
    """Train and evaluate the segment classifier.

    Parameters
    ----------
    rfm : ``marts.customer_rfm`` (at least ``customer_id`` and the R/F/M columns).
    segments : the clustered customers' segment names, e.g. ``customer_embeddings`` of the t-SNE
        stage with ``segment_column="tsne_segment_name"``.
    config : overrides, see ``classifier_config``.
    segment_column : name column in ``segments``.

    Returns
    -------
    ``ClassifierResult``: the selected estimator and the frames ``classifier_metrics`` (one row
    per model family; ``is_selected`` marks the higher CV accuracy, ties to the earlier family),
    ``classifier_class_metrics`` and ``classifier_confusion_matrix`` (selected model, test set).
    """
    settings = classifier_config(config)
    frame = training_frame(rfm, segments, segment_column=segment_column)
    X_train, X_test, y_train, y_test = split_train_test(
        frame, test_size=settings["test_size"], random_state=settings["random_state"]
    )
    labels = sorted(frame["segment_name"].unique().tolist())
    rows = []
    fitted: dict[str, GridSearchCV] = {}
    for model_name, (estimator, grid) in search_spaces(
        settings["search"], settings["random_state"]
    ).items():
        search = GridSearchCV(
            clone(estimator), grid, scoring="accuracy", cv=settings["cv"], n_jobs=settings["n_jobs"]
        )
        started = time.perf_counter()
        with threadpool_limits(limits=settings["max_threads"]):
            search.fit(X_train, y_train)
        seconds = time.perf_counter() - started
        fitted[model_name] = search
        test_accuracy = accuracy_score(y_test, search.best_estimator_.predict(X_test))
        rows.append(
            (
                model_name,
                to_json(search.best_params_),
                float(search.best_score_),
                float(test_accuracy),
                len(X_train),
                len(X_test),
                False,
                settings["search"],
                seconds,
            )
        )
    metrics = pd.DataFrame(rows, columns=list(METRICS_COLUMNS))
    best = int(metrics["cv_accuracy"].to_numpy().argmax())
    metrics.loc[best, "is_selected"] = True
    metrics = metrics.astype(
        {
            "model": "str",
            "best_params": "str",
            "search": "str",
            "n_train": "int64",
            "n_test": "int64",
            "is_selected": "bool",
        }
    )
    chosen_name = str(metrics.at[best, "model"])
    chosen = fitted[chosen_name]
    predictions = chosen.best_estimator_.predict(X_test)
    return ClassifierResult(
        estimator=chosen.best_estimator_,
        model_name=chosen_name,
        best_params=dict(chosen.best_params_),
        n_training_rows=len(X_train),
        fit_seconds=float(metrics.at[best, "fit_seconds"]),
        metrics=metrics,
        class_metrics=class_metrics_frame(chosen_name, y_test, predictions, labels),
        confusion_matrix=confusion_frame(y_test, predictions, labels),
    )


def assign_segments(
    rfm: pd.DataFrame,
    segments: pd.DataFrame,
    estimator: ClassifierMixin,
    *,
    segment_column: str = "segment_name",
) -> pd.DataFrame:
    """Give every customer of ``rfm`` a segment.

    Customers with a non-null name in ``segments`` keep it (``assignment_method`` =
    'clustered'); everyone else (outliers, DBSCAN noise, customers absent from the clustering)
    gets ``estimator.predict`` on their R/F/M ('classified').

    Returns
    -------
    DataFrame ``customer_id, segment_name, assignment_method`` sorted by ``customer_id``.
    """
    named = segments.loc[segments[segment_column].notna(), ["customer_id", segment_column]]
    named = named.rename(columns={segment_column: "segment_name"})
    frame = (
        rfm.loc[:, ["customer_id", *RFM_FEATURES]]
        .merge(named, on="customer_id", how="left", validate="one_to_one")
        .sort_values("customer_id", kind="stable")
        .reset_index(drop=True)
    )
    unnamed = frame["segment_name"].isna().to_numpy()
    names = frame["segment_name"].astype("object").to_numpy(copy=True)
    if unnamed.any():
        names[unnamed] = estimator.predict(rfm_features(frame.loc[unnamed]))
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype("int64"),
            "segment_name": pd.Series(names, dtype="str"),
            "assignment_method": pd.Series(
                np.where(unnamed, "classified", "clustered"), dtype="str"
            ),
        },
        columns=list(ASSIGNMENT_COLUMNS),
    )
