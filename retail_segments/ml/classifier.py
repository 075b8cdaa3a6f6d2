"""Part III: a classifier that predicts the t-SNE segment of a customer from R, F and M.

``train_segment_classifier`` splits the clustered customers 80/20 (stratified by segment, so every
segment keeps its share in both parts), grid-searches two model families with 5-fold
cross-validated accuracy on the training part, keeps the family with the higher CV accuracy and
predicts every training and test customer with it. ``assign_segments`` then gives every customer
a segment: the cluster name where there is one, otherwise the classifier's prediction.

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

``fit_segment_classifier`` is what the dbt model ``ml_segment_classifier_fit`` calls: the fit as
one row keyed by ``model_version`` (``results.fit_record``) whose keys are the registry fields
(``artifacts.build_model_registry_row``) plus the selected family (``model``) and ``search``, and
whose result tables are ``candidates`` (one row per model family, ``METRICS_COLUMNS``) and
``customers`` (one row per customer trained or tested on, ``PREDICTION_COLUMNS``). The per-class
metrics and the confusion matrix of the test split are computed from ``customers`` in SQL
(``classifier_class_metrics``, ``classifier_confusion_matrix``). ``score_customer_segments`` is
what ``ml_customer_segment_scores`` calls. The settings are `ClassifierSettings` (``SETTINGS``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.base import ClassifierMixin, clone
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.metrics import accuracy_score
from sklearn.model_selection import GridSearchCV, train_test_split

from retail_segments.ml.artifacts import (
    build_model_registry_row,
    cached_model,
    current_model_version,
    registered_artifact,
    to_json,
)
from retail_segments.ml.config import SettingsModel, as_settings, parse_meta
from retail_segments.ml.embedding import RFM_FEATURES, rfm_features
from retail_segments.ml.results import fit_record
from retail_segments.ml.settings import CLASSIFIER_SETTINGS, ClassifierSettings
from retail_segments.ml.threads import fit_threads, fit_workers

SEARCH_MODES: tuple[str, ...] = ("fast", "full")
# The dbt model of the fit (its meta block is validated under this name) and the registry name.
CLASSIFIER_MODEL = "ml_segment_classifier_fit"
SEGMENT_CLASSIFIER = "segment_classifier"

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
PREDICTION_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "split",
    "actual_segment",
    "predicted_segment",
)
ASSIGNMENT_COLUMNS: tuple[str, ...] = ("customer_id", "segment_name", "assignment_method")
SCORE_COLUMNS: tuple[str, ...] = (*ASSIGNMENT_COLUMNS, "model_version")
# The SQL type of each SCORE_COLUMNS column (the table a distributed scoring writes).
SCORE_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "customer_id": "bigint",
        "segment_name": "string",
        "assignment_method": "string",
        "model_version": "string",
    }
)
# What segment_scorer's batches hold.
SCORING_INPUT_COLUMNS: tuple[str, ...] = ("customer_id", *RFM_FEATURES, "tsne_segment_name")


SETTINGS = CLASSIFIER_SETTINGS


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of ``train_segment_classifier``.

    ``estimator`` is the selected family's best estimator, refitted on the training split (the
    exact model whose test metrics are reported). ``model_name`` names its family, ``search`` the
    search mode, ``n_training_rows`` its training rows, ``fit_seconds`` the wall-clock time of
    its search. ``metrics`` has one row per family (``METRICS_COLUMNS``); ``predictions`` one row
    per customer trained or tested on (``PREDICTION_COLUMNS``, sorted by ``customer_id``): the
    split, the customer's segment and the one the selected estimator predicts.
    """

    estimator: ClassifierMixin
    model_name: str
    search: str
    best_params: dict[str, Any]
    n_training_rows: int
    fit_seconds: float
    metrics: pd.DataFrame
    predictions: pd.DataFrame

    @property
    def selected(self) -> pd.Series:
        """The ``metrics`` row of the selected family."""
        return self.metrics.loc[self.metrics["is_selected"]].iloc[0]


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


