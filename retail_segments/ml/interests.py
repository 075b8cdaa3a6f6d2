"""Customer interest categories and their prediction for new customers from their first orders.

Inputs are two tables built in SQL (``models/intermediate/interests``), one row per customer,
feature window and number of orders seen (``KEY_COLUMNS``):

- ``baskets`` (``int_customer_interest__baskets``): ``is_new_customer``, ``n_orders``,
  ``min/mean/max_basket_value``, ``total_spend``, ``first_order_at``, ``last_order_at`` of the
  orders in the window;
- ``shares`` (``int_customer_interest__spend_shares``): one row per product category with spend
  in the window, ``spend_share``.

Feature windows: ``before_cutoff`` (customers whose first purchase is before the cutoff, their
orders before it: the clustering's training data), ``whole_history`` (every customer, every
order) and ``first_orders`` (the first ``orders_seen`` orders; for customers of the training
period only orders before the cutoff count).

``fit_customer_interests``:

1. Features (``interest_features``): the spend share of every product category plus
   ``BASKET_FEATURES``. ``build_preprocessing`` takes ``log1p`` of the basket features (money and
   counts are heavy-tailed) and standardises every column.
2. Fit sample (``interest_fit_sample``): at most ``sampling.sample_size`` training customers
   (``before_cutoff`` rows), drawn as the segmentation draws its fit sample
   (``segmentation.fit_sample_mask``, stratified by recency, orders and spend before the
   cutoff, reproducible from ``random_state``). With fewer training customers than that, as in
   the real file, everyone is in it and nothing changes.
3. Clustering: KMeans on the fit sample's ``before_cutoff`` rows for every k of ``k_range``, the
   highest silhouette kept (``clustering.evaluate_candidates`` / ``select_candidate``). The other
   training customers are assigned to the nearest centroid (KMeans ``predict``). Interest
   category ids are stable: 0 has the most training customers (fitted and assigned), ties to the
   smallest customer id.
4. Names (``name_interests``) from each category's profile over all training customers, e.g.
   "christmas / decoration / tree (low spend)".
5. Every customer's interest category: the fitted clustering applied to its ``whole_history``
   row. For a new customer this is the "truth" its predictions are judged against.
6. Classifier: a random forest fitted on the ``first_orders`` rows of the fit sample's customers
   (before the cutoff), each labelled with the customer's fitted interest category. It predicts
   the interest category of every new customer from its first 1, 2, ... orders; the nearest
   fitted cluster of the same features is kept beside it as a reference.

Results (``CustomerInterests.tables``): ``candidates`` (per k), ``customers`` (per customer: the
category of its whole history, its category in the fit when it is a training customer, and
``is_fit_sample``: the customer's rows trained both fits, always false for new customers),
``categories`` (per interest category: its name and what the name was made from), ``predictions``
(per new customer and orders seen) and ``model_fits``. The dbt model ``ml_customer_interest_fit``
fits with ``fit_interest_models``, scores with its scorers (in Spark's workers on Spark) and
returns ``CustomerInterests.record``, one fit record; the profiles, their shares and the
evaluation of the predictions are aggregates computed from them in SQL. Settings:
``InterestSettings`` (the model's ``meta.customer_interests``) and ``config.SamplingSettings``
(``meta.sampling``).

Scaling: KMeans with ``n_init`` restarts per candidate k and the random forest grow with the
number of training customers (the forest faster than linearly); on the fit sample both cost what
they cost on the real file, and only the nearest-centroid assignment and the scoring grow
(linearly).

Nothing here sees a line on or after the cutoff except to score it: both fits use only the
``before_cutoff`` and training ``first_orders`` rows, and ``model_fits`` records the rows and the
last order time each fit saw. Fits are deterministic (fixed ``random_state``, and a fit sample
drawn from the training customers only), so rebuilding with later lines added reproduces the same
models and only scores the new rows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from retail_segments.ml.clustering import select_kmeans
from retail_segments.ml.config import SamplingSettings
from retail_segments.ml.products import MODEL_FIT_COLUMNS, SELECTION_COLUMNS
from retail_segments.ml.results import fit_record
from retail_segments.ml.segmentation import fit_sample_mask
from retail_segments.ml.settings import INTEREST_SETTINGS, InterestSettings
from retail_segments.ml.threads import fit_threads

KEY_COLUMNS: tuple[str, ...] = ("customer_id", "feature_window", "orders_seen")
FEATURE_WINDOWS: tuple[str, ...] = ("before_cutoff", "whole_history", "first_orders")
BASKET_FEATURES: tuple[str, ...] = (
    "n_orders",
    "min_basket_value",
    "mean_basket_value",
    "max_basket_value",
    "total_spend",
)
SPEND_LEVELS: tuple[str, ...] = ("low", "mid", "high")
FREQUENT_FACTOR = 2.0


SETTINGS = INTEREST_SETTINGS

CATEGORY_COLUMNS: tuple[str, ...] = (
    "interest_category",
    "interest_name",
    "spend_level",
    "is_frequent",
    "focus_product_category",
    "focus_lift",
)
CUSTOMER_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "interest_category",
    "training_interest_category",
    "is_fit_sample",
)
PREDICTION_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "orders_seen",
    "predicted_interest_category",
    "prediction_probability",
    "nearest_interest_category",
)


def share_column(category: int) -> str:
    """Name of the feature column holding the spend share of product category ``category``."""
    return f"share_{category}"


def interest_settings(config: Mapping[str, Any] | None = None) -> InterestSettings:
    """The ``customer_interests`` meta block (None or {} for every default) as validated
    settings; raises ``ConfigError`` naming the block, the key, the value and the rule."""
    return InterestSettings.parse(config, name="ml_customer_interest_fit.meta.customer_interests")


def sampling_settings(sampling: Mapping[str, Any] | None = None) -> SamplingSettings:
    """The ``sampling`` meta block of ``ml_customer_interest_fit`` as validated settings."""
    return SamplingSettings.parse(sampling, name="ml_customer_interest_fit.meta.sampling")


def interest_features(
    baskets: pd.DataFrame, shares: pd.DataFrame, categories: Sequence[int]
) -> pd.DataFrame:
    """Put the basket statistics and the spend shares of each window side by side.

    Parameters
    ----------
    baskets : one row per ``KEY_COLUMNS`` with ``BASKET_FEATURES`` (and any other columns).
    shares : one row per ``KEY_COLUMNS`` and ``product_category`` with ``spend_share``.
    categories : every product category id; each gets a ``share_<id>`` column.

    Returns
    -------
    ``baskets`` sorted by ``KEY_COLUMNS`` with one ``share_<id>`` column per category (0 where the
    window has no spend in it), float64. Raises ``ValueError`` if ``shares`` names a category not
    in ``categories`` or a window missing from ``baskets``.
    """
    unknown = sorted(set(shares["product_category"]) - set(categories))
    if unknown:
        raise ValueError(f"spend shares name unknown product categories {unknown}")
    keys = list(KEY_COLUMNS)
    wide = shares.pivot_table(
        index=keys, columns="product_category", values="spend_share", aggfunc="sum"
    ).reindex(columns=list(categories))
    wide.columns = [share_column(int(c)) for c in wide.columns]
    ordered = baskets.sort_values(keys, kind="stable").reset_index(drop=True)
    joined = ordered.merge(
        wide.reset_index(), on=keys, how="outer", sort=False, indicator=True, validate="one_to_one"
    )
    orphans = joined.loc[joined["_merge"] == "right_only", keys]
    if not orphans.empty:
        raise ValueError(
            f"spend shares for windows without basket rows: {orphans.iloc[0].tolist()}"
        )
    joined = joined.drop(columns="_merge").sort_values(keys, kind="stable").reset_index(drop=True)
    share_columns = [share_column(int(c)) for c in categories]
    joined[share_columns] = joined[share_columns].fillna(0.0).astype("float64")
    joined[list(BASKET_FEATURES)] = joined[list(BASKET_FEATURES)].astype("float64")
    return joined


def feature_columns(categories: Sequence[int]) -> list[str]:
    """The model's input columns: one share per category, then ``BASKET_FEATURES``."""
    return [*(share_column(int(c)) for c in categories), *BASKET_FEATURES]


