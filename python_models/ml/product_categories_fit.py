"""Product categories: TF-IDF of the product descriptions, KMeans with k chosen by silhouette,
fitted on the sales lines before var('new_customer_cutoff'); products first sold later are
assigned to the nearest category. Thin shell over retail_segments.products.

Returns the result tables stacked (retail_segments.tables.stack_tables); the contracted SQL models
product_category_selection, product_category_assignments, product_categories and
customer_interest_model_fits select them back out.
"""

from retail_segments.products import categorize_products
from retail_segments.tables import stack_tables


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta") or {}
    lines = (
        dbt.ref("fct_sales_lines").project("stock_code, description, unit_price, invoice_at").df()
    )
    result = categorize_products(
        lines, settings["new_customer_cutoff"], settings.get("product_categories")
    )
    return stack_tables(result.tables())
