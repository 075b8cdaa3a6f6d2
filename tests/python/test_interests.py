"""Customer interest categories: features, scaling, k by silhouette, names, the classifier on
first orders, the cutoff (new customers never reach a fit) and the fit sample (everyone else
assigned to the nearest centroid), on small hand-made customers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retail_segments.ml.config import ConfigError, SamplingSettings
from retail_segments.ml.interests import (
    BASKET_FEATURES,
    CATEGORY_COLUMNS,
    CUSTOMER_COLUMNS,
    KEY_COLUMNS,
    PREDICTION_COLUMNS,
    SETTINGS,
    InterestSettings,
    build_preprocessing,
    category_labels,
    feature_columns,
    fit_customer_interests,
    fit_interest_models,
    interest_features,
    interest_fit_sample,
    interest_settings,
    name_interests,
    share_column,
    spend_levels,
    split_scoring_rows,
    stable_interest_ids,
)
from retail_segments.ml.results import result_frame
from retail_segments.ml.segmentation import fit_sample_mask

CUTOFF = pd.Timestamp("2011-10-01")
LABELS = {0: "christmas / tree", 1: "tea / mug", 2: "bead / necklace"}
SMALL = {"k_range": [2, 5], "n_estimators": 25, "min_samples_leaf": 1}

# (name, customers, orders each, basket value, spend split over categories 0, 1, 2)
GROUPS = [
    ("christmas", 10, 2, 60.0, (0.9, 0.05, 0.05)),
    ("tea", 10, 2, 60.0, (0.05, 0.9, 0.05)),
    ("jewellery", 10, 2, 60.0, (0.05, 0.05, 0.9)),
    ("big", 8, 9, 900.0, (0.34, 0.33, 0.33)),
]


def _orders(copies: int = 1) -> pd.DataFrame:
    """Orders of the training customers (all before the cutoff; ``copies`` times as many per
    group) and three new customers."""
    rng = np.random.default_rng(0)
    rows = []
    customer_id = 100
    for group, n_customers, n_orders, basket, split in GROUPS:
        for _ in range(n_customers * copies):
            customer_id += 1
            for order in range(n_orders):
                at = pd.Timestamp("2011-02-01") + pd.Timedelta(days=int(rng.integers(0, 200)))
                value = basket * rng.uniform(0.8, 1.2)
                rows.append(
                    (customer_id, group, False, at + pd.Timedelta(minutes=order), value, split)
                )
    # new customers: first purchase after the cutoff
    for customer_id, group, n_orders, basket, split in [
        (901, "christmas", 1, 60.0, (0.85, 0.1, 0.05)),
        (902, "tea", 2, 55.0, (0.1, 0.85, 0.05)),
        (903, "big", 3, 950.0, (0.3, 0.35, 0.35)),
    ]:
        for order in range(n_orders):
            at = pd.Timestamp("2011-10-10") + pd.Timedelta(days=7 * order)
            rows.append((customer_id, group, True, at, basket, split))
    frame = pd.DataFrame(
        rows, columns=["customer_id", "group", "is_new_customer", "invoice_at", "value", "split"]
    )
    return frame.sort_values(["customer_id", "invoice_at"], kind="stable").reset_index(drop=True)


def _windows(orders: pd.DataFrame, max_orders: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The feature windows of the SQL models (before_cutoff, whole_history, first_orders), as
    ``baskets`` and ``shares`` frames, built independently here from the orders."""
    orders = orders.assign(order_number=orders.groupby("customer_id").cumcount() + 1)
    parts = []
    training = orders.loc[~orders.is_new_customer & (orders.invoice_at < CUTOFF)]
    parts.append(training.assign(feature_window="before_cutoff", orders_seen=0))
    parts.append(orders.assign(feature_window="whole_history", orders_seen=0))
    eligible = orders.loc[orders.is_new_customer | (orders.invoice_at < CUTOFF)]
    for n in range(1, max_orders + 1):
        first = eligible.loc[eligible.order_number <= n]
        complete = first.groupby("customer_id")["order_number"].transform("size") == n
        parts.append(first.loc[complete].assign(feature_window="first_orders", orders_seen=n))
    windows = pd.concat(parts, ignore_index=True)
    full = windows.orders_seen == 0
    windows.loc[full, "orders_seen"] = (
        windows.loc[full].groupby(["customer_id", "feature_window"])["value"].transform("size")
    )
    keys = list(KEY_COLUMNS)
    baskets = (
        windows.groupby([*keys, "is_new_customer"])
        .agg(
            n_orders=("value", "size"),
            min_basket_value=("value", "min"),
            mean_basket_value=("value", "mean"),
            max_basket_value=("value", "max"),
            total_spend=("value", "sum"),
            first_order_at=("invoice_at", "min"),
            last_order_at=("invoice_at", "max"),
        )
        .reset_index()
    )
    spend = windows.assign(
        **{f"c{c}": windows.value * windows.split.str[c] for c in range(3)}
    ).melt(
        id_vars=keys, value_vars=["c0", "c1", "c2"], var_name="product_category", value_name="spend"
    )
    spend["product_category"] = spend.product_category.str[1].astype("int64")
    shares = spend.groupby([*keys, "product_category"])["spend"].sum().reset_index()
    shares = shares.loc[shares.spend > 0]
    shares["spend_share"] = shares.spend / shares.groupby(keys)["spend"].transform("sum")
    return baskets, shares.drop(columns="spend")


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    return _orders()