def build_preprocessing(categories: Sequence[int]) -> Pipeline:
    """Unfitted ``Pipeline(ColumnTransformer(log1p of BASKET_FEATURES, shares as they are),
    StandardScaler())`` over ``feature_columns(categories)``; outputs a float array."""
    logged = ColumnTransformer(
        [
            ("log_basket", FunctionTransformer(np.log1p), list(BASKET_FEATURES)),
            ("shares", "passthrough", [share_column(int(c)) for c in categories]),
        ]
    )
    return Pipeline([("log", logged), ("scale", StandardScaler())])


def stable_interest_ids(labels: np.ndarray, customer_ids: pd.Series) -> np.ndarray:
    """Renumber raw cluster labels 0..k-1: most customers first, ties to the smallest id."""
    frame = pd.DataFrame({"label": np.asarray(labels), "customer_id": customer_ids.to_numpy()})
    stats = frame.groupby("label").agg(size=("customer_id", "size"), first=("customer_id", "min"))
    ranked = stats.sort_values(["size", "first"], ascending=[False, True], kind="stable")
    mapping = {label: new_id for new_id, label in enumerate(ranked.index)}
    return np.array([mapping[label] for label in frame["label"]], dtype="int64")


def spend_levels(median_spend: pd.Series) -> pd.Series:
    """'low', 'mid' or 'high' for each category from the rank of its median total spend.

    Rank the categories ascending (ties share their average rank) and scale to
    ``level = (rank - 1) / (k - 1)``; below 1/3 is 'low', above 2/3 'high', else 'mid' (a single
    category is 'mid'). Returns a str Series on the same index.
    """
    k = len(median_spend)
    if k == 1:
        return pd.Series(SPEND_LEVELS[1], index=median_spend.index, dtype="str")
    level = (median_spend.rank(method="average") - 1) / (k - 1)
    low, mid, high = SPEND_LEVELS
    names = np.select([level < 1 / 3, level > 2 / 3], [low, high], default=mid)
    return pd.Series(names, index=median_spend.index, dtype="str")


