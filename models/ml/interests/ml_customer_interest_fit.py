"""Customer interest categories and the new-customer classifier: KMeans (k by silhouette) on each
customer's spend shares per product category and basket statistics before
var('new_customer_cutoff'), a random forest predicting that category from a customer's first
orders, and the scoring of every customer's whole history and every new customer's first
orders. Both fits use a reproducible stratified sample of the training customers (meta
sampling); the others are assigned to the nearest centroid (is_fit_sample says which). Thin shell
over retail_segments.ml.interests.

The fits run here on the training windows (before_cutoff, first_orders); the scoring of every
customer and every new customer is applied with retail_segments.frames.map_groups: on Spark in
parallel (each customer's rows together), on DuckDB in one batch. Returns one row per fit, its
results as nested columns; the contracted SQL models in models/ml/interests/
(customer_interest_*, new_customer_*) unpack them (macro fit_result).
"""

from retail_segments.frames import collect, frame, join, map_groups, select, where
from retail_segments.ml import (
    INTEREST_CUSTOMER_SCHEMA,
    INTEREST_PREDICTION_SCHEMA,
    fit_interest_models,
    interest_category_labels,
)


def model(dbt, session):
    dbt.config(materialized="table")
    meta = dbt.config.get("meta") or {}
    keys = ["customer_id", "feature_window", "orders_seen"]
    baskets = dbt.ref("int_customer_interest__baskets")
    shares = select(
        dbt.ref("int_customer_interest__spend_shares"), [*keys, "product_category", "spend_share"]
    )
    training_windows = "feature_window in ('before_cutoff', 'first_orders')"
    models = fit_interest_models(
        frame(where(baskets, training_windows), order_by=keys),
        frame(where(shares, training_windows), order_by=[*keys, "product_category"]),
        interest_category_labels(
            frame(dbt.ref("product_categories"), order_by=["product_category"])
        ),
        meta["new_customer_cutoff"],
        meta.get("customer_interests"),
        meta.get("sampling"),
    )
    rows = join(baskets, shares, on=keys)
    order = [*keys, "product_category"]
    customers = map_groups(
        where(rows, "feature_window = 'whole_history'"),
        models.customer_scorer(),
        INTEREST_CUSTOMER_SCHEMA,
        by=["customer_id"],
        order_by=order,
    )
    predictions = map_groups(
        where(rows, "feature_window = 'first_orders' and is_new_customer"),
        models.new_customer_scorer(),
        INTEREST_PREDICTION_SCHEMA,
        by=["customer_id"],
        order_by=order,
    )
    return models.result(collect(customers), collect(predictions)).record()