@pytest.fixture(scope="module")
def windows(orders: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return _windows(orders)


@pytest.fixture(scope="module")
def result(windows: tuple[pd.DataFrame, pd.DataFrame]):
    baskets, shares = windows
    return fit_customer_interests(baskets, shares, LABELS, CUTOFF, SMALL)


def _training(result) -> pd.DataFrame:
    """The training customers (first purchase before the cutoff), indexed by id, with their
    category in the fit (``interest_category``) and ``is_fit_sample``."""
    customers = result.customers
    fitted = customers.loc[customers.training_interest_category.notna()]
    return (
        fitted.drop(columns="interest_category")
        .rename(columns={"training_interest_category": "interest_category"})
        .astype({"interest_category": "int64"})
        .set_index("customer_id")
    )


def _history(result) -> pd.Series:
    """Every customer's category of its whole history, indexed by id."""
    return result.customers.set_index("customer_id")["interest_category"]


def _group_of(orders: pd.DataFrame) -> pd.Series:
    return orders.drop_duplicates("customer_id").set_index("customer_id")["group"]


def test_features_put_shares_beside_baskets_with_zeros_for_missing_categories() -> None:
    key = {"customer_id": [1, 1], "feature_window": ["whole_history", "first_orders"]}
    baskets = pd.DataFrame(
        {**key, "orders_seen": [2, 1], **{column: [1.0, 1.0] for column in BASKET_FEATURES}}
    )
    shares = pd.DataFrame(
        {
            "customer_id": [1, 1, 1],
            "feature_window": ["whole_history", "whole_history", "first_orders"],
            "orders_seen": [2, 2, 1],
            "product_category": [0, 2, 2],
            "spend_share": [0.25, 0.75, 1.0],
        }
    )
    features = interest_features(baskets, shares, [0, 1, 2])
    assert features.feature_window.tolist() == ["first_orders", "whole_history"]
    assert features[[share_column(c) for c in (0, 1, 2)]].to_numpy().tolist() == [
        [0.0, 0.0, 1.0],
        [0.25, 0.0, 0.75],
    ]
    with pytest.raises(ValueError, match="unknown product categories"):
        interest_features(baskets, shares, [0, 1])
    orphan = shares.assign(orders_seen=[2, 2, 3])
    with pytest.raises(ValueError, match="without basket rows"):
        interest_features(baskets, orphan, [0, 1, 2])


def test_preprocessing_logs_money_and_standardises_every_column() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            share_column(0): rng.uniform(0, 1, 50),
            share_column(1): rng.uniform(0, 1, 50),
            **{column: rng.lognormal(3, 2, 50) for column in BASKET_FEATURES},
        }
    )
    scaled = build_preprocessing([0, 1]).fit_transform(frame[feature_columns([0, 1])])
    np.testing.assert_allclose(scaled.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(scaled.std(axis=0), 1, atol=1e-12)
    logged = np.log1p(frame["total_spend"])
    expected = (logged - logged.mean()) / logged.std(ddof=0)
    np.testing.assert_allclose(scaled[:, BASKET_FEATURES.index("total_spend")], expected)


def test_spend_levels_rank_the_median_spend() -> None:
    assert spend_levels(pd.Series([30.0, 10.0, 20.0])).tolist() == ["high", "low", "mid"]
    assert spend_levels(pd.Series([1.0, 2.0, 3.0, 4.0])).tolist() == ["low", "mid", "mid", "high"]
    assert spend_levels(pd.Series([5.0])).tolist() == ["mid"]


def test_names_come_from_the_focus_category_spend_and_frequency() -> None:
    shares = {
        share_column(0): [0.9, 0.8, 0.1, 0.3, 0.3],
        share_column(1): [0.1, 0.2, 0.9, 0.35, 0.35],
        share_column(2): [0.0, 0.0, 0.0, 0.35, 0.35],
    }
    features = pd.DataFrame(
        {**shares, "total_spend": [50, 60, 70, 900, 1000], "n_orders": [1, 1, 1, 8, 9]}
    )
    names = name_interests(features, np.array([0, 0, 1, 2, 2]), LABELS, focus_lift=1.5)
    assert names.interest_name.tolist() == [
        "christmas / tree (low spend)",
        "tea / mug (mid spend)",
        "bead / necklace (high spend, frequent)",
    ]
    assert names.is_frequent.tolist() == [False, False, True]
    broad = name_interests(features, np.array([0, 0, 1, 2, 2]), LABELS, focus_lift=10.0)
    assert broad.interest_name.str.startswith("broad mix").all()
    assert broad.focus_product_category.tolist() == [0, 1, 2]
    alike = features.assign(total_spend=100.0, n_orders=1)
    same = name_interests(alike, np.array([0, 1, 0, 1, 0]), LABELS, focus_lift=10.0)
    assert same.interest_name.tolist() == ["broad mix (mid spend)", "broad mix (mid spend) (2)"]


def test_stable_ids_do_not_depend_on_label_values() -> None:
    customers = pd.Series([10, 11, 12, 13, 14])
    first = stable_interest_ids(np.array([3, 3, 8, 8, 8]), customers)
    relabelled = stable_interest_ids(np.array([1, 1, 0, 0, 0]), customers)
    assert first.tolist() == relabelled.tolist() == [1, 1, 0, 0, 0]


def test_silhouette_finds_the_groups_and_names_them(result, orders) -> None:
    selection = result.selection
    assert selection.loc[selection.is_selected, "n_clusters"].tolist() == [len(GROUPS)]
    fitted = _training(result).reset_index()
    groups = _group_of(orders).loc[fitted.customer_id].to_numpy()
    assert pd.crosstab(groups, fitted.interest_category.to_numpy()).gt(0).sum(axis=1).eq(1).all()
    assert list(result.categories.columns) == list(CATEGORY_COLUMNS)
    names = result.categories.set_index("interest_category")["interest_name"]
    by_group = fitted.groupby(groups)["interest_category"].first()
    assert names[by_group["christmas"]].startswith("christmas / tree")
    assert names[by_group["tea"]].startswith("tea / mug")
    assert names[by_group["jewellery"]].startswith("bead / necklace")
    assert names[by_group["big"]] == "broad mix (high spend, frequent)"


def test_every_customer_is_scored_and_only_training_customers_are_fitted(result, orders) -> None:
    assert list(result.customers.columns) == list(CUSTOMER_COLUMNS)
    assert list(result.predictions.columns) == list(PREDICTION_COLUMNS)
    new = set(orders.loc[orders.is_new_customer, "customer_id"])
    fitted = set(_training(result).index)
    predicted = set(result.predictions.customer_id)
    assert fitted == set(orders.customer_id) - new
    assert predicted == new
    assert result.customers.customer_id.tolist() == sorted(set(orders.customer_id))
    history = _history(result)
    before = _training(result)
    # training customers have no later orders here, so their whole history is their fit
    assert (history.loc[before.index] == before.interest_category).all()


def test_new_customers_are_predicted_from_their_first_orders(result, orders) -> None:
    predictions = result.predictions.set_index(["customer_id", "orders_seen"])
    truth = _history(result)
    fitted = _training(result).reset_index()
    group_category = fitted.groupby(_group_of(orders).loc[fitted.customer_id].to_numpy())[
        "interest_category"
    ].first()
    expected = {901: "christmas", 902: "tea", 903: "big"}
    assert sorted(predictions.index) == [(901, 1), (902, 1), (902, 2), (903, 1), (903, 2), (903, 3)]
    for (customer, _), row in predictions.iterrows():
        assert row.predicted_interest_category == group_category[expected[customer]]
        assert row.nearest_interest_category == group_category[expected[customer]]
        assert 0 < row.prediction_probability <= 1
    for customer, group in expected.items():
        assert truth.at[customer] == group_category[group]


def test_the_fits_see_only_orders_before_the_cutoff(result, orders) -> None:
    fits = result.model_fits.set_index("model_name")
    assert list(fits.index) == ["customer_interest_clustering", "customer_interest_classifier"]
    training = orders.loc[~orders.is_new_customer]
    first_three = training.groupby("customer_id").cumcount() < 3
    assert fits.at["customer_interest_clustering", "fit_window_end"] == training.invoice_at.max()
    assert (
        fits.at["customer_interest_classifier", "fit_window_end"]
        == training.loc[first_three, "invoice_at"].max()
    )
    assert (fits.fit_window_end < CUTOFF).all()
    assert fits.at["customer_interest_clustering", "n_training_rows"] == sum(
        n for _, n, _, _, _ in GROUPS
    )


def test_new_customers_do_not_change_the_fit(result, orders) -> None:
    # Double the new customers with odd baskets: the fitted clusters stay exactly the same.
    odd = orders.loc[orders.is_new_customer].assign(
        customer_id=lambda frame: frame.customer_id + 100, value=5000.0, split=[(0.0, 0.0, 1.0)] * 6
    )
    baskets, shares = _windows(pd.concat([orders, odd], ignore_index=True))
    other = fit_customer_interests(baskets, shares, LABELS, CUTOFF, SMALL)
    pd.testing.assert_frame_equal(other.selection, result.selection)
    pd.testing.assert_frame_equal(other.categories, result.categories)
    pd.testing.assert_frame_equal(other.model_fits, result.model_fits)
    pd.testing.assert_frame_equal(_training(other), _training(result))


def test_a_training_customer_without_whole_history_is_an_error(windows) -> None:
    baskets, shares = windows
    lost = (baskets.customer_id == 101) & (baskets.feature_window == "whole_history")
    kept = ~((shares.customer_id == 101) & (shares.feature_window == "whole_history"))
    with pytest.raises(ValueError, match=r"without a whole_history row: \[101\]"):
        fit_customer_interests(baskets.loc[~lost], shares.loc[kept], LABELS, CUTOFF, SMALL)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"k_range": [2]}, "key 'k_range"),
        ({"n_clusters": 1}, "key 'n_clusters' = 1"),
        ({"focus_lift": 0.5}, "key 'focus_lift' = 0.5"),
        ({"focus_lift": "high"}, "= 'high': must be a number"),
        ({"n_estimators": 0}, "key 'n_estimators' = 0"),
        ({"k": 3}, "unknown key 'k'"),
    ],
)
def test_bad_config_is_refused_with_the_block_key_and_value(config: dict, message: str) -> None:
    block = r"ml_customer_interest_fit\.meta\.customer_interests"
    with pytest.raises(ConfigError, match=block) as error:
        interest_settings(config)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("sampling", "message"),
    [({"sample_size": 99}, "key 'sample_size' = 99"), ({"sample": 500}, "unknown key 'sample'")],
)
def test_bad_sampling_is_refused_before_any_fit(windows, sampling: dict, message: str) -> None:
    baskets, shares = windows
    with pytest.raises(ConfigError, match=r"ml_customer_interest_fit\.meta\.sampling") as error:
        fit_customer_interests(baskets, shares, LABELS, CUTOFF, SMALL, sampling)
    assert message in str(error.value)