def name_interests(
    features: pd.DataFrame,
    interest_ids: np.ndarray,
    category_labels: Mapping[int, str],
    focus_lift: float = 1.5,
) -> pd.DataFrame:
    """Name every interest category from its profile.

    The profile of a category is the mean spend share of each product category over its
    customers and their median ``total_spend`` and ``n_orders``. Its focus is the product
    category with the highest lift (mean share in the interest category / mean share over all
    customers; ties to the smaller id). The name is "<focus label> (<spend level> spend)" when
    the lift is at least ``focus_lift``, else "broad mix (<spend level> spend)"; spend levels
    come from ``spend_levels``. A category whose median ``n_orders`` is at least
    ``FREQUENT_FACTOR`` times the median over all customers is frequent: ", frequent" follows
    the spend level. Names that still repeat get " (2)", " (3)", ... in ``interest_category``
    order.

    Parameters
    ----------
    features : ``interest_features`` rows of the clustered customers.
    interest_ids : their stable interest category ids.
    category_labels : ``{product category id: label}`` for every product category.

    Returns
    -------
    DataFrame with ``CATEGORY_COLUMNS``, one row per interest category, sorted by id (its size
    and the rest of its profile are computed in SQL: ``customer_interest_profiles``).
    """
    categories = sorted(category_labels)
    share_columns = [share_column(c) for c in categories]
    frame = features.loc[:, [*share_columns, "total_spend", "n_orders"]].assign(
        interest=interest_ids
    )
    grouped = frame.groupby("interest", sort=True)
    mean_shares = grouped[share_columns].mean()
    overall = frame[share_columns].mean().replace(0.0, np.nan)
    lift = (mean_shares / overall).fillna(0.0)
    focus_position = np.argmax(lift.to_numpy(), axis=1)
    focus = [categories[position] for position in focus_position]
    focus_value = lift.to_numpy()[np.arange(len(lift)), focus_position]
    levels = spend_levels(grouped["total_spend"].median())
    frequent = grouped["n_orders"].median() >= FREQUENT_FACTOR * frame["n_orders"].median()
    names: list[str] = []
    for category, value, level, often in zip(focus, focus_value, levels, frequent, strict=True):
        topic = category_labels[category] if value >= focus_lift else "broad mix"
        names.append(f"{topic} ({level} spend{', frequent' if often else ''})")
    counts: dict[str, int] = {}
    unique: list[str] = []
    for name in names:
        counts[name] = counts.get(name, 0) + 1
        unique.append(name if counts[name] == 1 else f"{name} ({counts[name]})")
    return pd.DataFrame(
        {
            "interest_category": pd.Series(lift.index, dtype="int64"),
            "interest_name": pd.Series(unique, dtype="str"),
            "spend_level": pd.Series(levels.to_numpy(), dtype="str"),
            "is_frequent": pd.Series(frequent.to_numpy(), dtype="bool"),
            "focus_product_category": pd.Series(focus, dtype="int64"),
            "focus_lift": pd.Series(focus_value, dtype="float64"),
        },
        columns=list(CATEGORY_COLUMNS),
    )


