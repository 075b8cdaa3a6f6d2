"""Product categories: TF-IDF of the product descriptions, KMeans with k chosen by silhouette,
fitted on the sales lines before var('new_customer_cutoff'); products first sold later are
assigned to the nearest category. The sales lines are grouped in DuckDB first
(retail_segments.ml.products.aggregate_lines), so pandas sees one row per product variant, never the
lines. Thin shell over retail_segments.ml.products.

Returns the result tables stacked (retail_segments.ml.tables.stack_tables); the contracted SQL
models product_category_selection, product_category_assignments, product_categories and
customer_interest_model_fits select them back out.
"""

from retail_segments.ml import aggregate_lines, categorize_products, stack_tables


def model(dbt, session):
    dbt.config(materialized="table")
    settings = dbt.config.get("meta") or {}
    cutoff = settings["new_customer_cutoff"]
    line_groups = aggregate_lines(dbt.ref("fct_sales_lines"), cutoff)
    result = categorize_products(line_groups, cutoff, settings.get("product_categories"))
    return stack_tables(result.tables())