def test_settings_default_to_the_documented_values() -> None:
    assert {"customer_interests": InterestSettings, "sampling": SamplingSettings} == SETTINGS
    assert interest_settings(None).as_dict() == {
        "k_range": (3, 8),
        "n_clusters": None,
        "focus_lift": 1.5,
        "n_estimators": 100,
        "min_samples_leaf": 3,
        "random_state": 42,
        "n_init": 10,
        "max_threads": 1,
    }
    assert SamplingSettings().as_dict() == {
        "sample_size": 5_000,
        "random_state": 42,
        "strata_bins": 5,
    }
    assert interest_settings({"focus_lift": 2}).focus_lift == 2
    for model in (InterestSettings, SamplingSettings):
        assert all(field.description for field in model.model_fields.values())


def test_the_fit_record_is_one_keyed_row_with_every_result(result, windows) -> None:
    baskets, shares = windows
    categories = pd.DataFrame(
        {"product_category": list(LABELS), "product_category_label": list(LABELS.values())}
    )
    # the warehouse returns rows in no particular order
    record = fit_customer_interests(
        baskets.sample(frac=1, random_state=3),
        shares.sample(frac=1, random_state=4),
        category_labels(categories.iloc[::-1]),
        CUTOFF,
        SMALL,
    ).record()
    assert record.num_rows == 1
    keys = record.select(
        ["fit_name", "cutoff_at", "n_training_customers", "n_fit_sample", "n_interest_categories"]
    )
    n_training = sum(n for _, n, _, _, _ in GROUPS)
    assert keys.to_pylist() == [
        {
            "fit_name": "customer_interests",
            "cutoff_at": CUTOFF.to_pydatetime(),
            "n_training_customers": n_training,
            "n_fit_sample": n_training,
            "n_interest_categories": len(GROUPS),
        }
    ]
    for name, frame in result.tables().items():
        pd.testing.assert_frame_equal(
            result_frame(record, name).convert_dtypes(), frame.convert_dtypes(), check_dtype=False
        )


