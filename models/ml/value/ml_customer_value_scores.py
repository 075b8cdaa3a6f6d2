"""Every customer's value as of var('rfm_as_of'): expected purchases and the probability of none
in the next 90 days, expected order value and 12-month CLV, from the production BG/NBD and
Gamma-Gamma parameters of ml.clv_model applied to the customer's repeat-purchase summary.

One row per customer with a purchase before rfm_as_of (key: customer_id); marts.customer_value
publishes it. Thin shell over retail_segments.ml.value.customer_value_scorer, applied with
retail_segments.frames.map_groups: on Spark the customers are scored in parallel (each
customer's purchase days together), on DuckDB in one batch.
"""

from retail_segments.frames import frame, map_groups
from retail_segments.ml import customer_value_schema, customer_value_scorer


def model(dbt, session):
    dbt.config(materialized="table")
    meta = dbt.config.get("meta") or {}
    models = frame(dbt.ref("clv_model"), order_by=["purpose", "model"])
    return map_groups(
        dbt.ref("int_customer_value__purchase_days"),
        customer_value_scorer(
            models, meta["rfm_as_of"], meta.get("value"), meta["monthly_discount_rate"]
        ),
        customer_value_schema(meta.get("value")),
        by=["customer_id"],
        # what the production summary reads: spend as known at rfm_as_of, per purchase day
        columns=["customer_id", "purchased_at", "spend_known_at_rfm_as_of"],
        order_by=["customer_id", "purchased_at"],
    )
