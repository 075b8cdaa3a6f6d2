"""Segment history and retraining stability: the classifier applied across as-of dates.

``classify_history`` gives every row of the RFM history (one row per customer and as-of date) the
part II segment predicted by one classifier, the registry's current one, so a segment name means
the same thing (the same region of R, F, M) at every date and a move between segments is a change
in the customer's behaviour, never a change of model.

``retraining_stability`` measures what a retrain does to the names: the share of customers whose
predicted segment differs between the current classifier and the one registered for the
previous data window, both applied to the same as-of data. It also records the share that would
still differ under the best one-to-one renaming of the current segments to the previous ones
(``linear_sum_assignment`` on the cross-tab of the two predictions): what the retrain moved by
shifting boundaries between segments, which no naming rule can undo. The gap between the two
shares is what naming alone moved; names inherited from the previous model
(``naming.inherit_names``) keep it near zero.

The dbt models call ``score_segment_history`` (``ml_customer_segment_history_scores``: one row per
customer and as-of date, key ``customer_id, rfm_as_of``) and ``measure_retraining_stability``
(``ml_retraining_stability``: one row per pair of classifiers, key ``model_version,
previous_model_version``), both with frames: the classifier fit's row names the current version,
the registry rows hold the artifacts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.base import ClassifierMixin

from retail_segments.ml.artifacts import (
    cached_model,
    current_model_version,
    load_model,
    registered_artifact,
)
from retail_segments.ml.embedding import rfm_features

# The registry name of the classifier the history is scored with.
SEGMENT_CLASSIFIER = "segment_classifier"

HISTORY_SCORE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "rfm_as_of",
    "segment_name",
    "model_version",
)
# The SQL type of each HISTORY_SCORE_COLUMNS column (the table a distributed scoring writes).
HISTORY_SCORE_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "customer_id": "bigint",
        "rfm_as_of": "timestamp",
        "segment_name": "string",
        "model_version": "string",
    }
)
STABILITY_DTYPES: Mapping[str, str] = MappingProxyType(
    {
        "model_version": "str",
        "previous_model_version": "str",
        "previous_data_window_end": "datetime64[us]",
        "scored_as_of": "datetime64[us]",
        "n_customers": "int64",
        "n_changed": "int64",
        "share_changed": "float64",
        "n_changed_after_renaming": "int64",
        "share_changed_after_renaming": "float64",
    }
)


def classify_history(
    rfm_history: pd.DataFrame, estimator: ClassifierMixin, model_version: str
) -> pd.DataFrame:
    """Predict the segment of every customer at every as-of date with one classifier.

    Parameters
    ----------
    rfm_history : one row per customer and as-of date with ``customer_id``, ``rfm_as_of`` and the
        R/F/M columns (``int_customer_rfm__history``).
    estimator : the fitted segment classifier.
    model_version : its registry version, copied to every row.

    Returns
    -------
    DataFrame ``customer_id, rfm_as_of, segment_name, model_version`` sorted by ``rfm_as_of``
    then ``customer_id``; empty (with those columns) when ``rfm_history`` is empty.
    """
    frame = rfm_history.sort_values(["rfm_as_of", "customer_id"], kind="stable").reset_index(
        drop=True
    )
    names = estimator.predict(rfm_features(frame)) if len(frame) else np.array([], dtype="str")
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].astype("int64"),
            "rfm_as_of": pd.to_datetime(frame["rfm_as_of"]),
            "segment_name": pd.Series(names, dtype="str"),
            "model_version": pd.Series([model_version] * len(frame), dtype="str"),
        },
        columns=list(HISTORY_SCORE_COLUMNS),
    )


def changed_share(
    rfm: pd.DataFrame, previous: ClassifierMixin, current: ClassifierMixin
) -> tuple[int, int, int]:
    """Score the same customers with two classifiers.

    Returns ``(n_customers, n_changed, n_changed_after_renaming)``: how many rows ``rfm`` has, on
    how many the two predicted segments differ, and on how many they still differ after the
    current segment names are renamed one-to-one to the previous ones in the way that makes the
    most predictions agree (a current segment without a partner keeps all its customers changed).
    """
    features = rfm_features(rfm)
    if features.empty:
        return 0, 0, 0
    before = np.asarray(previous.predict(features), dtype="str")
    after = np.asarray(current.predict(features), dtype="str")
    counts = pd.crosstab(after, before).to_numpy()
    rows, columns = linear_sum_assignment(-counts)
    kept = int(counts[rows, columns].sum())
    return len(features), int(np.count_nonzero(before != after)), len(features) - kept


def previous_versions(registry: pd.DataFrame, current_version: str) -> pd.DataFrame:
    """Registry rows of the data window just before the current version's.

    Parameters
    ----------
    registry : ``model_registry`` rows of one model name (``model_version``,
        ``data_window_end``, ``artifact``).
    current_version : the version whose predecessor is wanted.

    Returns
    -------
    The rows whose ``data_window_end`` is the latest one strictly before the current version's
    (several when several versions share that window), sorted by ``model_version``; empty when
    the current version has the earliest window. Raises ``ValueError`` if ``current_version`` is
    not in ``registry``.
    """
    current = registry.loc[registry["model_version"] == current_version]
    if current.empty:
        raise ValueError(f"model version {current_version!r} is not in the registry")
    window_end = current["data_window_end"].iloc[0]
    earlier = registry.loc[registry["data_window_end"] < window_end]
    if earlier.empty:
        return earlier
    latest = earlier.loc[earlier["data_window_end"] == earlier["data_window_end"].max()]
    return latest.sort_values("model_version", kind="stable").reset_index(drop=True)


def retraining_stability(
    rfm: pd.DataFrame,
    registry: pd.DataFrame,
    current_version: str,
    *,
    load: Callable[[bytes], ClassifierMixin] = load_model,
) -> pd.DataFrame:
    """Share of customers whose segment changes between the previous and the current classifier.

    Parameters
    ----------
    rfm : the as-of data both classifiers score (``marts.customer_rfm`` of the current model's
        training as-of date: ``customer_id``, R/F/M and ``rfm_as_of``).
    registry : ``model_registry`` rows of the segment classifier (``model_version``,
        ``data_window_end``, ``artifact``).
    current_version : the registry version of the current classifier.
    load : turns an artifact into an estimator (``artifacts.load_model``, with its allowlist).

    Returns
    -------
    One row per previous version (see ``previous_versions``; none for the first model) with the
    columns of ``STABILITY_DTYPES``: the two versions, the previous data window end, the as-of
    date scored, customers scored, how many changed segment and their share, and how many would
    still change under the best renaming and their share (shares are 0 when nobody was scored).
    """
    previous = previous_versions(registry, current_version)
    rows: list[tuple] = []
    if not previous.empty:
        artifact = registry.loc[registry["model_version"] == current_version, "artifact"].iloc[0]
        current = load(artifact)
        scored_as_of = pd.Timestamp(rfm["rfm_as_of"].max())
        rows_of_previous: list[Any] = list(previous.itertuples(index=False))
        for row in rows_of_previous:
            n_customers, n_changed, n_renamed = changed_share(rfm, load(row.artifact), current)
            rows.append(
                (
                    current_version,
                    row.model_version,
                    pd.Timestamp(row.data_window_end),
                    scored_as_of,
                    n_customers,
                    n_changed,
                    n_changed / n_customers if n_customers else 0.0,
                    n_renamed,
                    n_renamed / n_customers if n_customers else 0.0,
                )
            )
    return pd.DataFrame(rows, columns=list(STABILITY_DTYPES)).astype(STABILITY_DTYPES)


def _classify_with(artifact: bytes, version: str, rfm_history: pd.DataFrame) -> pd.DataFrame:
    return classify_history(rfm_history, cached_model(artifact), version)


def history_scorer(
    fit: pd.DataFrame, registry: pd.DataFrame
) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The row-wise scoring of ``ml_customer_segment_history_scores``, to apply to any batch of
    RFM history rows (``customer_id``, ``rfm_as_of``, R/F/M): `classify_history` with the
    classifier this build trained (``fit``'s version), carried as the registered skops artifact
    of ``registry`` and loaded once per process through the type allowlist (checked here
    already). Returns ``HISTORY_SCORE_COLUMNS`` per batch."""
    version = current_model_version(fit)
    artifact = registered_artifact(registry, version)
    cached_model(artifact)
    return partial(_classify_with, artifact, version)