# ---------------------------------------------------------------- fit sample
COPIES = 10  # 380 training customers
SAMPLE = {"sample_size": 100}


@pytest.fixture(scope="module")
def large_windows() -> tuple[pd.DataFrame, pd.DataFrame]:
    return _windows(_orders(COPIES))


@pytest.fixture(scope="module")
def sampled(large_windows: tuple[pd.DataFrame, pd.DataFrame]):
    baskets, shares = large_windows
    return fit_customer_interests(baskets, shares, LABELS, CUTOFF, SMALL, SAMPLE)


def test_everyone_is_fitted_when_the_population_fits_the_sample(result, windows) -> None:
    customers = result.customers
    new = customers.customer_id.isin([901, 902, 903])
    assert customers.loc[~new, "is_fit_sample"].all()
    assert not customers.loc[new, "is_fit_sample"].any()
    assert customers.loc[new, "training_interest_category"].isna().all()
    # a sample size at or above the population changes nothing
    baskets, shares = windows
    capped = fit_customer_interests(baskets, shares, LABELS, CUTOFF, SMALL, {"sample_size": 100})
    for name, frame in result.tables().items():
        pd.testing.assert_frame_equal(capped.tables()[name], frame)


def test_the_fit_sample_is_the_stratified_segmentation_sample(large_windows) -> None:
    baskets, _ = large_windows
    rows = baskets.loc[baskets.feature_window == "before_cutoff"].reset_index(drop=True)
    fit = interest_fit_sample(rows, CUTOFF, SAMPLE)
    assert fit.sum() == 100
    rfm = pd.DataFrame(
        {
            "recency_days": (CUTOFF - rows.last_order_at).dt.total_seconds() / 86_400,
            "frequency": rows.n_orders,
            "monetary": rows.total_spend,
        }
    )
    np.testing.assert_array_equal(fit, fit_sample_mask(rfm, 100, random_state=42, strata_bins=5))
    np.testing.assert_array_equal(fit, interest_fit_sample(rows, CUTOFF, SAMPLE))
    other = interest_fit_sample(rows, CUTOFF, {**SAMPLE, "random_state": 7})
    assert other.sum() == 100 and (other != fit).any()


