"""Customer interest categories and the new-customer classifier: KMeans (k by silhouette) on each
customer's spend shares per product category and basket statistics before
var('new_customer_cutoff'), a random forest predicting that category from a customer's first
orders, and the scoring of every customer's whole history and every new customer's first
orders. Both fits use a reproducible stratified sample of the training customers (meta
sampling); the others are assigned to the nearest centroid (is_fit_sample says which). Thin shell
over retail_segments.ml.interests.

Returns the result tables stacked (retail_segments.ml.tables.stack_tables); the contracted SQL
models in models/ml/ (customer_interest_*, new_customer_*) select them back out.
"""

from retail_segments.ml import fit_customer_interests, stack_tables


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta") or {}
    baskets = (
        dbt.ref("customer_interest_baskets")
        .project(
            "customer_id, feature_window, orders_seen, is_new_customer, n_orders,"
            " min_basket_value, mean_basket_value, max_basket_value, total_spend,"
            " first_order_at, last_order_at"
        )
        .df()
    )
    shares = (
        dbt.ref("customer_interest_spend_shares")
        .project("customer_id, feature_window, orders_seen, product_category, spend_share")
        .df()
    )
    labels = dict(
        dbt.ref("product_categories").project("product_category, product_category_label").fetchall()
    )
    result = fit_customer_interests(
        baskets,
        shares,
        labels,
        settings["new_customer_cutoff"],
        settings.get("customer_interests"),
        settings.get("sampling"),
    )
    return stack_tables(result.tables())