def score_segment_history(
    rfm_history: pd.DataFrame, fit: pd.DataFrame, registry: pd.DataFrame
) -> pd.DataFrame:
    """What ``ml_customer_segment_history_scores`` returns: ``classify_history`` with the
    classifier this build trained.

    Parameters
    ----------
    rfm_history : ``int_customer_rfm__history`` (``customer_id``, ``rfm_as_of``, R/F/M).
    fit : ``ml_segment_classifier_fit`` (one row; its ``model_version`` is the current model).
    registry : ``ml.model_registry`` (``model_version``, ``artifact``): the estimator is loaded
        from here through the type allowlist.

    Returns
    -------
    ``HISTORY_SCORE_COLUMNS``, one row per customer and as-of date (key).
    """
    return history_scorer(fit, registry)(rfm_history)


def measure_retraining_stability(
    rfm: pd.DataFrame, fit: pd.DataFrame, registry: pd.DataFrame, published: pd.DataFrame
) -> pd.DataFrame:
    """What ``ml_retraining_stability`` returns: ``retraining_stability`` of the classifier this
    build trained against the published segment classifiers of the data window before it.

    Parameters
    ----------
    rfm : ``marts.customer_rfm`` (``customer_id``, R/F/M, ``rfm_as_of``).
    fit : ``ml_segment_classifier_fit`` (one row; its ``model_version`` is the current model).
    registry : ``ml.model_registry`` (``model_name``, ``model_version``, ``data_window_end``,
        ``artifact``); only the ``segment_classifier`` rows are compared.
    published : ``ml.model_publications`` (``model_version``): the versions a successful build
        published. A registered version that is neither published nor the current one (the model
        of a build that failed or was killed) is never a previous model.

    Returns
    -------
    ``STABILITY_DTYPES`` columns, one row per previous version (key ``model_version,
    previous_model_version``); none for the first model.
    """
    current_version = current_model_version(fit)
    eligible = registry["model_version"].isin(published["model_version"]) | (
        registry["model_version"] == current_version
    )
    classifiers = registry.loc[
        eligible & (registry["model_name"] == SEGMENT_CLASSIFIER),
        ["model_version", "data_window_end", "artifact"],
    ].reset_index(drop=True)
    classifiers["artifact"] = classifiers["artifact"].map(bytes)
    return retraining_stability(rfm, classifiers, current_version)
