"""Customer lifetime value and churn risk: a BG/NBD purchase model and a Gamma-Gamma spend model,
fitted by maximum likelihood on every customer's repeat-purchase summary as of var('rfm_as_of'),
and again on the lines before var('clv_calibration_end') to be scored on the holdout after it
against the naive baseline. One row per run, results nested (see the yml). Thin shell over
retail_segments.ml.value.
"""

from retail_segments.frames import frame
from retail_segments.ml import customer_value_record


def model(dbt, session):
    dbt.config(materialized="table")
    meta = dbt.config.get("meta") or {}
    purchase_days = frame(
        dbt.ref("int_customer_value__purchase_days"), order_by=["customer_id", "purchase_date"]
    )
    return customer_value_record(
        purchase_days,
        meta["rfm_as_of"],
        meta["calibration_end"],
        meta.get("value"),
        meta["monthly_discount_rate"],
    )