def _predictions(
    frame: pd.DataFrame,
    estimator: ClassifierMixin,
    X_train: pd.DataFrame,
    X_test: pd.DataFrame,
) -> pd.DataFrame:
    """``PREDICTION_COLUMNS`` for the rows of a ``training_frame`` that were split into
    ``X_train`` and ``X_test`` (their index is the frame's), sorted by ``customer_id``."""
    parts = [
        pd.DataFrame(
            {
                "customer_id": frame.loc[X.index, "customer_id"].astype("int64"),
                "split": pd.Series([split] * len(X), index=X.index, dtype="str"),
                "actual_segment": frame.loc[X.index, "segment_name"].astype("str"),
                "predicted_segment": pd.Series(
                    estimator.predict(X) if len(X) else [], index=X.index, dtype="str"
                ),
            },
            columns=list(PREDICTION_COLUMNS),
        )
        for split, X in (("train", X_train), ("test", X_test))
    ]
    return pd.concat(parts).sort_values("customer_id", kind="stable").reset_index(drop=True)


def train_segment_classifier(
    rfm: pd.DataFrame,
    segments: pd.DataFrame,
    config: Mapping[str, Any] | SettingsModel | None = None,
    *,
    segment_column: str = "segment_name",
) -> ClassifierResult:
    """Train and evaluate the segment classifier.

    Parameters
    ----------
    rfm : ``marts.customer_rfm`` (at least ``customer_id`` and the R/F/M columns).
    segments : the clustered customers' segment names, e.g. ``customer_embeddings`` with
        ``segment_column="tsne_segment_name"`` (see ``training_frame``).
    config : `ClassifierSettings`, or a mapping of overrides (validated by it).
    segment_column : name column in ``segments``.

    Returns
    -------
    ``ClassifierResult``: the selected estimator, ``metrics`` (one row per model family;
    ``is_selected`` marks the higher CV accuracy, ties to the earlier family) and
    ``predictions`` of every training and test customer by the selected estimator.
    """
    settings = as_settings(ClassifierSettings, config, name=f"{CLASSIFIER_MODEL}.meta.classifier")
    frame = training_frame(rfm, segments, segment_column=segment_column)
    X_train, X_test, y_train, y_test = split_train_test(
        frame, test_size=settings.test_size, random_state=settings.random_state
    )
    rows = []
    fitted: dict[str, GridSearchCV] = {}
    for model_name, (estimator, grid) in search_spaces(
        settings.search, settings.random_state
    ).items():
        search = GridSearchCV(
            clone(estimator), grid, scoring="accuracy", cv=settings.cv, n_jobs=settings.n_jobs
        )
        started = time.perf_counter()
        with fit_threads(settings.max_threads), fit_workers():
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
                settings.search,
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
    return ClassifierResult(
        estimator=chosen.best_estimator_,
        model_name=chosen_name,
        search=settings.search,
        best_params=dict(chosen.best_params_),
        n_training_rows=len(X_train),
        fit_seconds=float(metrics["fit_seconds"].to_numpy()[best]),
        metrics=metrics,
        predictions=_predictions(frame, chosen.best_estimator_, X_train, X_test),
    )


def _one_row(frame: pd.DataFrame, name: str) -> pd.Series:
    if len(frame) != 1:
        raise ValueError(f"{name} must have exactly one row, it has {len(frame)}")
    return frame.iloc[0]


def registry_row(result: ClassifierResult, window_start: Any, window_end: Any) -> pd.DataFrame:
    """The model registry row of a trained segment classifier (``artifacts.REGISTRY_COLUMNS``):
    its artifact, the selected family, search and accuracies as metrics, the data window
    ``[window_start, window_end]``, created at ``window_end`` (so rebuilds reproduce the version).
    """
    selected = result.selected
    return build_model_registry_row(
        result.estimator,
        model_name=SEGMENT_CLASSIFIER,
        metrics={
            "model": result.model_name,
            "search": selected["search"],
            "cv_accuracy": selected["cv_accuracy"],
            "test_accuracy": selected["test_accuracy"],
            "n_test": selected["n_test"],
        },
        training_seconds=result.fit_seconds,
        n_training_rows=result.n_training_rows,
        data_window_start=window_start,
        data_window_end=window_end,
        created_at=window_end,
    )