def build_classifier(settings: Mapping[str, Any]) -> RandomForestClassifier:
    """Unfitted random forest of the new-customer prediction: ``n_estimators`` trees,
    ``min_samples_leaf``, balanced class weights (rare interests count as much as common ones),
    ``random_state``, one job."""
    return RandomForestClassifier(
        n_estimators=settings["n_estimators"],
        min_samples_leaf=settings["min_samples_leaf"],
        class_weight="balanced",
        random_state=settings["random_state"],
        n_jobs=1,
    )


@dataclass(frozen=True)
class CustomerInterests:
    """Outcome of ``fit_customer_interests``.

    ``clustering``: fitted ``Pipeline(log, scale, kmeans)`` (raw labels; ``interest_of_label``
    maps them to stable ids). ``classifier``: fitted random forest over ``feature_columns``
    predicting stable ids. ``cutoff``: the fits' cutoff. Frames (see ``fit_customer_interests``):
    ``selection`` (candidate k, ``SELECTION_COLUMNS``), ``categories`` (one row per interest
    category, ``CATEGORY_COLUMNS``), ``customers`` (one row per customer, ``CUSTOMER_COLUMNS``),
    ``predictions`` (one row per new customer and orders seen, ``PREDICTION_COLUMNS``),
    ``model_fits`` (the clustering's and the classifier's training windows).
    """

    clustering: Pipeline
    interest_of_label: Mapping[int, int]
    classifier: RandomForestClassifier
    cutoff: pd.Timestamp
    selection: pd.DataFrame
    categories: pd.DataFrame
    customers: pd.DataFrame
    predictions: pd.DataFrame
    model_fits: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result frames by their name in the fit record: ``candidates``, ``customers``,
        ``categories``, ``predictions`` and ``model_fits``."""
        return {
            "candidates": self.selection,
            "customers": self.customers,
            "categories": self.categories,
            "predictions": self.predictions,
            "model_fits": self.model_fits,
        }

    def record(self) -> pa.Table:
        """The fit as one row (``results.fit_record``): keys ``fit_name`` ('customer_interests'),
        ``cutoff_at``, ``n_training_customers`` (first purchase before the cutoff),
        ``n_fit_sample`` (of them, those the fits were trained on) and ``n_interest_categories``,
        then the ``tables`` as nested columns."""
        training = self.customers["training_interest_category"].notna()
        keys = {
            "fit_name": "customer_interests",
            "cutoff_at": self.cutoff,
            "n_training_customers": int(training.sum()),
            "n_fit_sample": int(self.customers["is_fit_sample"].sum()),
            "n_interest_categories": len(self.categories),
        }
        return fit_record(keys, self.tables())


def nearest_interest(
    clustering: Pipeline, interest_of_label: Mapping[int, int], features: pd.DataFrame
) -> np.ndarray:
    """Stable interest category ids (int64) of the nearest fitted cluster of each row."""
    if features.empty:
        return np.empty(0, dtype="int64")
    labels = clustering.predict(features)
    return np.array([interest_of_label[int(label)] for label in labels], dtype="int64")


def _fit_clustering(
    X: pd.DataFrame, categories: Sequence[int], settings: Mapping[str, Any]
) -> tuple[Pipeline, pd.DataFrame]:
    """Score the candidate k on the preprocessed ``X`` and fit the clustering at the selected k.
    Returns ``(fitted Pipeline(log, scale, kmeans), selection table)``."""
    preprocessing = build_preprocessing(categories)
    scaled = preprocessing.fit_transform(X)
    kmeans, selection = select_kmeans(
        scaled,
        stage="customer_interests",
        k_range=settings["k_range"],
        n_clusters=settings["n_clusters"],
        random_state=settings["random_state"],
        n_init=settings["n_init"],
    )
    clustering = Pipeline([*preprocessing.steps, ("kmeans", kmeans)]).fit(X)
    return clustering, selection.loc[:, list(SELECTION_COLUMNS)]


def _model_fit_row(
    model_name: str,
    algorithm: str,
    rows: pd.DataFrame,
    training_unit: str,
    cutoff: pd.Timestamp,
    *,
    n_clusters: int | None,
    silhouette: float | None,
) -> dict[str, Any]:
    return {
        "model_name": model_name,
        "algorithm": algorithm,
        "n_clusters": n_clusters,
        "silhouette": silhouette,
        "n_training_rows": len(rows),
        "training_unit": training_unit,
        "fit_window_start": rows["first_order_at"].min(),
        "fit_window_end": rows["last_order_at"].max(),
        "cutoff_at": cutoff,
    }


def interest_fit_sample(
    rows: pd.DataFrame, cutoff: str | pd.Timestamp, sampling: Mapping[str, Any] | None = None
) -> np.ndarray:
    """Choose the training customers the clustering and the classifier are fitted on.

    ``rows`` are the ``before_cutoff`` rows (one per training customer, with ``n_orders``,
    ``total_spend`` and ``last_order_at``). They are drawn with ``segmentation.fit_sample_mask``
    and the ``sampling`` meta block (``config.SamplingSettings``: ``sample_size``,
    ``random_state``, ``strata_bins``), stratified by recency (days from ``last_order_at`` to the
    cutoff), frequency (``n_orders``) and monetary value (``total_spend``). All rows when there are
    at most ``sample_size``; the same rows in the same order give the same sample.

    Returns
    -------
    bool array aligned with ``rows``.
    """
    rfm = pd.DataFrame(
        {
            "recency_days": (pd.Timestamp(cutoff) - rows["last_order_at"]).dt.total_seconds()
            / 86400.0,
            "frequency": rows["n_orders"],
            "monetary": rows["total_spend"],
        }
    )
    return fit_sample_mask(rfm, **sampling_settings(sampling).as_dict())


@dataclass(frozen=True)
class InterestModels:
    """Outcome of ``fit_interest_models``: the fitted models and what the fit alone decides.

    ``clustering``, ``interest_of_label``, ``classifier``, ``cutoff``, ``selection``,
    ``categories`` and ``model_fits`` as in ``CustomerInterests``; ``training`` maps each
    training customer to its category in the fit (Int64 Series indexed by customer id);
    ``sample_ids`` are the customers of the fit sample; ``columns`` the model's input columns;
    ``product_categories`` every product category id; ``max_threads`` the scoring's threads.
    """

    clustering: Pipeline
    interest_of_label: Mapping[int, int]
    classifier: RandomForestClassifier
    cutoff: pd.Timestamp
    selection: pd.DataFrame
    categories: pd.DataFrame
    model_fits: pd.DataFrame
    training: pd.Series
    sample_ids: frozenset[int]
    columns: tuple[str, ...]
    product_categories: tuple[int, ...]
    max_threads: int

    def score_customers(self, baskets: pd.DataFrame, shares: pd.DataFrame) -> pd.DataFrame:
        """``CUSTOMER_COLUMNS`` for the customers of the ``whole_history`` rows given, sorted by
        id: the clustering's category of the whole history, the category in the fit (training
        customers) and ``is_fit_sample``. A customer's row depends on its own rows only."""
        features = _window_features(baskets, shares, self.product_categories, "whole_history")
        with fit_threads(self.max_threads):
            history_ids = nearest_interest(
                self.clustering, self.interest_of_label, features[list(self.columns)]
            )
        ids = features["customer_id"]
        return pd.DataFrame(
            {
                "customer_id": ids,
                "interest_category": pd.Series(history_ids, dtype="int64"),
                "training_interest_category": self.training.reindex(ids).to_numpy(),
                "is_fit_sample": ids.isin(self.sample_ids).to_numpy(),
            },
            columns=list(CUSTOMER_COLUMNS),
        ).astype({"training_interest_category": "Int64", "is_fit_sample": "bool"})

    def score_new_customers(self, baskets: pd.DataFrame, shares: pd.DataFrame) -> pd.DataFrame:
        """``PREDICTION_COLUMNS`` for the new customers' ``first_orders`` rows given, sorted by
        customer and orders seen: the classifier's prediction, its probability and the nearest
        fitted cluster of the same features. Each row depends on its own features only."""
        first = _window_features(baskets, shares, self.product_categories, "first_orders")
        new_first = first.loc[first["is_new_customer"].astype("bool")].reset_index(drop=True)
        columns = list(self.columns)
        with fit_threads(self.max_threads):
            if new_first.empty:
                predicted = np.empty(0, dtype="int64")
                probability = np.empty(0, dtype="float64")
            else:
                # what classifier.predict returns, without running the trees twice
                proba = self.classifier.predict_proba(new_first[columns])
                predicted = self.classifier.classes_[proba.argmax(axis=1)].astype("int64")
                probability = proba.max(axis=1)
            nearest_new = nearest_interest(
                self.clustering, self.interest_of_label, new_first[columns]
            )
        return pd.DataFrame(
            {
                "customer_id": new_first["customer_id"],
                "orders_seen": new_first["orders_seen"],
                "predicted_interest_category": pd.Series(predicted, dtype="int64"),
                "prediction_probability": pd.Series(probability, dtype="float64"),
                "nearest_interest_category": pd.Series(nearest_new, dtype="int64"),
            },
            columns=list(PREDICTION_COLUMNS),
        )

    def customer_scorer(self) -> Callable[[pd.DataFrame], pd.DataFrame]:
        """``score_customers`` of a batch of ``scoring_rows`` (picklable; `frames.map_groups`)."""
        return functools.partial(_score_rows, self.score_customers)

    def new_customer_scorer(self) -> Callable[[pd.DataFrame], pd.DataFrame]:
        """``score_new_customers`` of a batch of ``scoring_rows`` (picklable)."""
        return functools.partial(_score_rows, self.score_new_customers)

    def result(self, customers: pd.DataFrame, predictions: pd.DataFrame) -> CustomerInterests:
        """The ``CustomerInterests`` of these fits and the scored customers and predictions
        (in any row order). Raises ValueError when a training customer was not scored."""
        customers = customers.sort_values("customer_id", kind="stable").reset_index(drop=True)
        missing = sorted(set(self.training.index) - set(customers["customer_id"]))
        if missing:
            raise ValueError(f"training customers without a whole_history row: {missing[:5]}")
        predictions = predictions.sort_values(
            ["customer_id", "orders_seen"], kind="stable"
        ).reset_index(drop=True)
        return CustomerInterests(
            clustering=self.clustering,
            interest_of_label=self.interest_of_label,
            classifier=self.classifier,
            cutoff=self.cutoff,
            selection=self.selection,
            categories=self.categories,
            customers=customers.astype(
                {"training_interest_category": "Int64", "is_fit_sample": "bool"}
            ),
            predictions=predictions,
            model_fits=self.model_fits,
        )


