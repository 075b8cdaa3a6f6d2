"""Customer interest categories and the new-customer classifier: KMeans (k by silhouette) on each
customer's spend shares per product category and basket statistics before
var('new_customer_cutoff'), a random forest predicting that category from a customer's first
orders, and the scoring of every customer's whole history and every new customer's first
orders. Both fits use a reproducible stratified sample of the training customers (meta
sampling); the others are assigned to the nearest centroid (is_fit_sample says which). Thin shell
over retail_segments.ml.interests.customer_interest_fit.

Returns one row per fit, its results as nested columns; the contracted SQL models in
models/ml/interests/ (customer_interest_*, new_customer_*) unpack them (macro fit_result).
"""

from retail_segments.frames import frame
from retail_segments.ml import customer_interest_fit


def model(dbt, session):
    dbt.config(materialized="table")
    meta = dbt.config.get("meta") or {}
    keys = ["customer_id", "feature_window", "orders_seen"]
    return customer_interest_fit(
        frame(dbt.ref("int_customer_interest__baskets"), order_by=keys),
        frame(
            dbt.ref("int_customer_interest__spend_shares"),
            order_by=[*keys, "product_category"],
        ),
        frame(dbt.ref("product_categories"), order_by=["product_category"]),
        meta["new_customer_cutoff"],
        meta.get("customer_interests"),
        meta.get("sampling"),
    )
