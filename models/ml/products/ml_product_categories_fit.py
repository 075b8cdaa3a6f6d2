"""Product categories: TF-IDF of the product descriptions, KMeans with k chosen by silhouette,
fitted on the sales lines before var('new_customer_cutoff'); products first sold later are
assigned to the nearest category. Reads the sales lines grouped in SQL
(intermediate.int_product_lines__grouped), so pandas sees one row per product variant, never the
lines. Thin shell over retail_segments.ml.products.product_categories_fit.

Returns one row per fit, its results as nested columns; the contracted SQL models
product_category_selection, product_category_assignments, product_categories and
customer_interest_model_fits unpack them (macro fit_result).
"""

from retail_segments.frames import frame
from retail_segments.ml import product_categories_fit


def model(dbt, session):
    dbt.config(materialized="table")
    meta = dbt.config.get("meta") or {}
    keys = ["stock_code", "description", "unit_price", "is_before_cutoff"]
    return product_categories_fit(
        frame(dbt.ref("int_product_lines__grouped"), order_by=keys),
        meta["new_customer_cutoff"],
        meta.get("product_categories"),
    )