def test_the_sampled_fit_is_reproducible(sampled, large_windows) -> None:
    baskets, shares = large_windows
    again = fit_customer_interests(baskets, shares, LABELS, CUTOFF, SMALL, SAMPLE)
    for name, frame in sampled.tables().items():
        pd.testing.assert_frame_equal(again.tables()[name], frame)


def test_is_fit_sample_marks_the_sampled_customers_everywhere(sampled, large_windows) -> None:
    before = _training(sampled)
    n_training = sum(n for _, n, _, _, _ in GROUPS) * COPIES
    assert len(before) == n_training
    assert before.is_fit_sample.sum() == 100
    sample = set(before.index[before.is_fit_sample])
    customers = sampled.customers
    assert set(customers.loc[customers.is_fit_sample, "customer_id"]) == sample
    new = customers.training_interest_category.isna()
    assert set(customers.loc[new, "customer_id"]) == {901, 902, 903}
    assert not customers.loc[new, "is_fit_sample"].any()  # new customers never reach a fit
    fits = sampled.model_fits.set_index("model_name")["n_training_rows"]
    assert fits["customer_interest_clustering"] == 100
    # the classifier learns from the first orders of the sampled customers only: 1..3 orders
    # for the customers with that many (the groups have 2 or 9 orders)
    baskets, _ = large_windows
    history = baskets.loc[baskets.feature_window == "whole_history"]
    orders_of = {cid: n for cid, n in zip(history.customer_id, history.orders_seen, strict=True)}
    assert fits["customer_interest_classifier"] == sum(min(orders_of[c], 3) for c in sample)