def fit_segment_classifier(
    rfm: pd.DataFrame,
    embeddings: pd.DataFrame,
    window: pd.DataFrame,
    meta: Mapping[str, Any] | None = None,
) -> pa.Table:
    """The fit of ``ml_segment_classifier_fit``: one row keyed by ``model_version``.

    Parameters
    ----------
    rfm : ``marts.customer_rfm`` (``customer_id``, R/F/M and ``rfm_as_of``, the data window's end,
        also ``created_at``: rebuilds reproduce).
    embeddings : ``ml.customer_embeddings`` (``customer_id``, ``tsne_segment_name``,
        ``is_fit_sample``): only the customers the clustering was fitted on are trained and
        tested on.
    window : ``int_sales_lines__data_window``, one row: ``data_window_start`` (first invoice).
    meta : the model's meta block, key ``classifier`` (`ClassifierSettings`); an unknown key or
        value raises `ConfigError`.

    Returns
    -------
    One-row ``pyarrow.Table``: keys ``model_version``, ``model_name``, ``model`` (family),
    ``search``, then the rest of the registry row (``artifacts.REGISTRY_COLUMNS``); results
    ``candidates`` (``METRICS_COLUMNS``) and ``customers`` (``PREDICTION_COLUMNS``).
    """
    settings = parse_meta(meta, SETTINGS, model=CLASSIFIER_MODEL)["classifier"]
    start = _one_row(window, "the data window (int_sales_lines__data_window)")
    if "rfm_as_of" not in rfm.columns or rfm.empty:
        raise ValueError("rfm must hold customers with their rfm_as_of (marts.customer_rfm)")
    window_start = start["data_window_start"]
    window_end = pd.Timestamp(rfm["rfm_as_of"].max())
    result = train_segment_classifier(rfm, embeddings, settings, segment_column="tsne_segment_name")
    registry = registry_row(result, window_start, window_end)
    row = pa.Table.from_pandas(registry, preserve_index=False)
    keys: dict[str, object] = {
        "model_version": row.column("model_version")[0],
        "model_name": row.column("model_name")[0],
        "model": result.model_name,
        "search": result.search,
    }
    keys.update({name: row.column(name)[0] for name in row.column_names if name not in keys})
    return fit_record(keys, {"candidates": result.metrics, "customers": result.predictions})


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


def _score_segments(artifact: bytes, version: str, customers: pd.DataFrame) -> pd.DataFrame:
    estimator = cached_model(artifact)
    named = customers.loc[:, ["customer_id", "tsne_segment_name"]]
    scores = assign_segments(customers, named, estimator, segment_column="tsne_segment_name")
    scores["model_version"] = pd.Series([version] * len(scores), dtype="str")
    return scores.loc[:, list(SCORE_COLUMNS)]


def segment_scorer(
    fit: pd.DataFrame, registry: pd.DataFrame
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The row-wise scoring of ``ml_customer_segment_scores``, to apply to any batch of customers.

    Parameters
    ----------
    fit : ``ml_segment_classifier_fit`` (one row; its ``model_version`` is this build's model).
    registry : ``ml.model_registry`` (``model_version``, ``artifact``).

    Returns
    -------
    A picklable function from a batch with ``SCORING_INPUT_COLUMNS`` (``marts.customer_rfm``
    left-joined to ``ml.customer_embeddings``) to its ``SCORE_COLUMNS`` (`assign_segments` plus
    the version), sorted by ``customer_id``. It carries the registered skops artifact and loads
    it once per process (`artifacts.cached_model`, the type allowlist); the artifact is checked
    here already, so an untrusted one stops the model before any batch is scored.
    """
    version = current_model_version(fit)
    artifact = registered_artifact(registry, version)
    cached_model(artifact)
    return partial(_score_segments, artifact, version)


def score_customer_segments(
    rfm: pd.DataFrame,
    embeddings: pd.DataFrame,
    fit: pd.DataFrame,
    registry: pd.DataFrame,
) -> pd.DataFrame:
    """What ``ml_customer_segment_scores`` returns: every customer's part II segment.

    Parameters
    ----------
    rfm : ``marts.customer_rfm`` (``customer_id`` and R/F/M).
    embeddings : ``ml.customer_embeddings`` (``customer_id``, ``tsne_segment_name``).
    fit : ``ml_segment_classifier_fit`` (one row; its ``model_version`` is this build's model).
    registry : ``ml.model_registry`` (``model_version``, ``artifact``): the estimator is loaded
        from here, through the type allowlist (``artifacts.load_model``).

    Returns
    -------
    ``SCORE_COLUMNS``, one row per customer of ``rfm`` sorted by ``customer_id`` (key):
    ``assign_segments`` plus the ``model_version`` used.
    """
    customers = rfm.loc[:, ["customer_id", *RFM_FEATURES]].merge(
        embeddings.loc[:, ["customer_id", "tsne_segment_name"]],
        on="customer_id",
        how="left",
        validate="one_to_one",
    )
    return segment_scorer(fit, registry)(customers)
