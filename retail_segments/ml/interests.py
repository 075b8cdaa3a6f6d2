"""Customer interest categories and their prediction for new customers from their first orders.

Inputs are two warehouse tables built in SQL (``models/ml``), one row per customer, feature
window and number of orders seen (``KEY_COLUMNS``):

- ``baskets``: ``is_new_customer``, ``n_orders``, ``min/mean/max_basket_value``, ``total_spend``,
  ``first_order_at``, ``last_order_at`` of the orders in the window;
- ``shares``: one row per product category with spend in the window, ``spend_share``.

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

Every score row carries ``is_fit_sample``: the customer's rows trained both fits (always false
for new customers).

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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from retail_segments.ml.clustering import select_kmeans
from retail_segments.ml.products import MODEL_FIT_COLUMNS, SELECTION_COLUMNS
from retail_segments.ml.segmentation import fit_sample_mask, sampling_config, validate_config

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

INTEREST_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "k_range": [3, 8],
        "n_clusters": None,
        "focus_lift": 1.5,
        "n_estimators": 100,
        "min_samples_leaf": 3,
        "random_state": 42,
        "n_init": 10,
        "max_threads": 1,
    }
)

CLUSTER_COLUMNS: tuple[str, ...] = (
    "interest_category",
    "interest_name",
    "spend_level",
    "is_frequent",
    "focus_product_category",
    "focus_lift",
    "n_customers_fit",
    "n_fit_sample",
)
SCORE_COLUMNS: tuple[str, ...] = (
    *KEY_COLUMNS,
    "interest_category",
    "nearest_interest_category",
    "prediction_probability",
    "is_fit_sample",
)


def share_column(category: int) -> str:
    """Name of the feature column holding the spend share of product category ``category``."""
    return f"share_{category}"


def interest_config(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge ``config`` over ``INTEREST_DEFAULTS`` and check the values.

    Keys: ``k_range`` ([min, max] interest categories tried), ``n_clusters`` (pin k, or None),
    ``focus_lift`` (how many times the average share a category must reach to name an interest
    after it), ``n_estimators`` and ``min_samples_leaf`` (random forest), ``random_state``,
    ``n_init`` (KMeans restarts), ``max_threads`` (OpenMP/BLAS threads, None = library default).
    Raises ``ValueError`` naming an unknown key or a bad value.
    """
    merged = validate_config(config, INTEREST_DEFAULTS, name="customer interests config")
    k_range = merged["k_range"]
    if not (
        isinstance(k_range, list | tuple)
        and len(k_range) == 2
        and all(_is_int(v) for v in k_range)
        and 2 <= k_range[0] <= k_range[1]
    ):
        raise ValueError("config key 'k_range' must be [k_min, k_max] with 2 <= k_min <= k_max")
    minimums = {"n_estimators": 1, "min_samples_leaf": 1, "random_state": 0, "n_init": 1}
    for key, minimum in minimums.items():
        if not _is_int(merged[key]) or merged[key] < minimum:
            raise ValueError(f"config key {key!r} must be an integer >= {minimum}")
    for key, minimum in (("n_clusters", 2), ("max_threads", 1)):
        value = merged[key]
        if value is not None and (not _is_int(value) or value < minimum):
            raise ValueError(f"config key {key!r} must be null or an integer >= {minimum}")
    lift = merged["focus_lift"]
    if isinstance(lift, bool) or not isinstance(lift, int | float) or lift < 1:
        raise ValueError("config key 'focus_lift' must be a number >= 1")
    return merged


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


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
    fit_sample: np.ndarray | None = None,
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
    fit_sample : bool per row, true where the customer is in the fit sample (None: all are).

    Returns
    -------
    DataFrame with ``CLUSTER_COLUMNS``, one row per interest category, sorted by id:
    ``n_customers_fit`` counts its rows, ``n_fit_sample`` those in the fit sample.
    """
    categories = sorted(category_labels)
    share_columns = [share_column(c) for c in categories]
    in_sample = np.ones(len(features), dtype=bool) if fit_sample is None else fit_sample
    frame = features.loc[:, [*share_columns, "total_spend", "n_orders"]].assign(
        interest=interest_ids, in_sample=np.asarray(in_sample, dtype=bool)
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
            "n_customers_fit": pd.Series(grouped.size().to_numpy(), dtype="int64"),
            "n_fit_sample": pd.Series(grouped["in_sample"].sum().to_numpy(), dtype="int64"),
        },
        columns=list(CLUSTER_COLUMNS),
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
    predicting stable ids. Frames: ``selection`` (candidate k), ``clusters`` (one row per interest
    category, ``CLUSTER_COLUMNS``), ``scores`` (``SCORE_COLUMNS``, see ``fit_customer_interests``),
    ``model_fits`` (the clustering's and the classifier's training windows).
    """

    clustering: Pipeline
    interest_of_label: Mapping[int, int]
    classifier: RandomForestClassifier
    selection: pd.DataFrame
    clusters: pd.DataFrame
    scores: pd.DataFrame
    model_fits: pd.DataFrame

    def tables(self) -> dict[str, pd.DataFrame]:
        """The result frames by warehouse table name."""
        return {
            "customer_interest_selection": self.selection,
            "customer_interest_clusters": self.clusters,
            "customer_interest_scores": self.scores,
            "model_fits": self.model_fits,
        }


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
    and the ``sampling`` config (``segmentation.sampling_config``: ``sample_size``,
    ``random_state``, ``strata_bins``), stratified by recency (days from ``last_order_at`` to the
    cutoff), frequency (``n_orders``) and monetary value (``total_spend``). All rows when there are
    at most ``sample_size``; the same rows in the same order give the same sample.

    Returns
    -------
    bool array aligned with ``rows``.
    """
    rfm = pd.DataFrame(
        {
            "recency_days": (pd.Timestamp(cutoff) - rows["last_order_at"]) / pd.Timedelta(days=1),
            "frequency": rows["n_orders"],
            "monetary": rows["total_spend"],
        }
    )
    return fit_sample_mask(rfm, **sampling_config(sampling))


def fit_customer_interests(
    baskets: pd.DataFrame,
    shares: pd.DataFrame,
    category_labels: Mapping[int, str],
    cutoff: str | pd.Timestamp,
    config: Mapping[str, Any] | None = None,
    sampling: Mapping[str, Any] | None = None,
) -> CustomerInterests:
    """Cluster the training customers into interest categories, score every customer and
    predict the new customers' categories from their first orders (module docstring).

    Parameters
    ----------
    baskets, shares : the feature tables described in the module docstring.
    category_labels : ``{product category id: label}`` for every product category.
    cutoff : the new-customer cutoff, recorded in ``model_fits``.
    config : overrides of ``INTEREST_DEFAULTS`` (see ``interest_config``).
    sampling : overrides of the fit sample's config (see ``interest_fit_sample``).

    Returns
    -------
    ``CustomerInterests``. ``scores`` has one row per training customer's ``before_cutoff``
    window (its fitted or nearest-centroid category; the other two columns null), per
    customer's ``whole_history`` (the fitted clustering's category; ``nearest_interest_category``
    the same) and per new customer's ``first_orders`` window (the classifier's prediction, its
    probability, and the nearest cluster); ``is_fit_sample`` is true on the rows of the fit
    sample's customers. ``model_fits`` has one row for 'customer_interest_clustering' and one for
    'customer_interest_classifier', each with the rows it was fitted on.
    """
    settings = interest_config(config)
    cutoff = pd.Timestamp(cutoff)
    categories = sorted(category_labels)
    columns = feature_columns(categories)
    features = interest_features(baskets, shares, categories)
    window = features["feature_window"]
    unknown = sorted(set(window) - set(FEATURE_WINDOWS))
    if unknown:
        raise ValueError(f"unknown feature windows {unknown}; expected {FEATURE_WINDOWS}")
    new = features["is_new_customer"].astype("bool")
    fit_rows = features.loc[window == "before_cutoff"].reset_index(drop=True)
    history = features.loc[window == "whole_history"].reset_index(drop=True)
    first = features.loc[window == "first_orders"]
    new_first = first.loc[new].reset_index(drop=True)
    fit = interest_fit_sample(fit_rows, cutoff, sampling)
    sample_ids = fit_rows.loc[fit, "customer_id"]
    train_first = first.loc[~new & first["customer_id"].isin(sample_ids)].reset_index(drop=True)

    with threadpool_limits(limits=settings["max_threads"]):
        clustering, selection = _fit_clustering(fit_rows.loc[fit, columns], categories, settings)
        raw = np.empty(len(fit_rows), dtype="int64")
        raw[fit] = clustering.named_steps["kmeans"].labels_
        if not fit.all():
            raw[~fit] = clustering.predict(fit_rows.loc[~fit, columns])
        fit_ids = stable_interest_ids(raw, fit_rows["customer_id"])
        mapping = dict(zip(raw.tolist(), fit_ids.tolist(), strict=True))
        history_ids = nearest_interest(clustering, mapping, history[columns])
        label_of = pd.Series(fit_ids, index=fit_rows["customer_id"])
        classifier = build_classifier(settings).fit(
            train_first[columns], label_of.loc[train_first["customer_id"]].to_numpy()
        )
        if new_first.empty:
            predicted = np.empty(0, dtype="int64")
            probability = np.empty(0, dtype="float64")
        else:
            # what classifier.predict returns, without running the trees twice
            proba = classifier.predict_proba(new_first[columns])
            predicted = classifier.classes_[proba.argmax(axis=1)].astype("int64")
            probability = proba.max(axis=1)
        nearest_new = nearest_interest(clustering, mapping, new_first[columns])

    clusters = name_interests(
        fit_rows,
        fit_ids,
        category_labels,
        focus_lift=float(settings["focus_lift"]),
        fit_sample=fit,
    )
    keys = list(KEY_COLUMNS)
    scores = pd.concat(
        [
            fit_rows[keys].assign(interest_category=fit_ids, is_fit_sample=fit),
            history[keys].assign(
                interest_category=history_ids,
                nearest_interest_category=history_ids,
                is_fit_sample=history["customer_id"].isin(sample_ids).to_numpy(),
            ),
            new_first[keys].assign(
                interest_category=predicted,
                nearest_interest_category=nearest_new,
                prediction_probability=probability,
                is_fit_sample=False,
            ),
        ],
        ignore_index=True,
    ).reindex(columns=list(SCORE_COLUMNS))
    scores = scores.astype(
        {
            "interest_category": "int64",
            "nearest_interest_category": "Int64",
            "prediction_probability": "Float64",
            "is_fit_sample": "bool",
        }
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
    return CustomerInterests(
        clustering=clustering,
        interest_of_label=mapping,
        classifier=classifier,
        selection=selection,
        clusters=clusters,
        scores=scores,
        model_fits=model_fits,
    )