def test_assigned_customers_get_the_nearest_centroid(sampled, large_windows) -> None:
    baskets, shares = large_windows
    features = interest_features(baskets, shares, sorted(LABELS))
    rows = features.loc[features.feature_window == "before_cutoff"].reset_index(drop=True)
    scores = _training(sampled).loc[rows.customer_id]
    scaled = sampled.clustering[:-1].transform(rows[feature_columns(sorted(LABELS))])
    centers = sampled.clustering.named_steps["kmeans"].cluster_centers_
    distances = ((scaled[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    nearest = np.array([sampled.interest_of_label[label] for label in distances.argmin(axis=1)])
    assigned = ~scores.is_fit_sample.to_numpy()
    assert assigned.sum() == len(rows) - 100
    np.testing.assert_array_equal(scores.interest_category.to_numpy()[assigned], nearest[assigned])
    # the groups are well separated: the assigned customers land with their own group
    groups = _group_of(_orders(COPIES)).loc[rows.customer_id].to_numpy()
    crosstab = pd.crosstab(groups, scores.interest_category.to_numpy())
    assert crosstab.gt(0).sum(axis=1).eq(1).all()


def test_scoring_groups_of_customers_from_joined_rows_gives_the_whole_fit(sampled, large_windows):
    """What the dbt model does on Spark: fit on the training windows only, then score the
    baskets left-joined to their shares, a group of customers at a time."""
    baskets, shares = large_windows
    training = baskets.feature_window != "whole_history"
    models = fit_interest_models(
        baskets.loc[training],
        shares.loc[shares.feature_window != "whole_history"],
        LABELS,
        CUTOFF,
        SMALL,
        SAMPLE,
    )
    rows = baskets.merge(
        shares.loc[:, [*KEY_COLUMNS, "product_category", "spend_share"]],
        on=list(KEY_COLUMNS),
        how="left",
    )
    group = rows.customer_id % 5
    customers = pd.concat(
        [models.customer_scorer()(rows.loc[group == g]) for g in range(5)], ignore_index=True
    )
    predictions = pd.concat(
        [models.new_customer_scorer()(rows.loc[group == g]) for g in range(5)], ignore_index=True
    )
    scored = models.result(customers.sample(frac=1, random_state=0), predictions)
    for name, frame in sampled.tables().items():
        pd.testing.assert_frame_equal(scored.tables()[name], frame, obj=name)
    assert customers.columns.tolist() == list(CUSTOMER_COLUMNS)
    # a window without any spend share still has its basket row
    baskets_only, shares_only = split_scoring_rows(rows.loc[rows.product_category.isna()])
    assert len(baskets_only) == rows.product_category.isna().sum() and shares_only.empty