# What the scorers return, as SQL types (`frames.map_groups`).
CUSTOMER_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "customer_id": "integer",
        "interest_category": "bigint",
        "training_interest_category": "bigint",
        "is_fit_sample": "boolean",
    }
)
PREDICTION_SCHEMA: Mapping[str, str] = MappingProxyType(
    {
        "customer_id": "integer",
        "orders_seen": "integer",
        "predicted_interest_category": "bigint",
        "prediction_probability": "double",
        "nearest_interest_category": "bigint",
    }
)
# The spend share columns of a scoring row (the others are the basket row's).
SHARE_COLUMNS: tuple[str, ...] = ("product_category", "spend_share")


def _window_features(
    baskets: pd.DataFrame, shares: pd.DataFrame, categories: Sequence[int], window: str
) -> pd.DataFrame:
    """``interest_features`` of the rows of one feature window."""
    in_window = baskets.loc[baskets["feature_window"] == window]
    window_shares = shares.loc[shares["feature_window"] == window]
    return interest_features(in_window, window_shares, categories)


def split_scoring_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(baskets, shares)`` of scoring rows: basket rows left-joined on ``KEY_COLUMNS`` to
    their spend shares (``SHARE_COLUMNS``; null where a window has no spend share)."""
    keys = list(KEY_COLUMNS)
    basket_columns = [column for column in rows.columns if column not in SHARE_COLUMNS]
    baskets = rows.loc[:, basket_columns].drop_duplicates(keys).reset_index(drop=True)
    shares = rows.loc[rows["product_category"].notna(), [*keys, *SHARE_COLUMNS]]
    shares = shares.astype({"product_category": "int64"}).reset_index(drop=True)
    return baskets, shares


def _score_rows(
    score: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame], rows: pd.DataFrame
) -> pd.DataFrame:
    return score(*split_scoring_rows(rows)).reset_index(drop=True)


def fit_interest_models(
    baskets: pd.DataFrame,
    shares: pd.DataFrame,
    category_labels: Mapping[int, str],
    cutoff: str | pd.Timestamp,
    config: Mapping[str, Any] | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> InterestModels:
    """Fit the interest clustering and the new-customer classifier (steps 2 to 4 and 6 of the
    module docstring) on the ``before_cutoff`` and ``first_orders`` rows; other rows are ignored,
    so the ``whole_history`` rows need not be given.

    Parameters
    ----------
    As ``fit_customer_interests``.

    Returns
    -------
    ``InterestModels``: the fits, the candidates, the named categories, the model fits and the
    training customers' categories; ``score_customers`` and ``score_new_customers`` score the
    rest.
    """
    settings = interest_settings(config).as_dict()
    cutoff = pd.Timestamp(cutoff)
    categories = sorted(category_labels)
    columns = feature_columns(categories)
    unknown = sorted(set(baskets["feature_window"]) - set(FEATURE_WINDOWS))
    if unknown:
        raise ValueError(f"unknown feature windows {unknown}; expected {FEATURE_WINDOWS}")
    fit_rows = _window_features(baskets, shares, categories, "before_cutoff")
    first = _window_features(baskets, shares, categories, "first_orders")
    fit = interest_fit_sample(fit_rows, cutoff, sampling)
    sample_ids = fit_rows.loc[fit, "customer_id"]
    new = first["is_new_customer"].astype("bool")
    train_first = first.loc[~new & first["customer_id"].isin(sample_ids)].reset_index(drop=True)

    with fit_threads(settings["max_threads"]):
        clustering, selection = _fit_clustering(fit_rows.loc[fit, columns], categories, settings)
        raw = np.empty(len(fit_rows), dtype="int64")
        raw[fit] = clustering.named_steps["kmeans"].labels_
        if not fit.all():
            raw[~fit] = clustering.predict(fit_rows.loc[~fit, columns])
        fit_ids = stable_interest_ids(raw, fit_rows["customer_id"])
        mapping = dict(zip(raw.tolist(), fit_ids.tolist(), strict=True))
        label_of = pd.Series(fit_ids, index=fit_rows["customer_id"])
        classifier = build_classifier(settings).fit(
            train_first[columns], label_of.loc[train_first["customer_id"]].to_numpy()
        )

    names = name_interests(
        fit_rows, fit_ids, category_labels, focus_lift=float(settings["focus_lift"])
    )
    selected = selection.loc[selection["is_selected"]].iloc[0]
    model_fits = pd.DataFrame(
        [
            _model_fit_row(
                "customer_interest_clustering",
                "kmeans",
                fit_rows.loc[fit],
                "customer",
                cutoff,
                n_clusters=int(selected["n_clusters"]),
                silhouette=float(selected["silhouette"]),
            ),
            _model_fit_row(
                "customer_interest_classifier",
                "random_forest",
                train_first,
                "customer first orders",
                cutoff,
                n_clusters=None,
                silhouette=None,
            ),
        ],
        columns=list(MODEL_FIT_COLUMNS),
    ).astype({"n_clusters": "Int64", "silhouette": "Float64", "n_training_rows": "int64"})
    return InterestModels(
        clustering=clustering,
        interest_of_label=mapping,
        classifier=classifier,
        cutoff=cutoff,
        selection=selection,
        categories=names,
        model_fits=model_fits,
        training=pd.Series(fit_ids, index=fit_rows["customer_id"].to_numpy(), dtype="Int64"),
        sample_ids=frozenset(int(customer) for customer in sample_ids),
        columns=tuple(columns),
        product_categories=tuple(categories),
        max_threads=settings["max_threads"],
    )


def fit_customer_interests(
    baskets: pd.DataFrame,
    shares: pd.DataFrame,
    category_labels: Mapping[int, str],
    cutoff: str | pd.Timestamp,
    config: Mapping[str, Any] | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> CustomerInterests:
    """Cluster the training customers into interest categories, score every customer and
    predict the new customers' categories from their first orders (module docstring):
    ``fit_interest_models``, then its scorers on every row, in one process.

    Parameters
    ----------
    baskets, shares : the feature tables described in the module docstring.
    category_labels : ``{product category id: label}`` for every product category.
    cutoff : the new-customer cutoff, recorded in ``model_fits``.
    config : the ``customer_interests`` meta block (``InterestSettings``; None: defaults).
    sampling : the ``sampling`` meta block (``config.SamplingSettings``; see
        ``interest_fit_sample``).

    Returns
    -------
    ``CustomerInterests``. ``customers`` has one row per customer of the ``whole_history``
    window, sorted by id: ``interest_category`` (the fitted clustering's category of its whole
    history), ``training_interest_category`` (for a training customer, its category in the fit:
    its cluster, or the nearest centroid outside the fit sample; null for new customers) and
    ``is_fit_sample``. ``predictions`` has one row per new customer's ``first_orders`` window:
    the classifier's prediction, its probability and the nearest cluster of the same features.
    ``model_fits`` has one row for 'customer_interest_clustering' and one for
    'customer_interest_classifier', each with the rows it was fitted on.
    """
    models = fit_interest_models(baskets, shares, category_labels, cutoff, config, sampling)
    return models.result(
        models.score_customers(baskets, shares), models.score_new_customers(baskets, shares)
    )


def category_labels(product_categories: pd.DataFrame) -> dict[int, str]:
    """``{product category id: label}`` of ``ml.product_categories`` rows."""
    return {
        int(category): str(label)
        for category, label in zip(
            product_categories["product_category"],
            product_categories["product_category_label"],
            strict=True,
        )
    }
